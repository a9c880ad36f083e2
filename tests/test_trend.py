"""Trends over a training run: epoch order, audits per checkpoint, CSV / JSON / figure."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from layouts import planted_prototypes, write_dino

from collapse_probe.errors import CheckpointError
from collapse_probe.runs import trend, trend_figure, trend_to_csv, trend_to_dict
from collapse_probe.runs.ordering import (RunCheckpoint, epoch_from_name, expand_inputs,
                                           is_latest_name, locate, order_checkpoints, read_epoch)

K, D = 240, 16


def write_run_checkpoint(path: Path, *, groups: int, epoch: int | None, seed: int = 0) -> Path:
    """A DINO checkpoint whose teacher head has exactly ``groups`` duplicate groups."""
    prototypes, _ = planted_prototypes(groups, K // groups, D, seed=seed)
    write_dino(path, prototypes=prototypes, with_optimizer=False)
    state = torch.load(path, weights_only=False)
    if epoch is None:
        del state["epoch"]
    else:
        state["epoch"] = epoch
    torch.save(state, path)
    return path


@pytest.mark.parametrize(("name", "epoch"), [
    ("checkpoint0040.pth", 40), ("checkpoint0000.pth", 0), ("checkpoint.pth", None),
    ("epoch=12-step=3000.ckpt", 12), ("model_epoch_7.pt", 7), ("run-0005.pth.tar", 5),
    ("teacher_checkpoint.pth", None), ("final.pth", None),
])
def test_epoch_from_name(name, epoch):
    assert epoch_from_name(name) == epoch


def test_latest_names():
    assert is_latest_name("checkpoint.pth") and is_latest_name("last.ckpt")
    assert not is_latest_name("checkpoint0040.pth") and not is_latest_name("final.pth")
    assert not is_latest_name("eval/training_2499/teacher_checkpoint.pth")


def test_dinov2_eval_folders_give_the_step_and_sort_numerically():
    paths = [f"eval/training_{step}/teacher_checkpoint.pth" for step in (12499, 2499, 24999)]
    located = [locate(p, epoch_entry=None) for p in paths]
    assert [(c.epoch, c.epoch_source) for c in located] == [(12499, "folder"), (2499, "folder"),
                                                          (24999, "folder")]
    assert [c.epoch for c in order_checkpoints(located)] == [2499, 12499, 24999]
    # A number in the file name, or a latest-state name, is not overridden by the folder.
    assert locate("run_7/checkpoint0040.pth", epoch_entry=None).epoch == 40
    assert locate("eval/training_7/checkpoint.pth", epoch_entry=None).epoch_source == "none"
    assert locate("run1/final.pth", epoch_entry=None).epoch_source == "none"  # not a step folder


def _run(*items: tuple[str, int | None, bool]) -> list[RunCheckpoint]:
    return [RunCheckpoint(path=Path(name), epoch=epoch, epoch_source="name" if epoch is not None else "none",
                          latest=latest) for name, epoch, latest in items]


def test_order_by_epoch_with_latest_last_on_ties_and_unknown_epochs_in_given_order():
    given = _run(("checkpoint.pth", 40, True), ("b.pth", None, False), ("checkpoint0040.pth", 40, False),
                 ("checkpoint0005.pth", 5, False), ("a.pth", None, False), ("last.pth", None, True))
    names = [c.path.name for c in order_checkpoints(given)]
    assert names == ["checkpoint0005.pth", "checkpoint0040.pth", "checkpoint.pth", "b.pth", "a.pth",
                     "last.pth"]


def test_no_epochs_anywhere_keeps_file_order():
    given = _run(("zeta.pth", None, False), ("alpha.pth", None, False))
    assert [c.path.name for c in order_checkpoints(given)] == ["zeta.pth", "alpha.pth"]


def test_epoch_entry_wins_over_the_name(tmp_path):
    path = write_run_checkpoint(tmp_path / "checkpoint0040.pth", groups=8, epoch=41)
    assert read_epoch(path) == 41
    located = locate(path, epoch_entry=read_epoch(path))
    assert (located.epoch, located.epoch_source) == (41, "checkpoint")
    bare = write_run_checkpoint(tmp_path / "checkpoint0020.pth", groups=8, epoch=None)
    assert read_epoch(bare) is None
    assert locate(bare, epoch_entry=None).epoch_source == "name"


def test_expand_inputs_lists_checkpoints_of_a_folder_and_skips_others(tmp_path):
    (tmp_path / "log.txt").write_text("{}\n")
    (tmp_path / ".checkpoint.pth.tmp").write_bytes(b"")
    for name in ("checkpoint0010.pth", "checkpoint.pth"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in expand_inputs([tmp_path])] == ["checkpoint.pth", "checkpoint0010.pth"]
    with pytest.raises(CheckpointError, match="does not exist"):
        expand_inputs([tmp_path / "missing.pth"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint files"):
        expand_inputs([empty])


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A DINO run: checkpoint0000 (epoch 1, 60 groups), checkpoint0010 (epoch 11, 24 groups),
    checkpoint.pth (epoch 21, 12 groups), checkpoint0020 without an epoch entry (20 from its name,
    30 groups)."""
    folder = tmp_path_factory.mktemp("run")
    write_run_checkpoint(folder / "checkpoint.pth", groups=12, epoch=21, seed=3)
    write_run_checkpoint(folder / "checkpoint0010.pth", groups=24, epoch=11, seed=2)
    write_run_checkpoint(folder / "checkpoint0000.pth", groups=60, epoch=1, seed=1)
    write_run_checkpoint(folder / "checkpoint0020.pth", groups=30, epoch=None, seed=4)
    (folder / "log.txt").write_text('{"train_loss": 5.0, "epoch": 0}\n')
    return folder


