"""Data-side usage: planted assignments with hand-computed statistics, blocked == dense, memory."""

from __future__ import annotations

import json
import math
import tracemalloc

import numpy as np
import pytest

from collapse_probe import InputError, PrototypeSet, data_usage
from collapse_probe.usage import UsageReport, assign


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _planted() -> tuple[np.ndarray, np.ndarray]:
    """6 prototypes in D=4: {0, 1, 2} duplicates (1 an exact copy of 0, 2 at distance ~0.01),
    3, 4, 5 alone. 10 samples: 4 on prototype 0 (tied with its copy 1), 2 on prototype 2,
    3 on prototype 3, 1 on prototype 4; prototype 5 unused."""
    e = np.eye(4)
    protos = np.stack([e[0], e[0], _unit(e[0] + 0.01 * e[1]), e[1], e[2], e[3]]) * 3.0
    samples = np.concatenate([
        np.repeat(e[0][None], 4, axis=0) * [[1.0], [2.0], [0.5], [7.0]],  # any norm
        np.repeat(_unit(e[0] + 0.01 * e[1])[None], 2, axis=0) * 5.0,
        np.repeat(_unit(e[1] + 0.001 * e[3])[None], 3, axis=0),
        e[2][None] * 0.1,
    ])
    return protos.astype(np.float32), samples.astype(np.float32)


def test_planted_usage_matches_hand_computed_statistics() -> None:
    protos, samples = _planted()
    report = data_usage(protos, samples, eps=0.025)
    assert report.source == "data" and not report.is_proxy
    assert report.num_samples == 10 and report.num_prototypes == 6
    assert report.counts.tolist() == [4, 0, 2, 3, 1, 0]  # tie 0/1 -> lowest index 0
    assert report.used == 4 and report.used_fraction == pytest.approx(4 / 6)
    h = -(0.4 * math.log(0.4) + 0.2 * math.log(0.2) + 0.3 * math.log(0.3) + 0.1 * math.log(0.1))
    assert report.entropy == pytest.approx(h, abs=1e-12)
    assert report.perplexity == pytest.approx(math.exp(h), abs=1e-12)
    assert report.unique == 4  # groups {0,1,2}, {3}, {4}, {5}
    merged_h = -(0.6 * math.log(0.6) + 0.3 * math.log(0.3) + 0.1 * math.log(0.1))
    assert report.merged_entropy == pytest.approx(merged_h, abs=1e-12)
    assert report.merged_perplexity == pytest.approx(math.exp(merged_h), abs=1e-12)
    assert report.merged_perplexity < report.perplexity
    assert report.merged_used == 3
    top = report.top_groups
    assert [(g.label, g.size, g.members) for g in top] == [(0, 3, (0, 1, 2)), (1, 1, (3,)), (2, 1, (4,))]
    assert [g.share for g in top] == pytest.approx([0.6, 0.3, 0.1])
    assert report.largest_group.members == (0, 1, 2)
    assert report.largest_group_share == pytest.approx(0.6)


def test_report_is_frozen_and_json_safe() -> None:
    protos, samples = _planted()
    report = data_usage(PrototypeSet.from_array(protos, name="head"), samples)
    assert isinstance(report, UsageReport) and report.head == "head"
    with pytest.raises(ValueError):
        report.counts[0] = 1
    data = json.loads(json.dumps(report.to_dict()))
    assert data["counts"] == [4, 0, 2, 3, 1, 0] and data["proxy"] is False
    assert data["merged_used"] == 3 and data["top_groups"][0]["members"] == [0, 1, 2]
    assert "counts" not in report.to_dict(include_distribution=False)


def _dense_oracle(protos: np.ndarray, samples: np.ndarray) -> np.ndarray:
    p = protos / np.linalg.norm(protos, axis=1, keepdims=True)
    s = samples / np.linalg.norm(samples, axis=1, keepdims=True)
    return np.argmax(s.astype(np.float64) @ p.astype(np.float64).T, axis=1)  # first max = lowest


@pytest.mark.parametrize("block_size,prototype_block_size", [(1, 1), (7, 5), (64, 3), (500, 37), (1000, 1000)])
def test_blocked_assignment_equals_dense(block_size: int, prototype_block_size: int) -> None:
    rng = np.random.default_rng(3)
    protos = rng.normal(size=(37, 8)).astype(np.float32)
    protos[[5, 20, 36]] = protos[2]  # exact copies across prototype tiles: ties -> index 2
    samples = rng.normal(size=(501, 8)).astype(np.float32)
    samples[:40] = protos[2] * rng.uniform(0.5, 2.0, size=(40, 1)).astype(np.float32)
    unit = PrototypeSet.from_array(protos).vectors
    seen: list[tuple[int, int]] = []
    got = assign(unit, samples, block_size=block_size, prototype_block_size=prototype_block_size,
                 progress=lambda done, total: seen.append((done, total)))
    np.testing.assert_array_equal(got, _dense_oracle(protos, samples))
    assert set(got[:40].tolist()) == {2}
    assert seen[-1] == (501, 501) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert len(seen) == math.ceil(501 / block_size)


