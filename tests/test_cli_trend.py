"""`collapse-probe trend` through the runner: table, plot, CSV and JSON in --out."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from layouts import planted_prototypes, write_dino
from typer.testing import CliRunner

from collapse_probe.cli.app import app

runner = CliRunner()
ENV = {"COLUMNS": "200"}


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    for name, groups, epoch in (("checkpoint.pth", 5, 31), ("checkpoint0010.pth", 40, 11),
                                ("checkpoint0020.pth", 10, 21)):
        write_dino(folder / name, prototypes=planted_prototypes(groups, 120 // groups, 16, seed=groups)[0],
                   with_optimizer=False)
        state = torch.load(folder / name, weights_only=False)
        state["epoch"] = epoch
        torch.save(state, folder / name)
    return folder


def test_trend_prints_a_table_and_writes_plot_csv_json(run_folder, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["trend", str(run_folder), "--out", str(out), "--eps", "0.025",
                                 "--eps", "0.5"], env=ENV)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if ".pth" in line]
    assert [line.split()[1] for line in lines] == [
        "checkpoint0010.pth", "checkpoint0020.pth", "checkpoint.pth"]
    assert "40 33.3%" in lines[0] and "5 4.17%" in lines[2]
    assert "eps 0.025" in result.stdout and "unique prototypes over training" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["trend.csv", "trend.json", "trend.png"]
    assert (out / "trend.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader((out / "trend.csv").open()))
    assert [(r["epoch"], r["eps"], r["unique"]) for r in rows] == [
        ("11", "0.025", "40"), ("11", "0.5", "40"), ("21", "0.025", "10"), ("21", "0.5", "10"),
        ("31", "0.025", "5"), ("31", "0.5", "5")]
    data = json.loads((out / "trend.json").read_text())
    assert [e["epoch"] for e in data["entries"]] == [11, 21, 31]


def test_trend_of_explicit_files_and_errors(run_folder, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["trend", str(run_folder / "checkpoint.pth"),
                                 str(run_folder / "checkpoint0010.pth"), "--out", str(out),
                                 "--eps", "0.025", "--method", "greedy"], env=ENV)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "trend.json").read_text())["method"] == "greedy"

    missing = runner.invoke(app, ["trend", str(tmp_path / "nope.pth"), "--out", str(tmp_path / "o2")], env=ENV)
    assert missing.exit_code == 2
    assert missing.stderr.strip().startswith("error: ") and "does not exist" in missing.stderr
    assert not (tmp_path / "o2").exists()
    bad = runner.invoke(app, ["trend", str(run_folder), "--eps", "3", "--out", str(tmp_path / "o3")], env=ENV)
    assert bad.exit_code == 2 and "eps: expected a distance" in bad.stderr