def test_trend_audits_a_folder_in_epoch_order(run_folder):
    report = trend(run_folder, eps=[0.025, 0.5])
    assert [Path(e.path).name for e in report.entries] == [
        "checkpoint0000.pth", "checkpoint0010.pth", "checkpoint0020.pth", "checkpoint.pth"]
    assert [e.epoch for e in report.entries] == [1, 11, 20, 21]
    assert [e.epoch_source for e in report.entries] == ["checkpoint", "checkpoint", "name", "checkpoint"]
    assert report.heads == ("head",)
    assert report.by_epoch and report.x_label == "epoch"
    np.testing.assert_array_equal(report.x_values(), [1, 11, 20, 21])
    np.testing.assert_allclose(report.series("head", 0.025), np.array([60, 24, 30, 12]) / K)
    assert [h.unique for e in report.entries for h in e.heads] == [(60, 60), (24, 24), (30, 30), (12, 12)]
    assert np.isnan(report.series("head", 0.1)).all()  # not measured
    assert np.isnan(report.series("head_dense", 0.025)).all()


def test_trend_of_files_without_epochs_keeps_the_given_order(tmp_path):
    b = write_run_checkpoint(tmp_path / "beta.pth", groups=8, epoch=None)
    a = write_run_checkpoint(tmp_path / "alpha.pth", groups=20, epoch=None)
    report = trend([b, a], eps=0.025)
    assert [Path(e.path).name for e in report.entries] == ["beta.pth", "alpha.pth"]
    assert not report.by_epoch and report.x_label.startswith("checkpoint")
    np.testing.assert_array_equal(report.x_values(), [0, 1])
    np.testing.assert_allclose(report.series("head", 0.025), [8 / K, 20 / K])


def test_trend_rejects_a_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        trend([tmp_path / "nope.pth"])


def test_csv_and_json_hold_every_checkpoint_head_and_threshold(run_folder):
    report = trend(run_folder, eps=[0.025, 0.5])
    rows = list(csv.DictReader(io.StringIO(trend_to_csv(report))))
    assert len(rows) == 4 * 2
    assert [(r["epoch"], r["eps"], r["unique"]) for r in rows[:2]] == [("1", "0.025", "60"), ("1", "0.5", "60")]
    assert rows[-1]["utilization"] == f"{12 / K:.6g}"
    data = json.loads(json.dumps(trend_to_dict(report)))
    assert data["kind"] == "trend" and data["schema_version"] == 1
    assert [t["eps"] for t in data["thresholds"]] == [0.025, 0.5]
    assert [e["epoch"] for e in data["entries"]] == [1, 11, 20, 21]
    assert data["entries"][3]["heads"][0]["results"][0] == {
        "eps": 0.025, "cosine": pytest.approx(0.9996875), "unique": 12, "utilization": 12 / K}