def test_assignment_memory_stays_bounded_by_the_tile(tmp_path) -> None:
    # N x K float32 scores would be 3.3 GB; the tiles are 2048 x 512 (4 MiB).
    num, k, dim, block, pblock = 200_000, 4096, 16, 2048, 512
    rng = np.random.default_rng(0)
    path = tmp_path / "features.npy"
    np.save(path, rng.normal(size=(num, dim)).astype(np.float32))
    features = np.load(path, mmap_mode="r")
    unit = PrototypeSet.from_array(rng.normal(size=(k, dim))).vectors
    tracemalloc.start()
    try:
        labels = assign(unit, features, block_size=block, prototype_block_size=pblock)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    tile = block * pblock * 4
    # the (N,) int64 labels, one score tile with its temporaries, a copy of the head, 1 MiB slack
    assert peak < 8 * num + 2 * tile + k * dim * 4 + (1 << 20), peak
    assert peak < num * k * 4 / 100
    assert labels.shape == (num,) and labels.min() >= 0 and labels.max() < k
    # spot-check some rows against the exact dense answer of those rows
    rows = rng.choice(num, size=300, replace=False)
    np.testing.assert_array_equal(labels[rows], _dense_oracle(unit, np.asarray(features[rows])))


def test_embed_maps_raw_features_block_by_block() -> None:
    protos, samples = _planted()
    lift = np.random.default_rng(1).normal(size=(4, 9)).astype(np.float32)
    raw = samples @ lift  # (10, 9) "backbone" features; pinv maps them back to the bottleneck
    back = np.linalg.pinv(lift).astype(np.float32)
    shapes: list[tuple[int, ...]] = []

    def embed(block: np.ndarray) -> np.ndarray:
        shapes.append(block.shape)
        return block @ back

    report = data_usage(protos, raw, embed=embed, block_size=4, space="backbone")
    assert report.counts.tolist() == [4, 0, 2, 3, 1, 0] and report.space == "backbone"
    assert shapes == [(4, 9), (4, 9), (2, 9)]


def test_bad_inputs_raise_one_line_input_errors() -> None:
    protos, samples = _planted()
    with pytest.raises(InputError, match="dimension 4.*got dimension 3"):
        data_usage(protos, samples[:, :3])
    zero = samples.copy()
    zero[7] = 0
    with pytest.raises(InputError, match=r"non-zero rows.*samples 4-7 \(first: \[7\]\)"):
        data_usage(protos, zero, block_size=4)
    with pytest.raises(InputError, match="2-D"):
        data_usage(protos, samples[0])
    with pytest.raises(InputError, match="block_size"):
        data_usage(protos, samples, block_size=0)
    with pytest.raises(InputError) as info:
        data_usage(protos, np.full((3, 4), np.nan, dtype=np.float32))
    assert "\n" not in str(info.value)


def test_torch_tiles_match_numpy_tiles_on_the_cpu() -> None:
    from collapse_probe.usage.tiles import NumpyTiles, TorchTiles

    rng = np.random.default_rng(5)
    unit = PrototypeSet.from_array(rng.normal(size=(53, 8))).vectors
    block = PrototypeSet.from_array(rng.normal(size=(200, 8))).vectors
    for tile in (1, 7, 53, 100):
        np.testing.assert_array_equal(TorchTiles(unit, device="cpu").best(block, tile),
                                      NumpyTiles(unit).best(block, tile))
    np.testing.assert_array_equal(NumpyTiles(unit).best(block, 7), _dense_oracle(unit, block))


def test_device_choice() -> None:
    import torch

    protos, samples = _planted()
    assert data_usage(protos, samples, device="auto").counts.tolist() == [4, 0, 2, 3, 1, 0]
    with pytest.raises(InputError, match="device"):
        data_usage(protos, samples, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA"):
            data_usage(protos, samples, device="cuda")


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_gpu_assignment_equals_dense() -> None:
    rng = np.random.default_rng(3)
    protos = rng.normal(size=(300, 16)).astype(np.float32)
    protos[[7, 150]] = protos[3]
    samples = rng.normal(size=(2000, 16)).astype(np.float32)
    unit = PrototypeSet.from_array(protos).vectors
    got = assign(unit, samples, block_size=512, prototype_block_size=64, device="cuda")
    np.testing.assert_array_equal(got, _dense_oracle(protos, samples))


def test_exact_copies_are_found_bit_for_bit() -> None:
    from collapse_probe.usage.assign import _distinct_rows

    rng = np.random.default_rng(9)
    rows = rng.normal(size=(40, 6)).astype(np.float32)
    rows[[3, 17, 39]] = rows[2]
    rows[25] = rows[10]
    rows[11] = np.nextafter(rows[10], np.float32(np.inf))  # one ulp away: not a copy
    expected = [i for i in range(40) if i not in (3, 17, 39, 25)]
    np.testing.assert_array_equal(_distinct_rows(rows, chunk=7), expected)
