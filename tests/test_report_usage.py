"""Data-side usage inside a report: measured per checkpoint, figures and usage.json written."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from collapse_probe import audit
from collapse_probe.checkpoints import read_checkpoint
from collapse_probe.cli.app import app
from collapse_probe.errors import InputError
from collapse_probe.examples.synthetic import write_synthetic_dino
from collapse_probe.report.usage import measure_usage, usage_report_figures


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("usage")
    path = folder / "ckpt.pth"
    groups = write_synthetic_dino(path, num_prototypes=256, num_groups=12, dim=16, seed=2)
    head = read_checkpoint(path).heads[0]
    # Bottleneck features: 3 samples on each of the first 5 groups' first members.
    firsts = [int(np.flatnonzero(groups == g)[0]) for g in range(5)]
    features = np.repeat(head.vectors[firsts], 3, axis=0)
    np.save(folder / "features.npy", features)
    return folder, path, groups


def test_measure_usage_counts_the_groups_the_data_lands_on(planted):
    folder, path, _ = planted
    report = audit(str(path), eps=0.025)
    (item,) = measure_usage(report, folder / "features.npy", space="bottleneck")
    assert item.head == "head" and item.checkpoint == 0
    assert item.usage.num_samples == 15
    assert item.usage.merged_used == 5
    assert item.usage.merged_perplexity == pytest.approx(5.0)
    names = [f.name for f in usage_report_figures(report, (item,))]
    assert names == ["1-head_usage_by_rank", "1-head_used_vs_unique"]


def test_in_memory_inputs_are_refused(planted):
    report = audit(np.eye(4), eps=0.025)
    with pytest.raises(InputError, match="features: expected checkpoints read from files"):
        measure_usage(report, np.eye(4), space="bottleneck")


def test_report_command_adds_usage_figures_and_json(planted, tmp_path):
    folder, path, _ = planted
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["report", str(path), "--out", str(out), "--eps", "0.025",
                                      "--features", str(folder / "features.npy"),
                                      "--space", "bottleneck", "--quiet"])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "usage.json").read_text())
    (record,) = data["usage"]
    assert record["head"] == "head" and record["usage"]["merged_used"] == 5
    assert (out / "1-head_usage_by_rank.png").is_file()
    assert (out / "1-head_used_vs_unique.svg").is_file()
    assert 'id="fig-1-head_used_vs_unique"' in (out / "report.html").read_text()


def test_report_with_mismatched_features_writes_nothing(planted, tmp_path):
    folder, path, _ = planted
    np.save(tmp_path / "bad.npy", np.ones((4, 7), dtype=np.float32))
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["report", str(path), "--out", str(out), "--features",
                                      str(tmp_path / "bad.npy"), "--space", "bottleneck"])
    assert result.exit_code == 2
    assert "dimension 7" in result.stderr and result.stderr.count("\n") == 1
    assert not out.exists()