def test_figure_has_one_line_per_head_and_threshold(run_folder):
    report = trend(run_folder, eps=[0.025, 0.1, 0.5])
    figure = trend_figure(report)
    (axes,) = figure.axes
    assert len(axes.lines) == 3
    assert [line.get_label() for line in axes.lines] == ["head, eps 0.025", "head, eps 0.1", "head, eps 0.5"]
    np.testing.assert_allclose(axes.lines[0].get_xdata(), [1, 11, 20, 21])
    np.testing.assert_allclose(axes.lines[0].get_ydata(), 100 * np.array([60, 24, 30, 12]) / K)
    assert axes.get_xlabel() == "epoch"
    # Coinciding series stay visible: own marker per threshold, the tighter one drawn on top,
    # thinner and smaller, over the looser one's wider line.
    assert len({line.get_marker() for line in axes.lines}) == 3
    zorders = [line.get_zorder() for line in axes.lines]
    assert zorders == sorted(zorders, reverse=True)
    widths = [line.get_linewidth() for line in axes.lines]
    sizes = [line.get_markersize() for line in axes.lines]
    assert widths == sorted(widths) and sizes == sorted(sizes) and widths[0] < widths[-1]


def test_collapse_probe_trend_stays_the_function_after_its_package_is_imported(run_folder):
    import collapse_probe
    import collapse_probe.runs.watch  # importing the package leaves collapse_probe.trend the function

    report = collapse_probe.trend(run_folder / "checkpoint.pth", eps=0.025)
    assert [h.unique for e in report.entries for h in e.heads] == [(12,)]


def test_two_heads_give_one_line_per_head_and_threshold(tmp_path):
    from layouts import write_esvit

    for epoch, (view, dense) in enumerate([(40, 120), (10, 60)]):
        path = write_esvit(tmp_path / f"checkpoint{epoch:04d}.pth",
                           prototypes=planted_prototypes(view, K // view, D, seed=epoch)[0],
                           dense_prototypes=planted_prototypes(dense, K // dense, D, seed=9 + epoch)[0])
        state = torch.load(path, weights_only=False)
        del state["epoch"]
        torch.save(state, path)
    report = trend(tmp_path, eps=[0.025, 0.5])
    assert report.heads == ("head", "head_dense")
    assert [e.epoch_source for e in report.entries] == ["name", "name"]
    np.testing.assert_allclose(report.series("head_dense", 0.5), [120 / K, 60 / K])
    axes = trend_figure(report).axes[0]
    assert [line.get_label() for line in axes.lines] == [
        "head, eps 0.025", "head, eps 0.5", "head_dense, eps 0.025", "head_dense, eps 0.5"]
    styles = {line.get_label(): (line.get_linestyle(), line.get_color()) for line in axes.lines}
    assert styles["head, eps 0.025"][0] != styles["head_dense, eps 0.025"][0]  # style: head
    assert styles["head, eps 0.025"][1] == styles["head_dense, eps 0.025"][1]  # colour: eps


def test_trend_of_dinov2_eval_folders_is_over_steps(tmp_path):
    from layouts import write_dinov2

    files = []
    for step, groups in ((12499, 20), (2499, 60)):
        folder = tmp_path / "eval" / f"training_{step}"
        folder.mkdir(parents=True)
        files.append(write_dinov2(folder / "teacher_checkpoint.pth",
                                  prototypes=planted_prototypes(groups, K // groups, D, seed=step)[0]))
    report = trend(files, eps=0.025)
    assert [e.epoch for e in report.entries] == [2499, 12499]
    assert report.x_label == "step (from folder names)"
    np.testing.assert_allclose(report.series(report.heads[0], 0.025), [60 / K, 20 / K])
