"""`collapse-probe watch` through the runner: audits what is complete, exit 0, trend files."""

from __future__ import annotations

import json

from layouts import planted_prototypes, write_dino
from typer.testing import CliRunner

from collapse_probe.cli.app import app

runner = CliRunner()
ENV = {"COLUMNS": "200"}


def test_watch_audits_complete_checkpoints_and_leaves_a_half_written_one_pending(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    write_dino(run / "checkpoint0000.pth", prototypes=planted_prototypes(12, 10, 16)[0],
               with_optimizer=False)
    (run / "checkpoint0010.pth").write_bytes((run / "checkpoint0000.pth").read_bytes()[:3000])
    out = tmp_path / "out"
    result = runner.invoke(app, ["watch", str(run), "--interval", "0.01", "--out", str(out),
                                 "--eps", "0.025", "--max-polls", "3"], env=ENV)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("found ") == 2  # announced once each, not on every poll
    assert "audited " in result.stdout and "checkpoint0000.pth: epoch 100: head 12/120 unique" in result.stdout
    assert "stopped after 3 polls: 1 checkpoint audited, 1 pending, 0 failed." in result.stdout
    assert "pending (not complete or not readable yet): " in result.stdout
    records = [json.loads(line) for line in (out / "trend.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["heads"][0]["results"][0]["unique"] == 12
    assert sorted(p.name for p in out.iterdir()) == ["trend.csv", "trend.json", "trend.jsonl", "trend.png"]

    again = runner.invoke(app, ["watch", str(run), "--interval", "0.01", "--out", str(out),
                                "--eps", "0.025", "--max-polls", "2"], env=ENV)
    assert again.exit_code == 0
    assert "0 checkpoints audited" in again.stdout  # already in trend.jsonl
    assert len((out / "trend.jsonl").read_text().splitlines()) == 1


def test_watch_of_a_missing_folder_is_exit_2(tmp_path):
    result = runner.invoke(app, ["watch", str(tmp_path / "nope"), "--max-polls", "1"], env=ENV)
    assert result.exit_code == 2 and result.stderr.startswith("error: folder: expected")


def test_ctrl_c_prints_a_summary_writes_the_trend_and_exits_0(tmp_path, monkeypatch):
    from collapse_probe.runs.watch import Watcher

    run = tmp_path / "run"
    run.mkdir()
    write_dino(run / "checkpoint.pth", prototypes=planted_prototypes(6, 20, 16)[0], with_optimizer=False)
    original, calls = Watcher.poll, []

    def poll(self):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # what Ctrl-C raises while the watch waits or reads
        return original(self)

    monkeypatch.setattr(Watcher, "poll", poll)
    out = tmp_path / "out"
    result = runner.invoke(app, ["watch", str(run), "--interval", "0.01", "--out", str(out),
                                 "--eps", "0.025"], env=ENV)
    assert result.exit_code == 0, result.output
    assert "interrupted after 2 polls: 1 checkpoint audited, 0 pending, 0 failed." in result.stdout
    assert (out / "trend.png").is_file() and (out / "trend.jsonl").is_file()
