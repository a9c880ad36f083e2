"""The usage command through its runner: bottleneck and backbone spaces, the center proxy, errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from layouts import planted_prototypes, write_array, write_dino, write_ibot
from typer.testing import CliRunner

from collapse_probe.cli.app import app

runner = CliRunner()
SIZES = [3, 1, 2, 1, 1]  # K = 8 in 5 groups of exact copies


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    folder = tmp_path_factory.mktemp("usage")
    protos, labels = planted_prototypes(len(SIZES), SIZES, 8, seed=11)
    center = np.linspace(-0.1, 0.1, protos.shape[0]).astype(np.float32)
    # plain rows: copies stay bit-identical, so exact ties (to the lowest index) are well defined
    path = write_dino(folder / "checkpoint.pth", prototypes=protos, center=center, form="plain")
    return path, protos, labels, center


def _first_member(labels: np.ndarray) -> np.ndarray:
    """(groups,) lowest prototype index of each group: where exact ties go."""
    return np.array([np.flatnonzero(labels == g).min() for g in range(labels.max() + 1)])


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_bottleneck_features_with_planted_assignment(ckpt, tmp_path):
    path, protos, labels, _ = ckpt
    rng = np.random.default_rng(0)
    group_of_sample = np.repeat([0, 1, 3], [6, 3, 1])  # groups 2 and 4 unused
    samples = protos[_first_member(labels)[group_of_sample]] * rng.uniform(0.5, 3.0, size=(10, 1))
    features = write_array(tmp_path / "bottleneck.npy", samples.astype(np.float32))
    out = tmp_path / "usage.json"
    result = runner.invoke(app, ["usage", str(path), "--features", str(features), "--space", "bottleneck",
                                 "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "data usage: checkpoint.pth, head head" in result.stdout and "PROXY" not in result.stdout
    data = json.loads(out.read_text())
    expected = np.zeros(8, dtype=int)
    np.add.at(expected, _first_member(labels)[group_of_sample], 1)
    assert data["counts"] == expected.tolist()
    assert data["used"] == 3 and data["merged_used"] == 3 and data["unique"] == 5
    assert data["space"] == "bottleneck" and data["proxy"] is False and data["num_samples"] == 10
    h = -(0.6 * math.log(0.6) + 0.3 * math.log(0.3) + 0.1 * math.log(0.1))
    assert data["entropy_nats"] == pytest.approx(h) and data["merged_entropy_nats"] == pytest.approx(h)
    largest = int(np.argmax(np.bincount(labels)))  # planted labels follow DedupResult's numbering
    assert data["largest_group"]["label"] == largest and data["largest_group"]["size"] == 3
    assert data["largest_group"]["share"] == pytest.approx(np.mean(group_of_sample == largest))


def _teacher_mlp_oracle(path, features: np.ndarray, protos: np.ndarray) -> np.ndarray:
    """Counts from the teacher's MLP written out by hand: Linear GELU Linear GELU Linear."""
    state = torch.load(path, weights_only=False)["teacher"]
    x = torch.from_numpy(features).double()
    for i, layer in enumerate((0, 2, 4)):
        x = x @ state[f"head.mlp.{layer}.weight"].double().T + state[f"head.mlp.{layer}.bias"].double()
        if i < 2:
            x = torch.nn.functional.gelu(x)
    z = torch.nn.functional.normalize(x, dim=1).numpy()
    unit = protos / np.linalg.norm(protos, axis=1, keepdims=True)
    return np.bincount(np.argmax(z @ unit.astype(np.float64).T, axis=1), minlength=protos.shape[0])


