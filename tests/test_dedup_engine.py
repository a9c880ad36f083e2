"""Exactness of the deduplication engine against a dense float64 oracle written here."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components

from collapse_probe.dedup import deduplicate, sweep
from collapse_probe.dedup.engine import group_labels
from collapse_probe.dedup.labels import canonical_labels
from collapse_probe.dedup.search import NumpyTiles
from collapse_probe.errors import InputError
from collapse_probe.thresholds import Threshold, resolve_thresholds
from collapse_probe.types import PrototypeSet

EPS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5)


# ---------------------------------------------------------------- oracle
def oracle(unit: np.ndarray, cosine: float, method: str) -> np.ndarray:
    """Dense float64 cosines, scipy components, and the greedy walk, written out in full."""
    x = unit.astype(np.float64)
    dup = x @ x.T > cosine
    np.fill_diagonal(dup, False)
    if method == "components":
        _, labels = connected_components(dup, directed=False)
        return canonical_labels(labels)
    num = unit.shape[0]
    kept = np.zeros(num, dtype=bool)
    labels = np.arange(num)
    for i in range(num):
        earlier = np.flatnonzero(dup[i, :i] & kept[:i])
        if earlier.size:
            labels[i] = earlier.min()
        else:
            kept[i] = True
    return canonical_labels(labels)


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return PrototypeSet.from_array(matrix).vectors


# ---------------------------------------------------------------- structured inputs
def random_directions(rng: np.random.Generator, num: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((num, dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def collapsed(rng: np.random.Generator, num: int, dim: int, groups: int) -> np.ndarray:
    """Skewed groups with per-group noise from exact copies up to beyond the largest eps."""
    centres = random_directions(rng, groups, dim)
    sizes = rng.zipf(1.6, size=num) % groups
    noise = rng.choice([0.0, 1e-4, 2e-3, 8e-3, 3e-2, 0.1], size=groups)
    step = rng.standard_normal((num, dim)) / np.sqrt(dim)
    return centres[sizes] + noise[sizes, None] * step


def pair_at_cosine(rng: np.random.Generator, dim: int, cos: float) -> np.ndarray:
    """Two unit vectors with exactly this cosine (up to float rounding)."""
    a = random_directions(rng, 1, dim)[0]
    u = rng.standard_normal(dim)
    u -= (u @ a) * a
    u /= np.linalg.norm(u)
    return np.stack([a, cos * a + np.sqrt(1.0 - cos * cos) * u])


def boundary_pairs(rng: np.random.Generator, dim: int, eps_values=EPS, margin: float = 1e-5) -> np.ndarray:
    """For each eps, one pair just inside and one just outside (by ``margin`` in cosine)."""
    rows = []
    for eps in eps_values:
        t = 1.0 - eps * eps / 2.0
        rows.append(pair_at_cosine(rng, dim, t + margin))
        rows.append(pair_at_cosine(rng, dim, t - margin))
    return np.concatenate(rows)


def chain(rng: np.random.Generator, dim: int, length: int, step: float) -> np.ndarray:
    """Points along a great circle, neighbours ``step`` apart (chord)."""
    a = random_directions(rng, 1, dim)[0]
    u = rng.standard_normal(dim)
    u -= (u @ a) * a
    u /= np.linalg.norm(u)
    angle = 2.0 * np.arcsin(step / 2.0)
    t = np.arange(length) * angle
    return np.cos(t)[:, None] * a + np.sin(t)[:, None] * u


def check_all(unit: np.ndarray, eps_values=EPS, **options) -> None:
    """Both paths (dense products and the structured search), both methods, against the oracle."""
    thresholds = resolve_thresholds(eps_values)
    for method in ("components", "greedy"):
        wants = [oracle(unit, threshold.cosine, method) for threshold in thresholds]
        for path in ("dense", "search"):
            got = group_labels(unit, thresholds, method=method, path=path, **options)
            for threshold, want, labels in zip(thresholds, wants, got):
                np.testing.assert_array_equal(labels, want,
                                              err_msg=f"{method} {path} eps={threshold.eps}")


# ---------------------------------------------------------------- exactness
@pytest.mark.parametrize("seed", range(3))
def test_collapsed_heads_match_oracle(seed: int) -> None:
    rng = np.random.default_rng(seed)
    check_all(unit_rows(collapsed(rng, 1000, 32, groups=40)))


def test_exact_duplicates_and_no_duplicates() -> None:
    rng = np.random.default_rng(10)
    base = random_directions(rng, 300, 24)
    copies = base[rng.integers(0, 300, 900)]
    unit = unit_rows(np.concatenate([base, copies]))
    check_all(unit)
    healthy = unit_rows(random_directions(rng, 1200, 64))
    result = sweep(healthy, eps=EPS)
    assert [r.unique for r in result] == [1200] * len(EPS)
    check_all(healthy)


def test_one_group_of_everything() -> None:
    rng = np.random.default_rng(11)
    centre = random_directions(rng, 1, 48)
    unit = unit_rows(centre + 1e-4 * rng.standard_normal((2000, 48)) / np.sqrt(48))
    for method in ("components", "greedy"):
        assert {r.unique for r in sweep(unit, eps=EPS, method=method)} == {1}
    check_all(unit[:700])


def test_boundary_pairs_just_inside_and_outside() -> None:
    rng = np.random.default_rng(12)
    unit = unit_rows(boundary_pairs(rng, 64))
    check_all(unit)
    # Each eps: its inside pair joins at that eps, its outside pair does not.
    for k, eps in enumerate(EPS):
        labels = deduplicate(unit, eps=eps).labels
        assert labels[4 * k] == labels[4 * k + 1]
        assert labels[4 * k + 2] != labels[4 * k + 3]


def test_boundary_pairs_inside_collapsed_groups() -> None:
    rng = np.random.default_rng(13)
    groups = collapsed(rng, 800, 32, groups=20)
    unit = unit_rows(np.concatenate([groups, boundary_pairs(rng, 32), groups[:50]]))
    check_all(unit)


def test_chain_separates_components_from_greedy() -> None:
    rng = np.random.default_rng(14)
    line = chain(rng, 32, 200, step=0.02)
    unit = unit_rows(np.concatenate([line, random_directions(rng, 100, 32)]))
    comps = deduplicate(unit, eps=0.025, method="components")
    greedy = deduplicate(unit, eps=0.025, method="greedy")
    assert comps.unique < greedy.unique
    assert comps.largest_group == 200
    check_all(unit, eps_values=(0.015, 0.025, 0.05, 0.3))
    # Shuffled: greedy depends on the index order, components do not.
    perm = rng.permutation(unit.shape[0])
    check_all(unit[perm], eps_values=(0.025, 0.05))


def test_dense_noisy_group_larger_than_eps() -> None:
    """Members pairwise ~0.028 apart: no pairs at 0.025, all pairs at 0.05, chains between."""
    rng = np.random.default_rng(15)
    centre = random_directions(rng, 1, 128)
    unit = unit_rows(centre + 0.02 * rng.standard_normal((500, 128)) / np.sqrt(128))
    check_all(unit, eps_values=(0.02, 0.027, 0.028, 0.029, 0.03, 0.05, 0.1))


@pytest.mark.parametrize("block_size, slab_tiles", [(16, 4), (16, 10 ** 6), (100, 4), (4096, 4)])
def test_block_size_and_clustering_do_not_change_labels(block_size: int, slab_tiles: int,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from collapse_probe.dedup import search

    monkeypatch.setattr(search, "_MIN_SLAB_TILES", slab_tiles)
    rng = np.random.default_rng(16)
    unit = unit_rows(np.concatenate([collapsed(rng, 1000, 16, groups=25), boundary_pairs(rng, 16)]))
    thresholds = resolve_thresholds(EPS)
    for method in ("components", "greedy"):
        reference = group_labels(unit, thresholds, method=method, cluster=False, block_size=512,
                                 path="search")
        got = group_labels(unit, thresholds, method=method, block_size=block_size, path="search")
        for threshold, want, labels in zip(thresholds, reference, got):
            np.testing.assert_array_equal(labels, want, err_msg=f"{method} eps={threshold.eps}")
        np.testing.assert_array_equal(reference[2], oracle(unit, thresholds[2].cosine, method))


def test_sweep_equals_individual_calls_and_any_threshold_order() -> None:
    rng = np.random.default_rng(17)
    unit = unit_rows(collapsed(rng, 1200, 32, groups=30))
    for method in ("components", "greedy"):
        swept = sweep(unit, eps=EPS, method=method)
        assert [r.eps for r in swept] == sorted(EPS)
        for result in swept:
            single = deduplicate(unit, eps=result.eps, method=method)
            np.testing.assert_array_equal(result.labels, single.labels)
            assert result.method == method
    reverse = group_labels(unit, tuple(Threshold.from_eps(e) for e in EPS[::-1]), method="components")
    forward = group_labels(unit, tuple(Threshold.from_eps(e) for e in EPS), method="components")
    for a, b in zip(reverse, forward[::-1]):
        np.testing.assert_array_equal(a, b)


def test_cosine_spelling_and_unnormalised_rows() -> None:
    rng = np.random.default_rng(18)
    raw = collapsed(rng, 600, 16, groups=12) * rng.uniform(0.5, 3.0, size=(600, 1))
    by_eps = deduplicate(raw, eps=0.1)
    by_cos = deduplicate(raw, cosine=1 - 0.1 ** 2 / 2)
    np.testing.assert_array_equal(by_eps.labels, by_cos.labels)
    np.testing.assert_array_equal(by_eps.labels, oracle(unit_rows(raw), by_eps.cosine, "components"))


# ---------------------------------------------------------------- scale and memory
def test_sixty_five_thousand_exact_copies_are_one_group() -> None:
    rng = np.random.default_rng(19)
    one = rng.standard_normal((1, 16)).astype(np.float32)
    matrix = np.repeat(one, 65536, axis=0)
    for method in ("components", "greedy"):
        result = deduplicate(matrix, eps=0.025, method=method)
        assert result.unique == 1
        assert result.largest_group == 65536


def test_large_collapsed_head_counts_agree_with_blocked_oracle() -> None:
    """K = 20000: compare unique counts with a blocked float64 oracle (no dense K x K)."""
    rng = np.random.default_rng(20)
    centres = random_directions(rng, 300, 32)
    owner = rng.integers(0, 300, 20000)
    unit = unit_rows(centres[owner] + 1e-3 * rng.standard_normal((20000, 32)) / np.sqrt(32))
    result = deduplicate(unit, eps=0.025)
    assert result.unique == np.unique(owner).size
    # Labels equal the planted grouping (groups are 1e-3 wide, 1.4 apart).
    np.testing.assert_array_equal(result.labels, canonical_labels(owner))


# ---------------------------------------------------------------- torch path, devices, progress
def test_torch_path_on_cpu_matches_numpy() -> None:
    pytest.importorskip("torch")
    from collapse_probe.dedup.torch_backend import TorchTiles

    rng = np.random.default_rng(21)
    unit = unit_rows(np.concatenate([collapsed(rng, 500, 32, groups=20), boundary_pairs(rng, 32),
                                     random_directions(rng, 200, 32)]))
    thresholds = resolve_thresholds(EPS)
    for method in ("components", "greedy"):
        numpy_labels = group_labels(unit, thresholds, method=method, tiles=NumpyTiles(unit),
                                    block_size=512, path="search")
        for precision, cluster in (("bfloat16", True), ("bfloat16", False), ("float32", True)):
            tiles = TorchTiles(unit, device="cpu", precision=precision)
            torch_labels = group_labels(unit, thresholds, method=method, tiles=tiles,
                                        block_size=512, cluster=cluster, path="search")
            for want, got in zip(numpy_labels, torch_labels):
                np.testing.assert_array_equal(got, want)


def test_torch_tiles_on_cpu_match_oracle_on_a_giant_group() -> None:
    """The GPU path's code (torch tiles, bfloat16 / float32 candidates) run on CPU torch: labels
    equal the float64 oracle's on a Zipf-like collapsed head with one giant group."""
    pytest.importorskip("torch")
    from collapse_probe.dedup.torch_backend import TorchTiles

    rng = np.random.default_rng(45)
    unit = unit_rows(np.concatenate([zipf_with_giant_group(rng, 900, 32), boundary_pairs(rng, 32),
                                     random_directions(rng, 300, 32)]))
    thresholds = resolve_thresholds(EPS)
    for method in ("components", "greedy"):
        wants = [oracle(unit, t.cosine, method) for t in thresholds]
        for precision in ("bfloat16", "float32"):
            tiles = TorchTiles(unit, device="cpu", precision=precision)
            for cluster in (True, False):
                got = group_labels(unit, thresholds, method=method, tiles=tiles, block_size=256,
                                   cluster=cluster, path="search")
                for threshold, want, labels in zip(thresholds, wants, got):
                    np.testing.assert_array_equal(labels, want,
                                                  err_msg=f"{method} {precision} {threshold}")


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU")
def test_cuda_device_matches_cpu() -> None:
    rng = np.random.default_rng(22)
    unit = unit_rows(np.concatenate([collapsed(rng, 3000, 64, groups=50), boundary_pairs(rng, 64)]))
    for method in ("components", "greedy"):
        cpu = sweep(unit, eps=EPS, method=method, device="cpu")
        gpu = sweep(unit, eps=EPS, method=method, device="cuda")
        for a, b in zip(cpu, gpu):
            np.testing.assert_array_equal(a.labels, b.labels)


