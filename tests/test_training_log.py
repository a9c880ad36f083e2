"""log.txt: parsing DINO / iBOT logs and the ln(K) plateau of full collapse."""

from __future__ import annotations

import json
import math

import pytest
from layouts import planted_prototypes, write_dino, write_ibot

from collapse_probe.errors import InputError
from collapse_probe.runs import detect_plateau, prototypes_from_run, read_training_log


def write_log(path, losses, *, ibot_patch=None, extra_lines=()):
    lines = []
    for epoch, loss in enumerate(losses):
        record = {"train_loss": loss, "train_lr": 1e-4, "train_wd": 0.04, "epoch": epoch}
        if ibot_patch is not None:
            record |= {"train_cls": loss, "train_patch": ibot_patch[epoch],
                       "train_loss": loss + ibot_patch[epoch]}
        lines.append(json.dumps(record))
    path.write_text("\n".join([*lines, *extra_lines]) + "\n")
    return path


LN_512 = math.log(512)  # 6.238


def test_a_loss_stuck_at_ln_k_is_full_collapse(tmp_path):
    # A run that learns a little, then collapses: the last 6 epochs within 0.01 of ln(512).
    losses = [6.0, 5.1, 4.6, *(LN_512 + d for d in (0.01, -0.005, 0.0, 0.002, -0.01, 0.004))]
    verdict = detect_plateau(read_training_log(write_log(tmp_path / "log.txt", losses)), num_prototypes=512)
    assert verdict.collapsed and verdict.enough_epochs
    (check,) = verdict.checks
    assert check.loss == "train_loss" and check.trailing_epochs == 6 and check.at_plateau
    assert check.level == pytest.approx(LN_512)
    assert "FULL COLLAPSE" in verdict.message and "since epoch 3" in verdict.message


def test_a_learning_run_that_leaves_ln_k_is_not_collapse(tmp_path):
    # Starts at ln(K) (uniform outputs at initialisation) and leaves it.
    losses = [LN_512, LN_512 - 0.01, LN_512 - 0.02, 5.5, 4.8, 4.1, 3.7, 3.5]
    verdict = detect_plateau(read_training_log(write_log(tmp_path / "log.txt", losses)), num_prototypes=512)
    assert not verdict.collapsed
    assert verdict.checks[0].trailing_epochs == 0
    assert verdict.message.startswith("no loss plateau")


def test_window_and_tolerance_decide(tmp_path):
    losses = [5.0, LN_512 + 0.03, LN_512 + 0.03, LN_512 + 0.03]
    log = read_training_log(write_log(tmp_path / "log.txt", losses))
    assert not detect_plateau(log, num_prototypes=512, window=5).collapsed
    assert detect_plateau(log, num_prototypes=512, window=3).collapsed
    assert not detect_plateau(log, num_prototypes=512, window=3, tolerance=0.02).collapsed
    short = detect_plateau(read_training_log(write_log(tmp_path / "short.txt", [LN_512] * 2)),
                           num_prototypes=512)
    assert not short.collapsed and not short.enough_epochs
    assert short.message.startswith("too few epochs")


def test_ibot_logs_check_cls_and_patch_losses_against_their_own_k(tmp_path):
    cls = [5.0, 4.0, 3.0, 2.9, 2.8, 2.7]
    patch = [7.0, *[math.log(1024)] * 5]
    log = read_training_log(write_log(tmp_path / "log.txt", cls, ibot_patch=patch))
    assert log.kind == "ibot"
    verdict = detect_plateau(log, num_prototypes=512, num_patch_prototypes=1024)
    assert verdict.collapsed
    assert [(c.loss, c.num_prototypes, c.at_plateau) for c in verdict.checks] == [
        ("train_cls", 512, False), ("train_patch", 1024, True)]
    # The summed train_loss is never compared with ln(K).
    assert not detect_plateau(log, num_prototypes=512, num_patch_prototypes=2048).collapsed


def test_unparseable_and_foreign_lines_are_skipped(tmp_path):
    path = write_log(tmp_path / "log.txt", [5.0, 4.0],
                     extra_lines=['{"k-NN": 20.1}', '{"train_loss": 3.', "not json", "[1, 2]"])
    log = read_training_log(path)
    assert [e.epoch for e in log.entries] == [0, 1] and log.skipped_lines == 4
    assert log.kind == "dino" and log.loss_names == ("train_loss",)


def test_unusable_logs_and_arguments_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_training_log(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text('{"epoch": 1}\n')
    with pytest.raises(InputError, match="no line with an `epoch`"):
        read_training_log(tmp_path / "empty.txt")
    log = read_training_log(write_log(tmp_path / "log.txt", [5.0]))
    with pytest.raises(InputError, match="num_prototypes"):
        detect_plateau(log, num_prototypes=1)
    with pytest.raises(InputError, match="window"):
        detect_plateau(log, num_prototypes=512, window=0)


def test_k_comes_from_args_out_dim_of_a_sibling_checkpoint(tmp_path):
    assert prototypes_from_run(tmp_path) is None
    (tmp_path / "checkpoint.pth").write_bytes(b"half a zip")  # unreadable: skipped
    prototypes, _ = planted_prototypes(4, 16, 8)
    write_dino(tmp_path / "checkpoint0010.pth", prototypes=prototypes, with_optimizer=False)
    assert prototypes_from_run(tmp_path) == (64, None)
    ibot_run = tmp_path / "ibot"
    ibot_run.mkdir()
    patch, _ = planted_prototypes(4, 8, 8, seed=1)
    write_ibot(ibot_run / "checkpoint.pth", prototypes=prototypes, patch_prototypes=patch)
    assert prototypes_from_run(ibot_run) == (64, 32)
    assert prototypes_from_run(tmp_path / "nowhere") is None
