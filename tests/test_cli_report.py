"""The report command through its runner: the folder, exit codes, verdict options, atomicity."""

import json
import os

import pytest
from typer.testing import CliRunner

from collapse_probe.cli.app import app
from collapse_probe.examples.synthetic import write_synthetic_dino

runner = CliRunner()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    # 20 planted groups in 512 prototypes: 3.9 % unique.
    write_synthetic_dino(folder / "small.pth", num_prototypes=512, num_groups=20, dim=16, seed=5)
    return folder


def invoke(args, cwd):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return runner.invoke(app, args, env={"COLUMNS": "100"})
    finally:
        os.chdir(old)


@pytest.fixture(scope="module")
def written(folder):
    result = invoke(["report", "small.pth", "--out", "rep", "--eps", "0.025", "--eps", "0.5",
                     "--fail-under", "0.05"], folder)
    return result, folder / "rep"


def test_report_folder_is_complete(written):
    result, out = written
    names = sorted(p.name for p in out.iterdir())
    for name in ("report.html", "report.md", "report.json", "heads.csv", "utilization_vs_eps.png",
                 "utilization_vs_eps.svg", "small_head_pca.png", "small_head_nn_similarity.svg"):
        assert name in names
    assert len(names) == 4 + 2 * 5
    data = json.loads((out / "report.json").read_text())
    (head,) = data["checkpoints"][0]["heads"]
    assert head["results"][0]["unique"] == 20
    assert head["verdict"]["label"] == "partial-collapse"
    assert (out / "heads.csv").read_text().count("\n") == 1 + 2
    assert "small.pth / head: partial-collapse" in result.stdout


def test_gate_failure_still_writes_and_exits_1(written):
    result, out = written
    assert result.exit_code == 1, result.output
    assert "gate FAILED" in result.stdout
    assert "Gate failed" in (out / "report.md").read_text()


def test_verdict_options_reach_the_report_and_the_audit(folder):
    result = invoke(["audit", "small.pth", "--eps", "0.025", "--healthy-floor", "0.01", "--json", "-"],
                    folder)
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.stdout)["checkpoints"][0]["heads"][0]["verdict"]
    assert verdict["evidence"]["healthy_floor"] == 0.01
    # 20 planted groups, the largest holding most of the head: a low floor no longer makes it
    # healthy, the dominant-group rule still reads it as partial collapse at the same eps.
    assert verdict["label"] == "partial-collapse" and "one group holds" in verdict["reason"]
    assert verdict["evidence"]["duplication_eps"] == 0.025
    result = invoke(["audit", "small.pth", "--eps", "0.025", "--collapsed-max-unique", "25",
                     "--json", "-"], folder)
    assert json.loads(result.stdout)["checkpoints"][0]["heads"][0]["verdict"]["label"] == "collapsed"


@pytest.mark.parametrize(("args", "phrase"), [
    (["report", "missing.pth", "--out", "new"], "missing.pth"),
    (["report", "--out", "new"], "expected at least one path or zoo name"),
    (["report", "small.pth", "--out", "new", "--healthy-floor", "2"], "healthy_floor"),
    (["report", "small.pth", "--out", "new", "--eps", "3"], "eps: expected a distance in (0, 2]"),
])
def test_errors_exit_2_and_write_nothing(folder, args, phrase):
    before = sorted(p.name for p in folder.iterdir())
    result = invoke(args, folder)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert phrase in result.stderr and "Traceback" not in result.output
    assert sorted(p.name for p in folder.iterdir()) == before  # no "new", no temporary folder


def test_error_leaves_an_existing_report_folder_unchanged(folder, tmp_path):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "report.md").write_text("previous")
    result = invoke(["report", "small.pth", "missing.pth", "--out", str(out)], folder)
    assert result.exit_code == 2
    assert [p.name for p in out.iterdir()] == ["report.md"]
    assert (out / "report.md").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]


def test_out_must_be_a_folder(folder, tmp_path):
    target = tmp_path / "taken"
    target.write_text("x")
    result = invoke(["report", "small.pth", "--out", str(target)], folder)
    assert result.exit_code == 2 and "--out: expected a folder" in result.stderr
    assert target.read_text() == "x"