def test_auto_device_matches_cpu() -> None:
    rng = np.random.default_rng(23)
    unit = unit_rows(collapsed(rng, 500, 16, groups=10))
    auto = sweep(unit, eps=EPS, device="auto")
    cpu = sweep(unit, eps=EPS, device="cpu")
    for a, b in zip(auto, cpu):
        np.testing.assert_array_equal(a.labels, b.labels)


def test_progress_reports_reach_total() -> None:
    rng = np.random.default_rng(24)
    unit = unit_rows(random_directions(rng, 700, 16))
    for path in ("dense", "search"):
        calls: list[tuple[int, int]] = []
        group_labels(unit, resolve_thresholds(EPS), method="components", block_size=64, path=path,
                     progress=lambda done, total: calls.append((done, total)))
        assert calls[0][0] == 0
        assert calls[-1][0] == calls[-1][1] > 0
        assert all(b[0] >= a[0] for a, b in zip(calls, calls[1:]))


@pytest.mark.parametrize("options, word", [
    ({"device": "tpu"}, "device"),
    ({"method": "kmeans"}, "method"),
    ({"block_size": 3}, "block_size"),
])
def test_bad_options_raise_input_error(options: dict, word: str) -> None:
    with pytest.raises(InputError, match=word):
        sweep(np.eye(4), eps=0.1, **options)


