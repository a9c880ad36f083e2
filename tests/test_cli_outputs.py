"""What the commands write: never over an input, with the usual modes, through links and
devices, one line and exit 2 on write errors, and hostile names shown as data."""

from __future__ import annotations

import hashlib
import os
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from layouts import planted_prototypes, write_dino
from typer.testing import CliRunner

from collapse_probe.cli.app import app
from collapse_probe.output import is_temp_name

runner = CliRunner()
ENV = {"GITHUB_ACTIONS": "", "GITHUB_STEP_SUMMARY": "", "COLUMNS": "200"}
HOSTILE = "x[/bold]y\n::error::pwn\x1b[31m<b>|=1"


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_dino(tmp_path / "c.pth", prototypes=planted_prototypes(12, 3, 16, seed=7)[0])
    np.save(tmp_path / "feats.npy", np.random.default_rng(0).standard_normal((64, 2, 16)).astype("float32"))
    return tmp_path


def run(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), env={**ENV, **(env or {})})


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_error_line(result, needle: str) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout


# --------------------------------------------------------------------------- outputs vs inputs

@pytest.mark.parametrize("args", [
    ["audit", "c.pth", "--json", "c.pth"],
    ["audit", "c.pth", "--json", "link.pth"],
    ["audit", "c.pth", "--json", "hard.pth"],
    ["usage", "c.pth", "--json", "c.pth"],
    ["usage", "c.pth", "--features", "feats.npy", "--json", "feats.npy"],
    ["finetune", "c.pth", "--features", "feats.npy", "--out", "link.pth"],
    ["finetune", "c.pth", "--features", "feats.npy", "--out", "new.pth", "--json", "c.pth"],
    ["finetune", "c.pth", "--features", "feats.npy", "--out", "new.pth", "--json", "feats.npy"],
    ["report", "c.pth", "--out", "rep"],
    ["trend", "c.pth", "--out", "tr"],
], ids=lambda a: " ".join(a))
def test_an_output_that_is_an_input_is_refused_before_anything_runs(work, args):
    (work / "link.pth").symlink_to("c.pth")
    os.link(work / "c.pth", work / "hard.pth")
    (work / "rep").mkdir()
    (work / "rep" / "report.json").symlink_to("../c.pth")
    (work / "tr").mkdir()
    os.link(work / "c.pth", work / "tr" / "trend.json")
    before = digest(work / "c.pth"), digest(work / "feats.npy")
    one_error_line(run(*args), "same file as")
    assert (digest(work / "c.pth"), digest(work / "feats.npy")) == before
    assert not (work / "new.pth").exists()


def test_finetune_out_and_json_on_one_file_is_refused(work):
    one_error_line(run("finetune", "c.pth", "--features", "feats.npy", "--out", "f.pth",
                       "--json", "f.pth"), "are the same file")
    assert not (work / "f.pth").exists()


@pytest.mark.parametrize("target", ["pyproject.toml", "runs/c.pth"])
def test_gate_junit_never_replaces_what_it_reads(work, target):
    (work / "runs").mkdir()
    (work / "c.pth").rename(work / "runs" / "c.pth")
    (work / "pyproject.toml").write_text('[tool.collapse-probe]\ncheckpoints = ["runs/*.pth"]\n'
                                         'fail_under = 0.01\n')
    before = digest(work / target)
    one_error_line(run("gate", "--junit-xml", target), "same file as")
    assert digest(work / target) == before


# --------------------------------------------------------------------------- modes, links, devices

def test_json_gets_the_umask_mode_and_keeps_a_replaced_mode(work):
    old = os.umask(0o022)
    try:
        assert run("audit", "c.pth", "--json", "out.json", "-q").exit_code == 0
        assert stat.S_IMODE(os.stat(work / "out.json").st_mode) == 0o644
        os.chmod(work / "out.json", 0o640)
        assert run("audit", "c.pth", "--json", "out.json", "-q").exit_code == 0
        assert stat.S_IMODE(os.stat(work / "out.json").st_mode) == 0o640
    finally:
        os.umask(old)
    assert not [p for p in os.listdir(work) if is_temp_name(p)]


def test_json_to_dev_null_and_through_a_symlink(work):
    before = os.stat("/dev/null")
    assert run("audit", "c.pth", "--json", "/dev/null", "-q").exit_code == 0
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode) and os.stat("/dev/null").st_rdev == before.st_rdev
    (work / "results").mkdir()
    (work / "latest.json").symlink_to("results/run1.json")
    assert run("audit", "c.pth", "--json", "latest.json", "-q").exit_code == 0
    assert (work / "latest.json").is_symlink() and (work / "results" / "run1.json").stat().st_size > 0


def test_write_errors_are_one_line_and_exit_2(work):
    (work / "file").write_text("x")
    one_error_line(run("audit", "c.pth", "--json", "file/out.json", "-q"), "not a folder")
    one_error_line(run("audit", "c.pth", "--json", "/dev/full", "-q"), "disk is full")
    one_error_line(run("trend", "c.pth", "--out", "file", "-q"), "not a folder")
    one_error_line(run("report", "c.pth", "--out", "file", "-q"), "expected a folder")
    one_error_line(run("finetune", "c.pth", "--features", "feats.npy", "--out", "file/x.pth",
                       "--steps", "1", "-q"), "not a folder")
    assert (work / "file").read_text() == "x"


