"""The core writer: whole files or nothing, modes, links and devices, errors, stale temps,
whole-folder swaps, kill -9, and the output-vs-input check."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from collapse_probe import output
from collapse_probe.errors import InputError, OutputError
from collapse_probe.output import (is_temp_name, open_output, output_path, refuse_overwriting_inputs,
                                   remove_stale_temps, temp_name, write_bytes, write_folder,
                                   write_text)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if is_temp_name(p.name))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# --------------------------------------------------------------------------- names

def test_temp_names_are_recognisable_and_unique():
    a, b = temp_name("report.json"), temp_name("report.json")
    assert a != b and a.startswith(".report.json.collapse-probe-tmp-") and is_temp_name(a)
    assert f"-{os.getpid()}-" in a
    assert not is_temp_name("report.json") and not is_temp_name(".report.json.tmp")
    assert len(temp_name("x" * 250)) < 255  # long names still give a legal temp name


# --------------------------------------------------------------------------- files

def test_new_file_gets_the_umask_mode_and_a_replaced_file_keeps_its_mode(tmp_path, umask_022):
    target = tmp_path / "out.json"
    write_text(target, "one")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    os.chmod(target, 0o640)
    write_text(target, "two")
    assert target.read_text() == "two" and stat.S_IMODE(target.stat().st_mode) == 0o640
    os.umask(0o077)
    write_text(tmp_path / "private.json", "x")
    assert stat.S_IMODE((tmp_path / "private.json").stat().st_mode) == 0o600
    assert _temps(tmp_path) == []


def test_missing_parents_are_created(tmp_path):
    write_bytes(tmp_path / "a" / "b" / "c.bin", b"\x00\x01")
    assert (tmp_path / "a" / "b" / "c.bin").read_bytes() == b"\x00\x01"


def test_a_symlink_is_written_through_and_kept(tmp_path):
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real.name)
    write_text(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to("made-by-the-write.json")
    write_text(dangling, "via link")
    assert dangling.is_symlink() and (tmp_path / "made-by-the-write.json").read_text() == "via link"


def test_a_fifo_is_written_into_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen([sys.executable, "-c",
                               f"import sys; sys.stdout.write(open({str(fifo)!r}).read())"],
                              stdout=subprocess.PIPE, text=True)
    write_text(fifo, "through the pipe")
    assert reader.communicate(timeout=60)[0] == "through the pipe"
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_device_is_written_into_not_replaced():
    before = os.stat("/dev/null")
    write_text("/dev/null", "discarded")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)


_PRINT_THEN_WRITE = textwrap.dedent("""
    import sys
    from collapse_probe.output import write_text
    print("printed first", flush=True)
    write_text(sys.argv[1], "written\\n")