def test_rows_are_normalised_exactly_like_prototype_sets() -> None:
    from collapse_probe.dedup.api import _unit_rows

    rng = np.random.default_rng(25)
    raw = rng.standard_normal((1000, 24)) * rng.uniform(0.1, 10.0, size=(1000, 1))
    np.testing.assert_array_equal(_unit_rows(raw, chunk=77), PrototypeSet.from_array(raw).vectors)


@pytest.mark.parametrize("matrix", [
    np.array([[1.0, 0.0], [1.0, 0.0]]),
    np.array([[1.0, 0.0], [0.0, 1.0]]),
    np.array([[1.0], [-1.0], [2.0]]),
    np.array([[1.0, 0.0, 0.0], [0.99999, 0.0045, 0.0], [0.99999, -0.0045, 0.0]]),
])
def test_tiny_heads(matrix: np.ndarray) -> None:
    check_all(unit_rows(matrix), eps_values=(0.005, 0.01, 0.5, 2.0))


def test_principal_basis_path_matches_oracle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above 4096 rows the bound and tile boxes use a principal basis: still exact."""
    from collapse_probe.dedup import search

    monkeypatch.setattr(search, "_MIN_SLAB_TILES", 2)
    rng = np.random.default_rng(26)
    unit = unit_rows(np.concatenate([collapsed(rng, 2500, 32, groups=60), random_directions(rng, 1800, 32),
                                     boundary_pairs(rng, 32), chain(rng, 32, 60, 0.02)]))
    assert unit.shape[0] > 4096
    thresholds = resolve_thresholds((0.025, 0.3))
    for method in ("components", "greedy"):
        got = group_labels(unit, thresholds, method=method, block_size=256, path="search")
        for threshold, labels in zip(thresholds, got):
            np.testing.assert_array_equal(labels, oracle(unit, threshold.cosine, method))


# ---------------------------------------------------------------- dense path and its choice
def zipf_with_giant_group(rng: np.random.Generator, num: int, dim: int) -> np.ndarray:
    """One group holding half the prototypes, Zipf-like others, spreads around every eps."""
    sizes = np.maximum(1, (num / 2 / np.arange(1, 60) ** 1.1).astype(int))
    sizes[0] = num // 2
    owner = np.repeat(np.arange(sizes.size), sizes)[:num]
    owner = np.concatenate([owner, rng.integers(0, sizes.size, num - owner.size)])
    rng.shuffle(owner)
    centres = random_directions(rng, sizes.size, dim)
    spread = rng.choice([0.0, 1e-3, 0.012, 0.03, 0.2], size=sizes.size)
    spread[0] = 0.004
    step = rng.standard_normal((num, dim)) / np.sqrt(dim)
    return centres[owner] + spread[owner, None] * step


def test_dense_path_zipf_giant_group_healthy_and_near_threshold() -> None:
    rng = np.random.default_rng(40)
    check_all(unit_rows(zipf_with_giant_group(rng, 1500, 48)))
    check_all(unit_rows(random_directions(rng, 1200, 8)))  # low D: many pairs at eps 0.5
    # Pairs 1e-7 in cosine either side of each threshold: inside the float32 margin, so the
    # float64 decision settles them.
    check_all(unit_rows(np.concatenate([boundary_pairs(rng, 64, margin=1e-7),
                                        random_directions(rng, 300, 64)])))


def test_auto_path_picks_dense_for_small_heads_only() -> None:
    from collapse_probe.dedup.engine import choose_path

    assert choose_path((1024, 64), 6) == "dense"
    assert choose_path((2048, 256), 6) == "dense"
    assert choose_path((8192, 256), 6) == "search"
    assert choose_path((65536, 256), 1) == "search"
    assert choose_path((1024, 64), 6, "search") == "search"
    with pytest.raises(InputError, match="path"):
        choose_path((1024, 64), 6, "fast")


def test_components_union_find_matches_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    from scipy.sparse import coo_matrix

    from collapse_probe.dedup import labels as labels_module
    from collapse_probe.dedup.labels import components_from_edges

    rng = np.random.default_rng(41)
    num = 3000
    perm = rng.permutation(num)
    graphs = [
        (perm[:-1], perm[1:]),                                   # one long chain, shuffled ids
        tuple(rng.integers(0, num, (2, 2500))),                  # random sparse graph
        (np.zeros(num - 1, dtype=int), np.arange(1, num)),       # a star
        (np.empty(0, dtype=int), np.empty(0, dtype=int)),        # no edges
    ]
    for rows, cols in graphs:
        graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(num, num))
        _, want = connected_components(graph, directed=False)
        want = canonical_labels(want)
        np.testing.assert_array_equal(components_from_edges(num, rows, cols), want)
        # Starting from a partition of known-connected groups gives the same components.
        start = components_from_edges(num, rows[: len(rows) // 3], cols[: len(cols) // 3])
        np.testing.assert_array_equal(components_from_edges(num, rows, cols, start=start), want)
        # Too many rounds: scipy finishes the job, same answer.
        monkeypatch.setattr(labels_module, "_MAX_ROUNDS", 1)
        np.testing.assert_array_equal(components_from_edges(num, rows, cols), want)
        monkeypatch.setattr(labels_module, "_MAX_ROUNDS", 32)


@pytest.mark.parametrize("mode", ["on", "off"])
def test_bfloat16_bound_pass_matches_oracle(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bound pass in bfloat16 (forced on, whatever the CPU) or float32: same exact labels."""
    pytest.importorskip("torch")
    from collapse_probe.dedup import lowp

    monkeypatch.setattr(lowp, "MODE", mode)
    calls = []
    original = lowp.LowPrecisionRows.rows_above
    monkeypatch.setattr(lowp.LowPrecisionRows, "rows_above",
                        lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    rng = np.random.default_rng(42)
    # Healthy directions (where the bound decides), near-threshold pairs at every eps, a small
    # collapsed part and a giant group.
    unit = unit_rows(np.concatenate([random_directions(rng, 2600, 64), boundary_pairs(rng, 64),
                                     zipf_with_giant_group(rng, 600, 64)]))
    thresholds = resolve_thresholds(EPS)
    for method in ("components", "greedy"):
        got = group_labels(unit, thresholds, method=method, block_size=256, path="search")
        for threshold, labels in zip(thresholds, got):
            np.testing.assert_array_equal(labels, oracle(unit, threshold.cosine, method),
                                          err_msg=f"{method} eps={threshold.eps}")
    assert bool(calls) == (mode == "on")


def test_bfloat16_row_max_is_within_its_margin() -> None:
    """Row maxima of bfloat16 products stay within the bfloat16 margin of float64 ones."""
    pytest.importorskip("torch")
    from collapse_probe.dedup.decide import similarity_margin
    from collapse_probe.dedup.lowp import LowPrecisionRows

    rng = np.random.default_rng(43)
    rows = random_directions(rng, 700, 97).astype(np.float32)
    rows[:50] = rows[50:100] + 1e-3 * rng.standard_normal((50, 97)).astype(np.float32)
    got = LowPrecisionRows(rows).row_max(0, 300, 300, 400)
    exact = (rows[:300].astype(np.float64) @ rows[300:].T.astype(np.float64)).max(axis=1)
    assert np.max(np.abs(got - exact)) <= similarity_margin(97, "bfloat16")
    same = LowPrecisionRows(rows).row_max(0, 700, 0, 700, same=True)
    full = rows.astype(np.float64) @ rows.T.astype(np.float64)
    np.fill_diagonal(full, -np.inf)
    margin = similarity_margin(97, "bfloat16")
    assert np.max(np.abs(same - full.max(axis=1))) <= margin
    # rows_above (int16 reduction for positive cuts, bfloat16 for the others): every row whose
    # exact maximum clears the cut by the margin is reported, none below it by the margin.
    low = LowPrecisionRows(rows)
    exact = full.max(axis=1)
    for cut in (-0.5, 0.0, 0.05, 0.2, 0.4, 0.99):
        above = low.rows_above(0, 700, 0, 700, cut, same=True)
        assert np.all(above[exact > cut + margin]), cut
        assert not np.any(above[exact < cut - margin]), cut
    # Rows with many negative products: the int16 path agrees with the bfloat16 maxima.
    mixed = (rows * np.where(np.arange(700) % 2 == 0, 1.0, -1.0)[:, None]).astype(np.float32)
    low = LowPrecisionRows(mixed)
    np.testing.assert_array_equal(low.rows_above(0, 300, 300, 400, 0.3),
                                  low.row_max(0, 300, 300, 400) > 0.3)


def test_faiss_and_numpy_tiles_match_oracle(monkeypatch: pytest.MonkeyPatch) -> None:
    """The structured search with faiss range-search tiles (forced even for small tiles) and with
    numpy tiles: labels equal the oracle's."""
    from collapse_probe.dedup.search import FaissTiles

    monkeypatch.setattr(FaissTiles, "MIN_PAIRS", 0)
    rng = np.random.default_rng(44)
    unit = unit_rows(np.concatenate([zipf_with_giant_group(rng, 900, 32), boundary_pairs(rng, 32),
                                     random_directions(rng, 400, 32), chain(rng, 32, 50, 0.02)]))
    thresholds = resolve_thresholds(EPS)
    for method in ("components", "greedy"):
        wants = [oracle(unit, t.cosine, method) for t in thresholds]
        for tiles in (FaissTiles(unit), NumpyTiles(unit)):
            for cluster in (True, False):
                got = group_labels(unit, thresholds, method=method, tiles=tiles, block_size=128,
                                   cluster=cluster, path="search")
                for threshold, want, labels in zip(thresholds, wants, got):
                    np.testing.assert_array_equal(labels, want, err_msg=f"{method} {tiles} {threshold}")