def test_report_replaces_a_folder_whole_and_keeps_other_files(work):
    assert run("report", "c.pth", "--out", "rep", "-q").exit_code == 0
    (work / "rep" / "notes.txt").write_text("mine")
    first = (work / "rep" / "report.json").read_text()
    assert run("report", "c.pth", "--out", "rep", "--eps", "0.1", "-q").exit_code == 0
    assert (work / "rep" / "notes.txt").read_text() == "mine"
    assert (work / "rep" / "report.json").read_text() != first
    assert not [p for p in os.listdir(work) if is_temp_name(p)]


# --------------------------------------------------------------------------- hostile names

@pytest.fixture
def hostile(work):
    rng = np.random.default_rng(1)
    collapsed = np.repeat(rng.standard_normal((3, 8)), 8, axis=0)  # 3 unique of 24: fails a gate
    np.savez(work / "h.npz", **{HOSTILE: collapsed.astype("float32")})
    return work / "h.npz"


def test_a_markup_name_does_not_crash_audit(hostile):
    result = run("audit", str(hostile))
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stdout and "x[/bold]y\\x0a::error::pwn\\x1b[31m" in result.stdout
    assert not any(line.startswith("::") for line in result.stdout.splitlines())


def test_hostile_names_in_the_report_folder(hostile, work):
    assert run("report", str(hostile), "--out", "rep", "-q").exit_code == 0
    csv_text = (work / "rep" / "heads.csv").read_text()
    assert "'x[/bold]" not in csv_text  # does not start with a formula character: unchanged
    html = (work / "rep" / "report.html").read_text()
    assert "<b>|" not in html and "&lt;b&gt;|" in html
    markdown = (work / "rep" / "report.md").read_text()
    assert "\x1b" not in markdown and not any(line.startswith("::") for line in markdown.splitlines())


def test_gate_under_github_actions_with_a_hostile_head(hostile, work):
    (work / "pyproject.toml").write_text('[tool.collapse-probe]\ncheckpoints = ["h.npz"]\n'
                                         'fail_under = 0.9\n')
    summary = work / "summary.md"
    result = run("gate", "--junit-xml", "junit.xml",
                 env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})
    assert result.exit_code == 1, result.stderr
    commands = [line for line in result.stdout.splitlines() if line.startswith("::")]
    assert len(commands) == 1 and commands[0].startswith("::error title=collapse-probe gate")
    assert "x[/bold]y%0A%3A%3Aerror%3A%3Apwn\\x1b[31m" in commands[0] and "\x1b" not in result.stdout
    ET.parse(work / "junit.xml")  # valid XML despite ESC in the name
    text = summary.read_text()
    assert "<b>" not in text and "\x1b" not in text


def _command_lines(text: str) -> list[str]:
    # GitHub's runner skips leading blanks before "::", and reads "##[" anywhere in a line.
    return [line for line in text.splitlines() if line.lstrip().startswith("::") or "##[" in line]


def test_no_name_starts_a_line_of_any_command(work):
    rng = np.random.default_rng(3)
    collapsed = np.repeat(rng.standard_normal((3, 8)), 8, axis=0).astype("float32")
    # Long names wrap: the part after the wrap would start a line of its own.
    for i, name in enumerate(["::warning::pwn", "long " * 17 + "::notice::wrapped",
                              "::warning::x " * 7 + "##[error]legacy"]):
        np.savez(work / f"n{i}.npz", **{name: collapsed})
    np.savez(work / "::error::file.npz", head=collapsed)
    files = sorted(p.name for p in work.glob("*.npz"))
    env = {"COLUMNS": "120"}
    for args in (["audit", *files], *(["inspect", f] for f in files),
                 ["report", *files, "--out", "rep", "-q"], ["trend", *files, "--out", "tr", "-q"]):
        result = run(*args, env=env)
        assert result.exit_code in (0, 1), (args, result.stderr)
        assert _command_lines(result.stdout + result.stderr) == [], args
    (work / "pyproject.toml").write_text('[tool.collapse-probe]\ncheckpoints = ["*.npz"]\n'
                                         'fail_under = 0.9\n')
    result = run("gate", env={**env, "GITHUB_ACTIONS": "true"})
    assert result.exit_code == 1, result.stderr
    commands = _command_lines(result.stdout)
    assert len(commands) == 4 and all(c.startswith("::error title=collapse-probe gate") for c in commands)


def test_a_mathtext_name_does_not_stop_the_figures(work):
    rng = np.random.default_rng(2)
    np.savez(work / "m.npz", **{"a$\\frac{$b": rng.standard_normal((20, 8)).astype("float32")})
    result = run("report", "m.npz", "--out", "rep", "-q")
    assert result.exit_code == 0, result.stderr
    assert (work / "rep" / "report.html").exists()
