"""The audit command through its runner: golden table, JSON, gate exit codes, errors."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from layouts import write_dinov2, write_lightly

from collapse_probe.cli.app import app
from collapse_probe.examples.synthetic import write_synthetic_dino

GOLDEN = Path(__file__).parent / "golden"
runner = CliRunner()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    groups = write_synthetic_dino(folder / "small.pth", num_prototypes=512, num_groups=20, dim=16,
                                  seed=5)
    return folder, groups


def invoke(args, cwd):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return runner.invoke(app, args, env={"COLUMNS": "100"})
    finally:
        os.chdir(old)


def test_golden_table(small):
    folder, _ = small
    result = invoke(["audit", "small.pth", "--eps", "0.025", "--eps", "0.5"], folder)
    assert result.exit_code == 0, result.output
    expected = (GOLDEN / "audit_small.txt").read_text()
    assert result.stdout == expected


def test_json_to_file_matches_planted_groups(small, tmp_path):
    folder, groups = small
    out = tmp_path / "report.json"
    result = invoke(["audit", "small.pth", "--cosine", "0.9996875", "--json", str(out)], folder)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    (checkpoint,) = data["checkpoints"]
    assert checkpoint["format"] == "dino" and checkpoint["network"] == "teacher"
    assert len(checkpoint["sha256"]) == 64
    (head,) = checkpoint["heads"]
    (res,) = head["results"]
    assert res["unique"] == len(np.unique(groups)) == 20
    assert res["eps"] == pytest.approx(0.025)


def test_json_to_stdout_is_pure_json(small):
    folder, _ = small
    result = invoke(["audit", "small.pth", "--eps", "0.1", "--json", "-"], folder)
    assert result.exit_code == 0
    assert json.loads(result.stdout)["checkpoints"][0]["heads"][0]["results"][0]["unique"] == 20


@pytest.mark.parametrize(("floor", "code"), [("0.03", 0), ("0.05", 1)])
def test_gate_exit_codes(small, floor, code):
    folder, _ = small
    # 20 unique of 512 = 3.9 %
    result = invoke(["audit", "small.pth", "--fail-under", floor], folder)
    assert result.exit_code == code, result.output
    assert ("gate PASSED" if code == 0 else "gate FAILED") in result.stdout


def test_gate_fails_closed_on_unreadable_input(small, tmp_path):
    folder, _ = small
    out = tmp_path / "r.json"
    result = invoke(["audit", "small.pth", "missing.pth", "--fail-under", "0.01", "--json", str(out)],
                    folder)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output
    assert not out.exists()  # never a partly written output


@pytest.mark.parametrize(("args", "phrase"), [
    (["audit"], "expected at least one path or zoo name"),
    (["audit", "small.pth", "--eps", "3"], "eps: expected a distance in (0, 2]"),
    (["audit", "small.pth", "--fail-under", "7"], "fail_under: expected a utilization fraction"),
])
def test_usage_errors_are_one_line_exit_2(small, args, phrase):
    folder, _ = small
    result = invoke(args, folder)
    assert result.exit_code == 2
    assert phrase in result.stderr
    assert result.stderr.count("\n") == 1


def test_synthetic_example_is_generated_and_labelled(tmp_path, monkeypatch):
    monkeypatch.setenv("COLLAPSE_PROBE_CACHE", str(tmp_path))
    result = invoke(["audit", "synthetic-dino", "--eps", "0.025", "--json", "out.json"], tmp_path)
    assert result.exit_code == 0, result.output
    assert "SYNTHETIC" in result.stdout
    (checkpoint,) = json.loads((tmp_path / "out.json").read_text())["checkpoints"]
    assert "SYNTHETIC" in checkpoint["note"]
    # The synthetic example plants 1000 groups in 65536 prototypes.
    (res,) = checkpoint["heads"][0]["results"]
    assert (res["unique"], checkpoint["heads"][0]["num_prototypes"]) == (1000, 65536)


def test_example_audits_the_trained_pair_without_download(tmp_path, monkeypatch):
    monkeypatch.setenv("COLLAPSE_PROBE_CACHE", str(tmp_path))
    result = invoke(["audit", "--example", "--json", "out.json"], tmp_path)
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "out.json").read_text())
    assert [c["source"] for c in data["checkpoints"]] == ["dino-digits", "dino-digits-koleo"]
    plain, repaired = (c["heads"][0] for c in data["checkpoints"])
    at_paper_eps = [next(r for r in h["results"] if r["eps"] == 0.025) for h in (plain, repaired)]
    # At the paper's threshold the plain run is at most half unique; KoLeo-Proto keeps 95 % or more.
    assert at_paper_eps[0]["utilization"] <= 0.5 and at_paper_eps[1]["utilization"] >= 0.95
    assert (plain["verdict"]["label"], repaired["verdict"]["label"]) == ("partial-collapse", "healthy")
    assert list(tmp_path.iterdir()) == [tmp_path / "out.json"]  # nothing generated or downloaded


def test_messages_name_options_as_flags(tmp_path):
    protos = np.random.default_rng(0).standard_normal((12, 8)).astype(np.float32)
    teacher_only = write_dinov2(tmp_path / "teacher_checkpoint.pth", prototypes=protos)
    result = runner.invoke(app, ["audit", str(teacher_only), "--network", "student"])
    assert result.exit_code == 2
    assert "pass --network teacher." in result.output and "network=" not in result.output
    roles = write_lightly(tmp_path / "lightly.ckpt", heads={"teacher_head": protos})
    result = runner.invoke(app, ["audit", str(roles), "--network", "student"])
    assert result.exit_code == 2
    assert "--network teacher or --key <attr>.last_layer" in result.output
