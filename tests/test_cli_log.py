"""`collapse-probe log` through the runner: table, verdict line, exit 0 whatever the verdict."""

from __future__ import annotations

import json
import math

from layouts import planted_prototypes, write_dino
from typer.testing import CliRunner

from collapse_probe.cli.app import app

runner = CliRunner()
ENV = {"COLUMNS": "200"}


def write_log(path, losses):
    path.write_text("".join(json.dumps({"train_loss": v, "train_lr": 0.001, "epoch": i}) + "\n"
                            for i, v in enumerate(losses)))
    return path


def test_collapsed_log_with_k_from_a_sibling_checkpoint(tmp_path):
    write_dino(tmp_path / "checkpoint.pth", prototypes=planted_prototypes(8, 16, 8)[0], with_optimizer=False)
    level = math.log(128)
    log = write_log(tmp_path / "log.txt", [4.0, 4.5, *[level + 0.001] * 6])
    result = runner.invoke(app, ["log", str(log)], env=ENV)
    assert result.exit_code == 0, result.output
    assert "K = 128 from args.out_dim" in result.stdout
    assert "verdict: FULL COLLAPSE: train_loss within 0.05 of ln(128) = 4.852 for the last 6 epochs" in result.stdout
    assert "+0.0010" in result.stdout  # loss - ln(K) column
    folder = runner.invoke(app, ["log", str(tmp_path)], env=ENV)  # the run's folder
    assert folder.exit_code == 0 and "FULL COLLAPSE" in folder.stdout


def test_healthy_log_with_explicit_k_and_row_limit(tmp_path):
    log = write_log(tmp_path / "log.txt", [math.log(4096) - 0.01 * i for i in range(3)] + [9.0, 7.0, 5.0])
    result = runner.invoke(app, ["log", str(log), "--num-prototypes", "4096", "--rows", "2"], env=ENV)
    assert result.exit_code == 0, result.output
    assert "(4 earlier epochs not shown; --rows 0 shows all)" in result.stdout
    assert "verdict: no loss plateau at ln(K): train_loss 5.000 vs ln(4096) = 8.318" in result.stdout


def test_unknown_k_and_missing_log_are_exit_2(tmp_path):
    log = write_log(tmp_path / "log.txt", [5.0, 4.0])
    result = runner.invoke(app, ["log", str(log)], env=ENV)
    assert result.exit_code == 2 and "pass --num-prototypes K" in result.stderr
    missing = runner.invoke(app, ["log", str(tmp_path / "nope.txt"), "-k", "10"], env=ENV)
    assert missing.exit_code == 2 and missing.stderr.startswith("error: ")


def test_one_epoch_is_singular(tmp_path):
    single = runner.invoke(app, ["log", str(write_log(tmp_path / "one.txt", [5.0])), "-k", "100"], env=ENV)
    assert single.exit_code == 0, single.output
    assert "dino log, 1 epoch, K = 100" in single.stdout
    three = runner.invoke(app, ["log", str(write_log(tmp_path / "three.txt", [5.0, 4.0, 3.0])),
                                "-k", "100", "--rows", "2"], env=ENV)
    assert three.exit_code == 0, three.output
    assert "dino log, 3 epochs" in three.stdout
    assert "(1 earlier epoch not shown; --rows 0 shows all)" in three.stdout
