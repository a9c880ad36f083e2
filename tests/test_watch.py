"""The watcher: audit each checkpoint once it is completely written, never a half-written one."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import torch
from layouts import planted_prototypes, write_dino

from collapse_probe.errors import InputError
from collapse_probe.runs import Watcher, read_jsonl

K, D = 120, 16


def checkpoint_bytes(tmp_path: Path, *, groups: int, epoch: int, seed: int = 0) -> bytes:
    """The bytes of a DINO checkpoint with ``groups`` duplicate groups and an ``epoch`` entry."""
    prototypes, _ = planted_prototypes(groups, K // groups, D, seed=seed)
    scratch = write_dino(tmp_path / f".scratch-{groups}-{epoch}.bin", prototypes=prototypes,
                         with_optimizer=False)
    state = torch.load(scratch, weights_only=False)
    state["epoch"] = epoch
    buffer = io.BytesIO()
    torch.save(state, buffer)
    scratch.unlink()
    return buffer.getvalue()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def kinds(events) -> list[tuple[str, str]]:
    return [(Path(e.path).name, e.kind) for e in events]


def test_a_partially_written_file_is_retried_until_complete_then_audited_once(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    data = checkpoint_bytes(tmp_path, groups=10, epoch=1)
    target = run / "checkpoint0000.pth"
    target.write_bytes(data[: len(data) // 2])
    watcher = Watcher(run, jsonl=tmp_path / "out" / "trend.jsonl", eps=[0.025])

    assert kinds(watcher.poll()) == [("checkpoint0000.pth", "new")]
    # Same size on the second poll, but a half zip does not load: retried, not audited, no crash.
    events = watcher.poll()
    assert kinds(events) == [("checkpoint0000.pth", "unreadable")]
    assert not (tmp_path / "out" / "trend.jsonl").exists()
    assert kinds(watcher.poll()) == [("checkpoint0000.pth", "unreadable")]

    with target.open("ab") as handle:  # the writer finishes
        handle.write(data[len(data) // 2:])
    assert kinds(watcher.poll()) == [("checkpoint0000.pth", "new")]  # changed: wait one more poll
    events = watcher.poll()
    assert kinds(events) == [("checkpoint0000.pth", "audited")]
    (head,) = events[0].entry.heads
    assert (events[0].entry.epoch, head.name, head.unique, head.num_prototypes) == (1, "head", (10,), K)
    assert watcher.poll() == []  # audited once

    recorded = read_jsonl(tmp_path / "out" / "trend.jsonl")
    assert [e.epoch for e in recorded.entries] == [1]
    assert recorded.entries[0].heads[0].unique == (10,)


def test_rewritten_latest_checkpoint_is_audited_again_and_trend_is_in_epoch_order(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    jsonl = tmp_path / "trend.jsonl"
    watcher = Watcher(run, jsonl=jsonl, eps=[0.025, 0.5])
    (run / "checkpoint.pth").write_bytes(checkpoint_bytes(tmp_path, groups=40, epoch=1))
    (run / "log.txt").write_text('{"train_loss": 4.0, "epoch": 0}\n')  # not a checkpoint
    watcher.poll()
    assert kinds(watcher.poll()) == [("checkpoint.pth", "audited")]

    (run / "checkpoint0001.pth").write_bytes(checkpoint_bytes(tmp_path, groups=20, epoch=2))
    latest = checkpoint_bytes(tmp_path, groups=8, epoch=2, seed=5)
    (run / "checkpoint.pth").write_bytes(latest)
    os.utime(run / "checkpoint.pth", ns=(10**18, 10**18))  # a new version even on coarse clocks
    assert sorted(kinds(watcher.poll())) == [("checkpoint.pth", "new"), ("checkpoint0001.pth", "new")]
    assert sorted(kinds(watcher.poll())) == [("checkpoint.pth", "audited"), ("checkpoint0001.pth", "audited")]

    report = watcher.report()
    names = [(Path(e.path).name, e.epoch, e.heads[0].unique[0]) for e in report.entries]
    assert names == [("checkpoint.pth", 1, 40), ("checkpoint0001.pth", 2, 20), ("checkpoint.pth", 2, 8)]
    assert [t.eps for t in report.thresholds] == [0.025, 0.5]
    assert len(read_jsonl(jsonl).entries) == 3


def test_a_restarted_watcher_does_not_audit_recorded_checkpoints_again(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    jsonl = tmp_path / "trend.jsonl"
    (run / "checkpoint0000.pth").write_bytes(checkpoint_bytes(tmp_path, groups=12, epoch=1))
    first = Watcher(run, jsonl=jsonl, eps=0.025, sleep=lambda seconds: None)
    first.run(max_polls=2)
    assert len(first.summary().audited) == 1
    second = Watcher(run, jsonl=jsonl, eps=0.025)
    second.poll()
    second.poll()
    summary = second.summary()
    assert summary.audited == () and len(summary.report.entries) == 1
    assert len(read_jsonl(jsonl).entries) == 1


def test_run_sleeps_between_polls_and_stops_cleanly_on_ctrl_c(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint0000.pth").write_bytes(checkpoint_bytes(tmp_path, groups=6, epoch=1))
    clock = FakeClock()

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if len(clock.sleeps) == 3:
            raise KeyboardInterrupt

    watcher = Watcher(run, eps=0.025, interval=5.0, clock=clock, sleep=sleep)
    summary = watcher.run()
    assert summary.interrupted
    assert clock.sleeps == [5.0, 5.0, 5.0]
    assert summary.polls == 3
    assert [e.heads[0].unique for e in summary.audited] == [(6,)]
    assert summary.pending == () and summary.failed == ()


def test_settle_time_uses_the_injected_clock_and_stop_ends_the_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint0000.pth").write_bytes(checkpoint_bytes(tmp_path, groups=6, epoch=1))
    clock = FakeClock()
    watcher = Watcher(run, eps=0.025, interval=10.0, settle_s=25.0, clock=clock, sleep=clock.sleep)
    summary = watcher.run(max_polls=3)  # t = 0 (new), 10 (15 s short), 20 (still short)
    assert summary.audited == () and summary.pending == (str((run / "checkpoint0000.pth").resolve()),)
    summary = watcher.run(stop=lambda: len(watcher.summary().audited) == 1)  # t = 30: audited
    assert len(summary.audited) == 1 and not summary.interrupted


def test_a_loadable_file_without_prototypes_fails_once_and_is_not_retried(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"epoch": 3, "model": {"backbone.weight": torch.ones(2, 2)}}, run / "checkpoint0003.pth")
    watcher = Watcher(run, eps=0.025)
    watcher.poll()
    assert kinds(watcher.poll()) == [("checkpoint0003.pth", "failed")]
    assert watcher.poll() == []
    assert [Path(p).name for p, _ in watcher.summary().failed] == ["checkpoint0003.pth"]


def test_watcher_validates_its_arguments(tmp_path):
    with pytest.raises(InputError, match="folder"):
        Watcher(tmp_path / "missing")
    with pytest.raises(InputError, match="interval"):
        Watcher(tmp_path, interval=0)
    with pytest.raises(InputError, match="method"):
        Watcher(tmp_path, method="average")


def test_a_checkpoint_refused_as_unsafe_fails_instead_of_being_retried(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    # A class from this test module is outside the safe allow-list of weights-only loading.
    torch.save({"epoch": 1, "odd": UnsafeThing(a=1)}, run / "checkpoint0001.pth")
    watcher = Watcher(run, eps=0.025)
    watcher.poll()
    (event,) = watcher.poll()
    assert event.kind == "failed" and "trust" in event.message
    assert watcher.poll() == []


class UnsafeThing(dict):
    """A pickled class that weights-only loading refuses."""


def test_recursive_watch_follows_dinov2_eval_folders(tmp_path):
    from layouts import write_dinov2

    run = tmp_path / "eval"
    (run / "training_2499").mkdir(parents=True)
    (run / ".hidden").mkdir()
    write_dinov2(run / "training_2499" / "teacher_checkpoint.pth",
                 prototypes=planted_prototypes(8, 15, D)[0])
    (run / ".hidden" / "teacher_checkpoint.pth").write_bytes(b"not looked at")
    flat = Watcher(run, eps=0.025)
    flat.poll()
    assert flat.poll() == []
    watcher = Watcher(run, recursive=True, eps=0.025)
    watcher.poll()
    (event,) = watcher.poll()
    assert event.kind == "audited" and (event.entry.epoch, event.entry.epoch_source) == (2499, "folder")
    assert event.entry.heads[0].unique == (8,)


# --------------------------------------------------------------------------- rewritten in place

def _rewrite_in_place(path: Path, state: dict) -> None:
    """What DINO's ``save_on_master`` does every epoch: ``torch.save`` to the same path, which
    truncates and rewrites the same inode."""
    inode = path.stat().st_ino
    torch.save(state, path)
    assert path.stat().st_ino == inode


@pytest.mark.parametrize("how", ["rewritten", "truncated"])
def test_checkpoint_rewritten_in_place_while_it_is_read(tmp_path, monkeypatch, how):
    """The file changes between torch.load and the head read (where a memory-mapped reader
    would touch pages past the new end of file: SIGBUS). The watcher reads into memory, sees
    the change, and audits the new version on a later poll."""
    run = tmp_path / "run"
    run.mkdir()
    target = run / "checkpoint.pth"
    target.write_bytes(checkpoint_bytes(tmp_path, groups=10, epoch=1))
    newer = torch.load(io.BytesIO(checkpoint_bytes(tmp_path, groups=30, epoch=2)),
                       weights_only=False)
    real_load = torch.load
    mmap_requests: list[object] = []
    rewrites = []

    def load(source, *args, **kwargs):
        mmap_requests.append(kwargs.get("mmap"))
        result = real_load(source, *args, **kwargs)
        if not rewrites:  # the job writes the next epoch while we read this one
            rewrites.append(True)
            if how == "truncated":
                with open(target, "r+b") as handle:
                    handle.truncate(100)
            _rewrite_in_place(target, newer)
        return result

    monkeypatch.setattr(torch, "load", load)
    clock = FakeClock()
    watcher = Watcher(run, eps=[0.025], clock=clock)
    assert kinds(watcher.poll()) == [("checkpoint.pth", "new")]
    changed = watcher.poll()
    assert kinds(changed) == [("checkpoint.pth", "new")] and "changed while" in changed[0].message
    assert kinds(watcher.poll()) == [("checkpoint.pth", "audited")]
    (entry,) = watcher.summary().audited
    assert entry.epoch == 2 and entry.heads[0].unique[0] == 30  # the new version, not a mix
    assert not any(mmap_requests), "a file being written was memory-mapped"


def test_watch_survives_a_job_rewriting_the_checkpoint_continuously(tmp_path):
    """A writer thread rewrites checkpoint.pth in place (two sizes, alternating) while the
    watcher polls without pause: no crash, every event a known kind, and once the writer
    stops the last version is audited."""
    import threading

    from collapse_probe.runs.watch import EVENT_KINDS

    run = tmp_path / "run"
    run.mkdir()
    target = run / "checkpoint.pth"
    versions = [torch.load(io.BytesIO(checkpoint_bytes(tmp_path, groups=g, epoch=e)),
                           weights_only=False) for e, g in ((1, 10), (2, 40))]
    torch.save(versions[0], target)
    stop = threading.Event()

    def writer() -> None:
        for i in range(200):
            if stop.is_set():
                return
            _rewrite_in_place(target, versions[i % 2])
        _rewrite_in_place(target, versions[1])

    thread = threading.Thread(target=writer)
    watcher = Watcher(run, eps=[0.025])
    thread.start()
    events = []
    try:
        while thread.is_alive():
            events += watcher.poll()
    finally:
        stop.set()
        thread.join()
    for _ in range(3):
        events += watcher.poll()
    assert {e.kind for e in events} <= set(EVENT_KINDS)
    assert watcher.summary().audited[-1].heads[0].unique[0] == 40
    assert watcher.summary().audited[-1].epoch == 2


@pytest.mark.parametrize("how", ["rewritten", "deleted"])
def test_trend_rereads_a_file_changed_under_it_or_reports_it(tmp_path, monkeypatch, how):
    """``trend`` reads a live ``checkpoint.pth`` into memory; a rewrite during the read is
    retried once the file is stable, a deletion ends in one line and exit 2."""
    from typer.testing import CliRunner

    import collapse_probe.runs.compute as compute
    from collapse_probe.cli.app import app

    run = tmp_path / "run"
    run.mkdir()
    target = run / "checkpoint.pth"
    target.write_bytes(checkpoint_bytes(tmp_path, groups=10, epoch=1))
    newer = torch.load(io.BytesIO(checkpoint_bytes(tmp_path, groups=30, epoch=2)),
                       weights_only=False)
    real_load = torch.load
    calls: list[object] = []

    def load(source, *args, **kwargs):
        calls.append(kwargs.get("mmap"))
        result = real_load(source, *args, **kwargs)
        if len(calls) == 2:  # during the audit, after the epoch was read
            if how == "rewritten":
                _rewrite_in_place(target, newer)
            else:
                target.unlink()
        return result

    waits: list[Path] = []
    monkeypatch.setattr(torch, "load", load)
    monkeypatch.setattr(compute, "_wait_until_stable", lambda path, **_: waits.append(path))
    if how == "deleted":
        result = CliRunner().invoke(app, ["trend", str(target), "--eps", "0.025", "--out",
                                          str(tmp_path / "out")])
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "No such file" in lines[0], result.stderr
    else:
        (entry,) = compute.trend([target], eps=[0.025]).entries
        assert waits == [target] and entry.heads[0].unique[0] == 30
    assert not any(calls), "a file that may be rewritten was memory-mapped"


@pytest.mark.parametrize("cut", [0, 100, 0.5])
def test_trend_waits_for_a_checkpoint_caught_half_written(tmp_path, monkeypatch, cut):
    """A ``checkpoint.pth`` read between two of ``torch.save``'s writes looks truncated although
    it did not change during the read: ``trend`` waits, sees the job still writing, reads the
    finished file instead of failing on a 'damaged' one."""
    import collapse_probe.runs.compute as compute

    target = tmp_path / "checkpoint.pth"
    full = checkpoint_bytes(tmp_path, groups=30, epoch=3)
    target.write_bytes(full[:cut if isinstance(cut, int) else int(len(full) * cut)])
    waits: list[Path] = []

    def job_finishes(path, **_):  # the writer completes the file while trend waits
        waits.append(path)
        with open(path, "r+b") as handle:  # same inode, as torch.save to the same path
            handle.write(full)
        return True

    monkeypatch.setattr(compute, "_wait_until_stable", job_finishes)
    (entry,) = compute.trend([target], eps=[0.025]).entries
    assert waits == [target]
    assert entry.epoch == 3 and entry.heads[0].unique[0] == 30


def test_trend_reports_a_damaged_checkpoint_that_no_job_is_writing(tmp_path, monkeypatch):
    import collapse_probe.runs.compute as compute
    from collapse_probe.errors import CheckpointError

    target = tmp_path / "checkpoint.pth"
    target.write_bytes(checkpoint_bytes(tmp_path, groups=30, epoch=3)[:500])
    waits: list[Path] = []
    monkeypatch.setattr(compute, "_wait_until_stable",
                        lambda path, **_: waits.append(path) or False)  # nothing changes
    with pytest.raises(CheckpointError, match="truncated or damaged"):
        compute.trend([target], eps=[0.025])
    assert waits == [target]
    # A settled file unchanged for a second reads the same: the real wait says so.
    assert compute._wait_until_stable(target, quiet_s=0.01) is False