""")


@pytest.mark.parametrize("name", ["/dev/stdout", "/proc/self/fd/1"])
def test_a_path_naming_stdout_writes_into_a_pipe_and_appends_to_a_redirect(tmp_path, name):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    piped = subprocess.run([sys.executable, "-c", _PRINT_THEN_WRITE, name], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == "printed first\nwritten\n"
    log = tmp_path / "log.txt"
    with open(log, "w") as redirect:
        done = subprocess.run([sys.executable, "-c", _PRINT_THEN_WRITE, name], env=env,
                              stdout=redirect, stderr=subprocess.PIPE, text=True)
    assert done.returncode == 0, done.stderr
    assert log.read_text() == "printed first\nwritten\n" and _temps(tmp_path) == []


def test_save_torch_turns_a_full_disk_into_one_typed_error(tmp_path):
    import torch

    with pytest.raises(OutputError, match="disk is full"):
        output.save_torch({"w": torch.zeros(100_000)}, "/dev/full")
    target = tmp_path / "c.pth"
    output.save_torch({"w": torch.arange(3.0)}, target)
    assert torch.equal(torch.load(target, weights_only=True)["w"], torch.arange(3.0))
    assert _temps(tmp_path) == []


def test_a_full_device_is_one_typed_error():
    with pytest.raises(OutputError, match="disk is full"):
        write_text("/dev/full", "x" * 100_000)


def test_an_error_while_writing_keeps_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(OutputError, match="disk is full") as exc:
        with open_output(target) as handle:
            handle.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert "\n" not in str(exc.value)
    assert target.read_bytes() == b"old" and _temps(tmp_path) == []


@pytest.mark.parametrize("code,phrase", [(errno.EACCES, "permission denied"),
                                         (errno.EROFS, "read-only"), (errno.ENOSPC, "disk is full")])
def test_a_failed_rename_is_one_typed_error(tmp_path, monkeypatch, code, phrase):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def refuse(src, dst):  # noqa: ANN001
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(output.os, "replace", refuse)
    with pytest.raises(OutputError, match=phrase):
        write_bytes(target, b"new")
    assert target.read_bytes() == b"old" and _temps(tmp_path) == []


def test_a_path_through_a_regular_file_or_onto_a_folder_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        write_text(tmp_path / "file" / "out.json", "y")
    with pytest.raises(OutputError, match="it is a folder"):
        write_text(tmp_path, "y")
    assert (tmp_path / "file").read_text() == "x"


def test_a_check_that_fails_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def check(tmp: Path) -> None:
        assert tmp.read_bytes() == b"new" and is_temp_name(tmp.name)  # all on disk already
        raise InputError("not good enough")

    with pytest.raises(InputError):
        with open_output(target, check=check) as handle:
            handle.write(b"new")
    assert target.read_bytes() == b"old" and _temps(tmp_path) == []


def test_output_path_for_writers_that_take_a_name(tmp_path):
    target = tmp_path / "fig.png"
    with output_path(target) as tmp:
        assert tmp != target and tmp.parent == tmp_path and is_temp_name(tmp.name)
        tmp.write_bytes(b"png")
    assert target.read_bytes() == b"png" and _temps(tmp_path) == []


def test_the_temp_file_is_never_created_through_a_planted_link(tmp_path, monkeypatch):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    planted = tmp_path / ".out.json.collapse-probe-tmp-1-00000000"
    planted.symlink_to(victim)
    names = iter([planted.name, ".out.json.collapse-probe-tmp-1-11111111"])
    monkeypatch.setattr(output, "temp_name", lambda name, kind="tmp": next(names))
    write_text(tmp_path / "out.json", "mine")
    assert victim.read_text() == "precious" and (tmp_path / "out.json").read_text() == "mine"


# --------------------------------------------------------------------------- stale temps

def test_stale_temps_of_dead_processes_are_removed_and_others_kept(tmp_path):
    dead = _dead_pid()
    stale = tmp_path / f".big.pth.collapse-probe-tmp-{dead}-0123abcd"
    stale.write_bytes(b"x" * 1000)
    stale_dir = tmp_path / f".report.collapse-probe-tmp-{dead}-0123abcd"
    stale_dir.mkdir()
    (stale_dir / "report.html").write_text("half")
    live = tmp_path / f".big.pth.collapse-probe-tmp-{os.getpid()}-89abcdef"
    live.write_bytes(b"mine, being written")
    unrelated = tmp_path / f".big.pth.{dead}.tmp"
    unrelated.write_bytes(b"not ours")
    removed = remove_stale_temps(tmp_path)
    assert sorted(p.name for p in removed) == sorted([stale.name, stale_dir.name])
    assert live.exists() and unrelated.exists() and not stale.exists() and not stale_dir.exists()


def test_a_temp_file_locked_by_a_live_writer_is_kept(tmp_path):
    import fcntl

    dead = _dead_pid()  # a recycled pid must not be enough: the writer's lock is checked too
    held = tmp_path / f".x.collapse-probe-tmp-{dead}-0123abcd"
    fd = os.open(held, os.O_WRONLY | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], pass_fds=(fd,))
    os.close(fd)
    try:
        assert remove_stale_temps(tmp_path) == [] and held.exists()
    finally:
        holder.kill()
        holder.wait()
    assert [p.name for p in remove_stale_temps(tmp_path)] == [held.name]


def test_a_write_cleans_its_folder(tmp_path):
    stale = tmp_path / f".out.json.collapse-probe-tmp-{_dead_pid()}-0123abcd"
    stale.write_text("left by a killed run")
    write_text(tmp_path / "other.json", "{}")
    assert not stale.exists()


# --------------------------------------------------------------------------- folders

def test_a_new_folder_is_written_whole(tmp_path, umask_022):
    paths = write_folder(tmp_path / "rep", {"a.txt": b"A", "b.txt": b"B"})
    assert [p.name for p in paths] == ["a.txt", "b.txt"]
    assert (tmp_path / "rep" / "a.txt").read_bytes() == b"A"
    assert stat.S_IMODE((tmp_path / "rep").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "rep" / "a.txt").stat().st_mode) == 0o644
    assert _temps(tmp_path) == []


def test_an_existing_folder_is_swapped_keeping_other_files(tmp_path):
    rep = tmp_path / "rep"
    write_folder(rep, {"a.txt": b"A1", "b.txt": b"B1"})
    (rep / "notes.md").write_text("mine")
    (rep / "sub").mkdir()
    (rep / "sub" / "deep.txt").write_text("deep")
    (rep / "link").symlink_to("notes.md")
    os.chmod(rep / "a.txt", 0o600)
    kept_inode = (rep / "notes.md").stat().st_ino
    write_folder(rep, {"a.txt": b"A2"})
    assert (rep / "a.txt").read_bytes() == b"A2" and stat.S_IMODE((rep / "a.txt").stat().st_mode) == 0o600
    assert (rep / "b.txt").read_bytes() == b"B1"
    assert (rep / "notes.md").read_text() == "mine" and (rep / "notes.md").stat().st_ino == kept_inode
    assert (rep / "sub" / "deep.txt").read_text() == "deep" and os.readlink(rep / "link") == "notes.md"
    assert _temps(tmp_path) == []


def test_a_folder_swap_without_renameat2_uses_two_renames(tmp_path, monkeypatch):
    monkeypatch.setattr(output, "_exchange", lambda a, b: False)
    rep = tmp_path / "rep"
    write_folder(rep, {"a.txt": b"1"})
    write_folder(rep, {"a.txt": b"2"})
    assert (rep / "a.txt").read_bytes() == b"2" and _temps(tmp_path) == []


def test_a_folder_onto_a_file_is_refused(tmp_path):
    (tmp_path / "rep").write_text("a file")
    with pytest.raises(OutputError, match="a file of that name exists"):
        write_folder(tmp_path / "rep", {"a.txt": b"1"})
    with pytest.raises(InputError, match="plain file name"):
        write_folder(tmp_path / "new", {"../escape.txt": b"1"})
    assert (tmp_path / "rep").read_text() == "a file" and not (tmp_path / "escape.txt").exists()


# --------------------------------------------------------------------------- kill -9

_WRITER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from collapse_probe import output

    mode, target, ready = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    if mode == "file":
        with output.open_output(target) as handle:
            handle.write(b"n" * 1_000_000)
            handle.flush()
            ready.write_text("writing")
            time.sleep(120)
    elif mode == "folder-build":
        real_open = os.open
        def slow_open(path, *args, **kwargs):
            if Path(path).name == "b.txt":
                ready.write_text("half built")
                time.sleep(120)
            return real_open(path, *args, **kwargs)
        output.os.open = slow_open
        output.write_folder(target, {"a.txt": b"new a", "b.txt": b"new b"})
    elif mode == "folder-swap":
        output._exchange = lambda a, b: False
        real_rename = os.rename
        def slow_rename(src, dst):
            real_rename(src, dst)
            if ".collapse-probe-old-" in str(dst):
                ready.write_text("between the renames")
                time.sleep(120)
        output.os.rename = slow_rename
        output.write_folder(target, {"a.txt": b"new a", "b.txt": b"new b"})
""")


