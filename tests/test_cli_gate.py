"""`collapse-probe gate` through the runner: exit codes 0 / 1 / 2, JUnit file, GitHub outputs."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from layouts import planted_prototypes, write_dino
from typer.testing import CliRunner

from collapse_probe.cli.app import app

runner = CliRunner()
NO_GITHUB = {"GITHUB_ACTIONS": "", "GITHUB_STEP_SUMMARY": "", "COLUMNS": "200"}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project folder with runs/good.pth (30 of 120 unique, 25 %) and runs/poor.pth (6 of 120, 5 %)."""
    root = tmp_path_factory.mktemp("project")
    (root / "runs").mkdir()
    write_dino(root / "runs" / "good.pth", prototypes=planted_prototypes(30, 4, 16, seed=2)[0])
    write_dino(root / "runs" / "poor.pth", prototypes=planted_prototypes(6, 20, 16, seed=3)[0])
    return root


def write_pyproject(folder, body):
    (folder / "pyproject.toml").write_text('[project]\nname = "demo"\n\n[tool.collapse-probe]\n' + body)


def invoke(folder, args=(), env=NO_GITHUB, monkeypatch=None):
    monkeypatch.chdir(folder)
    return runner.invoke(app, ["gate", *args], env=env)


@pytest.mark.parametrize(("body", "code", "phrase"), [
    ('checkpoints = ["runs/good.pth"]\nfail_under = 0.2\n', 0, "gate passed"),
    ('checkpoints = ["runs/*.pth"]\nfail_under = 0.2\n', 1, "1 of 2 checks failed"),
    ('checkpoints = ["runs/good.pth", "runs/missing.pth"]\nfail_under = 0.01\n', 1,
     "checkpoint 'runs/missing.pth' does not exist"),
    ('checkpoints = ["runs/*.ckpt"]\nfail_under = 0.01\n', 1, "glob 'runs/*.ckpt' matched no file"),
    ('checkpoints = ["runs/good.pth"]\n[tool.collapse-probe.heads]\nhead = 0.01\nhead_dense = 0.01\n', 1,
     "no checkpoint has a head named 'head_dense'"),
])
def test_exit_codes(project, monkeypatch, body, code, phrase):
    write_pyproject(project, body)
    result = invoke(project, monkeypatch=monkeypatch)
    assert result.exit_code == code, result.output
    assert phrase in result.stdout
    assert "::error" not in result.stdout  # not under GitHub Actions


@pytest.mark.parametrize(("body", "phrase"), [
    ('checkpoints = ["runs/good.pth"]\nfail_undr = 0.2\n', "(did you mean 'fail_under'?)"),
    ('checkpoints = ["runs/good.pth"]\nfail_under = 20\n', "`fail_under` must be a utilization fraction"),
    ('checkpoints = "runs/good.pth"\n[tool.collapse-probe.heads]\nhead = "1%"\n', "`heads.head` must be"),
    ('checkpoints = [\n', "is not valid TOML"),
])
def test_bad_config_is_exit_2_with_one_line(project, monkeypatch, body, phrase):
    write_pyproject(project, body)
    result = invoke(project, monkeypatch=monkeypatch)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and phrase in lines[0]


def test_no_pyproject_is_exit_2(tmp_path, monkeypatch):
    result = invoke(tmp_path, monkeypatch=monkeypatch)
    assert result.exit_code == 2 and "no pyproject.toml in" in result.stderr


def test_config_option_takes_a_standalone_file_and_writes_junit(project, tmp_path, monkeypatch):
    config = tmp_path / "gate.toml"
    config.write_text(f'checkpoints = ["{project}/runs/*.pth"]\nfail_under = 0.1\n')
    junit = tmp_path / "reports" / "gate.xml"
    result = invoke(tmp_path, ["--config", str(config), "--junit-xml", str(junit)], monkeypatch=monkeypatch)
    assert result.exit_code == 1, result.output
    root = ET.parse(junit).getroot()
    assert (root.tag, root.get("tests"), root.get("failures")) == ("testsuites", "2", "1")
    assert [p.name for p in junit.parent.iterdir()] == ["gate.xml"]  # no temporary file left


def test_github_actions_annotations_and_step_summary(project, tmp_path, monkeypatch):
    write_pyproject(project, 'checkpoints = ["runs/*.pth"]\nfail_under = 0.1\n')
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary), "COLUMNS": "200"}
    result = invoke(project, env=env, monkeypatch=monkeypatch)
    assert result.exit_code == 1
    errors = [line for line in result.stdout.splitlines() if line.startswith("::error ")]
    assert len(errors) == 1
    assert errors[0].startswith("::error title=collapse-probe gate%3A ")
    assert errors[0].endswith("poor.pth / head::6/120 unique = 5.00 %25 at eps 0.025 < floor 10.00 %25")
    text = summary.read_text()
    assert text.startswith("# earlier step\n### :x: collapse-probe gate FAILED")  # appended
    assert "| 6 | 120 | 5.00 % | 10.00 % | **FAIL** |" in text
    assert "| 30 | 120 | 25.00 % | 10.00 % | pass |" in text


def test_an_unwritable_step_summary_warns_and_keeps_the_verdict(project, tmp_path, monkeypatch):
    write_pyproject(project, 'checkpoints = ["runs/good.pth"]\nfail_under = 0.1\n')
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(tmp_path), "COLUMNS": "200"}  # a folder
    result = invoke(project, env=env, monkeypatch=monkeypatch)
    assert result.exit_code == 0
    assert "gate passed" in result.stdout and "::error" not in result.stdout
    assert result.stderr.startswith("warning: cannot append to GITHUB_STEP_SUMMARY")