def test_backbone_features_go_through_the_checkpoint_head(ckpt, tmp_path):
    path, protos, _, _ = ckpt
    features = np.random.default_rng(1).normal(size=(300, 16)).astype(np.float32)  # ViT width 16
    file = write_array(tmp_path / "backbone.npy", features)
    result = runner.invoke(app, ["usage", str(path), "--features", str(file), "--json", "-"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # the tables go to stderr
    assert data["space"] == "backbone" and data["num_samples"] == 300
    assert data["counts"] == _teacher_mlp_oracle(path, features, protos).tolist()
    assert "data usage" in result.stderr


def test_backbone_space_on_a_weight_norm_head_matches_the_oracle_per_group(tmp_path):
    # Weight-norm copies differ by float rounding after normalisation: near-ties between copies
    # may go either way, so the exact comparison is per duplicate group.
    protos, labels = planted_prototypes(len(SIZES), SIZES, 8, seed=12)
    path = write_dino(tmp_path / "wn.pth", prototypes=protos, form="weight-norm-old")
    features = np.random.default_rng(2).normal(size=(200, 16)).astype(np.float32)
    file = write_array(tmp_path / "backbone.npy", features)
    result = runner.invoke(app, ["usage", str(path), "--features", str(file), "--json", "-", "--space", "backbone"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    oracle = np.bincount(labels, weights=_teacher_mlp_oracle(path, features, protos), minlength=len(SIZES))
    np.testing.assert_allclose(np.asarray(data["group_mass"]) * 200, oracle, atol=1e-9)
    assert data["merged_used"] == int(np.count_nonzero(oracle))


def test_center_proxy_without_features(ckpt):
    path, protos, _, center = ckpt
    result = runner.invoke(app, ["usage", str(path), "--json", "-"])
    assert result.exit_code == 0, result.output
    assert "PROXY, not a measurement" in result.stderr
    data = json.loads(result.stdout)
    assert data["source"] == "center-proxy" and data["proxy"] is True and data["used"] is None
    expected = np.exp(center.astype(np.float64) / 0.04)
    np.testing.assert_allclose(data["mass"], expected / expected.sum(), rtol=1e-6)
    table = runner.invoke(app, ["usage", str(path), "--temperature", "0.07"])
    assert table.exit_code == 0 and "PROXY" in table.stdout and "0.07" in table.stdout


def test_ibot_patch_head_proxy_uses_center2(tmp_path):
    protos, _ = planted_prototypes(4, 2, 8, seed=1)
    patch, _ = planted_prototypes(3, 2, 8, seed=2)
    path = write_ibot(tmp_path / "ibot.pth", prototypes=protos, patch_prototypes=patch)
    cls = json.loads(runner.invoke(app, ["usage", str(path), "--json", "-"]).stdout)
    result = runner.invoke(app, ["usage", str(path), "--head", "head_patch", "--json", "-"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert cls["head"] == "head" and cls["num_prototypes"] == 8
    assert data["head"] == "head_patch" and data["num_prototypes"] == 6 and data["unique"] == 3


def test_dimension_mismatch_names_both_dims_and_the_other_space(ckpt, tmp_path):
    path, *_ = ckpt
    backbone = write_array(tmp_path / "b.npy", np.ones((4, 16), dtype=np.float32))
    bottleneck = write_array(tmp_path / "z.npy", np.ones((4, 8), dtype=np.float32))
    out = tmp_path / "never.json"
    line = _one_error_line(runner.invoke(app, ["usage", str(path), "--features", str(backbone),
                                               "--space", "bottleneck", "--json", str(out)]))
    assert "16" in line and "8" in line and "--space backbone" in line
    assert not out.exists() and not list(tmp_path.glob(".never.json*"))
    line = _one_error_line(runner.invoke(app, ["usage", str(path), "--features", str(bottleneck)]))
    assert "8" in line and "16" in line and "--space bottleneck" in line


def test_other_errors_exit_2_with_one_line(ckpt, tmp_path):
    path, protos, _, _ = ckpt
    assert "does not exist" in _one_error_line(
        runner.invoke(app, ["usage", str(path), "--features", str(tmp_path / "missing.npy")]))
    bad = tmp_path / "bad.npy"
    bad.write_text("not numpy")
    assert "not a .npy array" in _one_error_line(
        runner.invoke(app, ["usage", str(path), "--features", str(bad)]))
    raw = write_array(tmp_path / "protos.npy", protos)
    assert "center" in _one_error_line(runner.invoke(app, ["usage", str(raw)]))
    assert "no head MLP" in _one_error_line(
        runner.invoke(app, ["usage", str(raw), "--features", str(raw)]))
    assert "head" in _one_error_line(runner.invoke(app, ["usage", str(path), "--head", "nope"]))


def test_progress_bar_only_on_a_terminal(ckpt, tmp_path, monkeypatch):
    import io

    from rich.console import Console

    import collapse_probe.cli.common as cli_common  # every command's progress bar lives there

    path, protos, _, _ = ckpt
    file = write_array(tmp_path / "z.npy", np.repeat(protos, 3, axis=0))
    plain = runner.invoke(app, ["usage", str(path), "--features", str(file), "--space", "bottleneck"])
    assert plain.exit_code == 0 and "assigning samples" not in plain.output
    screen = io.StringIO()
    monkeypatch.setattr(cli_common, "stderr_console",
                        lambda: Console(file=screen, force_terminal=True, width=100))
    shown = runner.invoke(app, ["usage", str(path), "--features", str(file), "--space", "bottleneck"])
    assert shown.exit_code == 0, shown.output
    assert "assigning samples" in screen.getvalue()


def test_bundled_example_by_name_uses_its_center_proxy():
    result = runner.invoke(app, ["usage", "dino-digits", "--json", "-"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["checkpoint"].endswith("dino_digits.pth")
    assert data["source"] == "center-proxy" and data["num_prototypes"] == 1024


def test_torchrun_two_processes_equal_one_process(ckpt, tmp_path):
    # Each rank scores its shard (gloo on the CPU), the counts are all-reduced, rank 0 alone
    # prints and writes: the report equals the single-process one exactly.
    import os
    import subprocess
    import sys
    from pathlib import Path

    path, _, _, _ = ckpt
    features = np.random.default_rng(5).normal(size=(301, 16)).astype(np.float32)  # odd N
    file = write_array(tmp_path / "backbone.npy", features)
    single = runner.invoke(app, ["usage", str(path), "--features", str(file), "--json",
                                 str(tmp_path / "one.json")])
    assert single.exit_code == 0, single.output
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "collapse_probe", "usage", str(path), "--features", str(file),
               "--json", str(tmp_path / "two.json"), "--quiet"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("data usage:") == 1  # rank 0 only
    one = json.loads((tmp_path / "one.json").read_text())
    two = json.loads((tmp_path / "two.json").read_text())
    assert two == one
    assert sum(two["counts"]) == 301


def test_shards_cover_every_sample_once():
    from collapse_probe.usage.shards import Shard

    for num in (0, 1, 2, 7, 301):
        for world in (1, 2, 3, 8):
            bounds = [Shard(rank, world).bounds(num) for rank in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == num
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))


def test_each_rank_scores_only_its_shard(monkeypatch):
    # In process: rank r of 2 scores samples r N / 2 .. (r + 1) N / 2, and the sum over ranks
    # (what the all-reduce computes) equals one process's counts.
    from collapse_probe.usage import data as data_module
    from collapse_probe.usage import data_usage
    from collapse_probe.usage.shards import Shard

    rng = np.random.default_rng(6)
    protos = rng.normal(size=(40, 8)).astype(np.float32)
    samples = rng.normal(size=(101, 8)).astype(np.float32)
    whole = np.asarray(data_usage(protos, samples).to_dict()["counts"])
    local = []
    for rank in (0, 1):
        monkeypatch.setattr(data_module, "shard_from_env", lambda device, r=rank: Shard(r, 2))
        monkeypatch.setattr(data_module, "all_reduce_counts",
                            lambda counts, shard: local.append(counts.copy()) or counts)
        data_usage(protos, samples)
    assert [int(c.sum()) for c in local] == [50, 51]
    np.testing.assert_array_equal(local[0] + local[1], whole)