def _kill_mid_write(tmp_path: Path, mode: str, target: Path) -> None:
    ready = tmp_path / "ready"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", _WRITER, mode, str(target), str(ready)], env=env)
    try:
        for _ in range(6000):  # waits for the child to reach its pause, however loaded the machine
            if ready.exists() or child.poll() is not None:
                break
            time.sleep(0.01)
        assert ready.exists(), f"the writer exited early ({child.returncode})"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    ready.unlink()


def test_kill_9_during_a_file_write_keeps_the_old_file_and_the_next_run_cleans(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    target = out / "big.pth"
    target.write_bytes(b"old content")
    _kill_mid_write(tmp_path, "file", target)
    assert target.read_bytes() == b"old content"
    leftovers = _temps(out)
    assert len(leftovers) == 1 and leftovers[0].startswith(".big.pth.collapse-probe-tmp-")
    write_text(out / "big.pth", "next run")
    assert _temps(out) == [] and target.read_text() == "next run"


def test_kill_9_while_building_a_folder_keeps_the_old_folder(tmp_path):
    rep = tmp_path / "rep"
    write_folder(rep, {"a.txt": b"old a", "b.txt": b"old b"})
    _kill_mid_write(tmp_path, "folder-build", rep)
    assert sorted(os.listdir(rep)) == ["a.txt", "b.txt"]
    assert (rep / "a.txt").read_bytes() == b"old a" and (rep / "b.txt").read_bytes() == b"old b"
    assert len(_temps(tmp_path)) == 1
    write_folder(rep, {"a.txt": b"next a"})
    assert _temps(tmp_path) == [] and (rep / "b.txt").read_bytes() == b"old b"


def test_kill_9_between_the_two_renames_of_a_swap_is_undone_by_the_next_run(tmp_path):
    rep = tmp_path / "rep"
    write_folder(rep, {"a.txt": b"old a", "b.txt": b"old b"})
    _kill_mid_write(tmp_path, "folder-swap", rep)
    assert not rep.exists()  # the old folder sits under its backup name, the new one beside it
    assert len(_temps(tmp_path)) == 2
    remove_stale_temps(tmp_path)
    assert (rep / "a.txt").read_bytes() == b"old a" and (rep / "b.txt").read_bytes() == b"old b"
    assert _temps(tmp_path) == []


def test_the_next_report_after_a_cut_swap_restores_then_replaces(tmp_path):
    rep = tmp_path / "rep"
    write_folder(rep, {"a.txt": b"old a", "keep.txt": b"kept"})
    _kill_mid_write(tmp_path, "folder-swap", rep)
    write_folder(rep, {"a.txt": b"next a"})
    assert (rep / "a.txt").read_bytes() == b"next a" and (rep / "keep.txt").read_bytes() == b"kept"
    assert _temps(tmp_path) == []


# --------------------------------------------------------------------------- outputs vs inputs

def test_an_output_that_is_an_input_is_refused(tmp_path):
    ckpt = tmp_path / "c.pth"
    ckpt.write_bytes(b"checkpoint")
    (tmp_path / "link.pth").symlink_to(ckpt)
    os.link(ckpt, tmp_path / "hard.pth")
    for out in (ckpt, tmp_path / "link.pth", tmp_path / "hard.pth", tmp_path / "." / "c.pth"):
        with pytest.raises(InputError, match="is the same file as the checkpoint"):
            refuse_overwriting_inputs({"--json": out}, {"the checkpoint": ckpt})
    refuse_overwriting_inputs({"--json": tmp_path / "new.json", "--out": None, "--csv": "-"},
                              {"the checkpoint": ckpt, "--features": None})
    assert ckpt.read_bytes() == b"checkpoint"


def test_two_outputs_on_one_file_are_refused_but_devices_may_repeat(tmp_path):
    with pytest.raises(InputError, match="are the same file"):
        refuse_overwriting_inputs([("--out", tmp_path / "f"), ("--json", tmp_path / "f")], [])
    refuse_overwriting_inputs([("--out", "/dev/null"), ("--json", "/dev/null")], [])


@pytest.mark.parametrize("where", ["cwd", "parent_of_cwd"])
def test_the_current_folder_and_those_above_it_are_never_swapped(tmp_path, monkeypatch, where):
    work = tmp_path / "project" / "run"
    work.mkdir(parents=True)
    (work / "train.py").write_text("keep")
    monkeypatch.chdir(work)
    target = work if where == "cwd" else work.parent
    with pytest.raises(OutputError, match="current folder or one above it.*report"):
        write_folder(target, {"report.md": b"x"})
    assert sorted(p.name for p in target.iterdir()) == (["train.py"] if where == "cwd" else ["run"])
    assert (work / "train.py").read_text() == "keep"
    write_folder(work / "report", {"report.md": b"x"})  # a folder inside it is fine
    assert (work / "report" / "report.md").read_bytes() == b"x"
