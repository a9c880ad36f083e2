"""The finetune command through the CLI runner: output, JSON, errors as one line with exit 2."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from layouts import planted_prototypes, write_dino, write_msn
from typer.testing import CliRunner

from collapse_probe.checkpoints import read_checkpoint
from collapse_probe.cli.app import app
from collapse_probe.cli.render import sparkline

runner = CliRunner()


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli_finetune")
    protos, _ = planted_prototypes(8, 8, 16, noise=1e-3, seed=2)
    write_dino(folder / "in.pth", prototypes=protos)
    rng = np.random.default_rng(0)
    centres = 2.0 * rng.standard_normal((16, 16))
    views = centres[rng.integers(0, 16, 128)][:, None, :] + 0.3 * rng.standard_normal((128, 2, 16))
    np.save(folder / "views.npy", views.astype(np.float32))
    np.save(folder / "one_view.npy", views[:, :1].astype(np.float32))
    return folder


def run(*args: str):
    return runner.invoke(app, ["finetune", *args], env={"COLUMNS": "100"})


def test_finetune_writes_checkpoint_and_json(files: Path) -> None:
    digest = hashlib.sha256((files / "in.pth").read_bytes()).hexdigest()
    result = run(str(files / "in.pth"), "--features", str(files / "views.npy"), "--out",
                 str(files / "out.pth"), "--steps", "80", "--batch-size", "32", "--lr", "1e-3",
                 "--teacher-momentum", "0.95", "--log-every", "10", "--json", "-")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["unique_before"]["teacher"]["0.025"]["unique"] == 8
    assert data["unique_after"]["teacher"]["0.025"]["unique"] > 8
    assert data["settings"]["steps"] == 80 and len(data["loss"]["total"]) == 80
    # the tables and step lines went to stderr, so stdout is pure JSON
    assert "step     11/80" in result.stderr and "unique prototypes" in result.stderr
    assert hashlib.sha256((files / "in.pth").read_bytes()).hexdigest() == digest
    heads = read_checkpoint(files / "out.pth").heads
    assert heads[0].num_prototypes == 64


def test_human_output(files: Path) -> None:
    result = run(str(files / "in.pth"), "--features", str(files / "views.npy"), "--out",
                 str(files / "out2.pth"), "--steps", "5", "--batch-size", "16", "--koleo-weight", "0",
                 "--koleo-anchors", "16")
    assert result.exit_code == 0, result.output
    assert "before" in result.stdout and "after" in result.stdout and "loss" in result.stdout
    assert "koleo weight 0," in result.stdout


@pytest.mark.parametrize("case,needle", [
    ("one_view", "2 views"),
    ("same_out", "input checkpoint"),
    ("missing_ckpt", "no such file"),
    ("missing_features", "does not exist"),
    ("bad_device", "device"),
])
def test_errors_exit_2_with_one_line(files: Path, case: str, needle: str) -> None:
    ckpt, feats, out = files / "in.pth", files / "views.npy", files / "err.pth"
    extra: list[str] = []
    if case == "one_view":
        feats = files / "one_view.npy"
    elif case == "same_out":
        out = ckpt
    elif case == "missing_ckpt":
        ckpt = files / "nope.pth"
    elif case == "missing_features":
        feats = files / "nope.npy"
    else:
        extra = ["--device", "tpu"]
    result = run(str(ckpt), "--features", str(feats), "--out", str(out), "--steps", "1", *extra)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], result.stderr
    assert not (files / "err.pth").exists()


def test_sparkline() -> None:
    assert sparkline([0.0, 1.0]) == "▁█"
    assert sparkline([float("nan")]) == ""
    assert len(sparkline(list(range(1000)), width=50)) <= 50
    assert sparkline([2.0, 2.0, 2.0]) == "▁▁▁"


def test_torchrun_two_processes(files: Path, tmp_path: Path) -> None:
    # DDP on the CPU (gloo): features sharded by rank, only rank 0 writes and prints.
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "collapse_probe", "finetune", str(files / "in.pth"), "--features",
               str(files / "views.npy"), "--out", str(tmp_path / "ddp.pth"), "--steps", "6",
               "--batch-size", "16", "--lr", "1e-3", "--json", str(tmp_path / "ddp.json"), "--quiet"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads((tmp_path / "ddp.json").read_text())
    assert data["settings"]["world_size"] == 2
    assert done.stdout.count("unique prototypes") == 1  # rank 0 only
    assert read_checkpoint(tmp_path / "ddp.pth").heads[0].num_prototypes == 64


def test_progress_bar_only_on_a_terminal(files: Path) -> None:
    args = [str(files / "in.pth"), "--features", str(files / "views.npy"), "--out", str(files / "p.pth"),
            "--steps", "4", "--batch-size", "16", "--log-every", "100"]
    plain = runner.invoke(app, ["finetune", *args], env={"COLUMNS": "100"})
    assert plain.exit_code == 0, plain.output
    assert "ETA" not in plain.stderr and "steps/s" not in plain.stderr and "s/step" not in plain.stderr
    # FORCE_COLOR makes rich treat stderr as a terminal
    tty = runner.invoke(app, ["finetune", *args], env={"COLUMNS": "100", "FORCE_COLOR": "1"})
    assert tty.exit_code == 0, tty.output
    assert "fine-tuning" in tty.stderr and "ETA" in tty.stderr and "4/4" in tty.stderr
    assert "steps/s" in tty.stderr or "s/step" in tty.stderr


def test_teacher_choice_and_koleo_search_are_shown(files: Path) -> None:
    result = run(str(files / "in.pth"), "--features", str(files / "views.npy"), "--out",
                 str(files / "t.pth"), "--steps", "3", "--batch-size", "16", "--teacher", "copy-student",
                 "--koleo-anchors", "0", "--json", "-")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["settings"]["teacher"] == "copy-student"
    assert data["settings"]["koleo_search"] == "exact" and data["settings"]["koleo_anchors_choice"] == "set"
    assert "KoLeo exact (set), teacher copy-student" in result.stderr
    bad = run(str(files / "in.pth"), "--features", str(files / "views.npy"), "--out", str(files / "t2.pth"),
              "--teacher", "nope")
    assert bad.exit_code == 2 and bad.stderr.count("\n") == 1 and "teacher" in bad.stderr


def test_teacher_temp_reaches_the_dino_loss_only(files: Path, tmp_path: Path) -> None:
    args = ["--features", str(files / "views.npy"), "--steps", "2", "--batch-size", "16", "--teacher-temp", "0.07"]
    result = run(str(files / "in.pth"), "--out", str(tmp_path / "t.pth"), *args, "--json", "-")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["settings"]["teacher_temp"] == 0.07 and data["settings"]["student_temp"] == 0.1
    # an MSN head has no DINO loss: the flag is refused in one line naming the family
    protos, _ = planted_prototypes(8, 4, 16, seed=6)
    msn = write_msn(tmp_path / "msn.pth", prototypes=protos, training=True)
    bad = run(str(msn), "--out", str(tmp_path / "m.pth"), *args)
    assert bad.exit_code == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert "msn checkpoints" in bad.stderr and "--teacher-temp" in bad.stderr
    assert not (tmp_path / "m.pth").exists()
