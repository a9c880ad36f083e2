"""The dense path for small heads: every pair in blocked float32 products, decided exactly.

For a few thousand prototypes the whole similarity matrix is a millisecond-scale float32 product,
cheaper than building covers and searching between balls. The product only *proposes* pairs
(cosine above the loosest threshold minus :func:`.decide.similarity_margin`); a pair is a
duplicate for certain when its float32 cosine clears the threshold by the margin, and pairs
within the margin of it are decided by :func:`.decide.exact_cosines` in float64, the same rule
as the structured search. Labels are therefore identical on either path.

Memory: one (block, K) float32 tile and the proposed pairs (at most K (K - 1) / 2, which the
engine's cost model keeps small by choosing this path only for small K).
"""

from __future__ import annotations

import numpy as np

from ..thresholds import Threshold
from .decide import exact_cosines, similarity_margin
from .labels import canonical_labels, components_from_edges

__all__ = ["dense_labels", "dense_seconds"]

#: Rows per float32 product block (a (block, K) tile: 32 MiB at K = 4096).
_BLOCK_ROWS = 2048
#: Products up to this many flops run on one BLAS thread (about 10 ms of work).
_ONE_THREAD_FLOPS = 1e9

#: Cost model of this path on one BLAS thread, fitted to ``benchmarks/bench_dedup.py --crossover``
#: on healthy heads (AMD EPYC, OpenBLAS; benchmarks/README.md): float32 flops per second of the
#: product, and seconds per similarity scanned (the compare and select after the product; a
#: collapsed head adds its pairs, up to twice that). It decides the path, never the labels.
_FLOPS_PER_SECOND = 5.0e10
_SECONDS_PER_SCAN = 1.5e-9


def dense_seconds(num: int, dim: int, thresholds: int) -> float:
    """Estimated seconds of :func:`dense_labels` for a (num, dim) head (half the pairs)."""
    pairs = num * (num - 1) / 2.0
    return 2.0 * pairs * dim / _FLOPS_PER_SECOND + pairs * (1 + thresholds) * _SECONDS_PER_SCAN


def dense_labels(vectors: np.ndarray, thresholds: tuple[Threshold, ...], *,
                 method: str) -> list[np.ndarray]:
    """One (K,) canonical label array per threshold (same order), from all pairs.

    Args:
        vectors: (K, D) float32 unit rows.
        thresholds: the thresholds, any order.
        method: ``components`` or ``greedy``.
    """
    num, dim = vectors.shape
    if 2.0 * num * num * dim <= _ONE_THREAD_FLOPS:
        with _one_blas_thread():
            a, b, s = _proposed_pairs(vectors, min(t.cosine for t in thresholds))
    else:
        a, b, s = _proposed_pairs(vectors, min(t.cosine for t in thresholds))
    margin = similarity_margin(dim)
    return _decide(vectors, thresholds, method, a, b, s, margin)


def _proposed_pairs(vectors: np.ndarray, loosest: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs a < b whose float32 cosine s exceeds ``loosest`` minus the margin: (a, b, s)."""
    num, dim = vectors.shape
    cut = loosest - similarity_margin(dim)
    rows, cols, sims = [], [], []
    for start in range(0, num, _BLOCK_ROWS):
        block = vectors[start:start + _BLOCK_ROWS] @ vectors[start:].T
        # Upper triangle only: column c of this block is prototype start + c.
        i, j = np.nonzero(block > cut)
        keep = j > i
        i, j = i[keep], j[keep]
        # int32 halves the pairs' memory (K is small on this path).
        rows.append((i + start).astype(np.int32))
        cols.append((j + start).astype(np.int32))
        sims.append(block[i, j])
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(sims)


def _decide(vectors: np.ndarray, thresholds: tuple[Threshold, ...], method: str, a: np.ndarray,
            b: np.ndarray, s: np.ndarray, margin: float) -> list[np.ndarray]:
    """Labels per threshold from the proposed pairs: sure beyond the margin, float64 within it."""
    num = vectors.shape[0]
    out: list[np.ndarray | None] = [None] * len(thresholds)
    previous = None
    # Strictest first: its components are connected at every looser threshold too.
    for k in sorted(range(len(thresholds)), key=lambda k: thresholds[k].cosine, reverse=True):
        cosine = thresholds[k].cosine
        sure = s > cosine + margin
        maybe = np.flatnonzero(~sure & (s > cosine - margin))
        dup = sure
        if maybe.size:
            dup = sure.copy()
            dup[maybe] = exact_cosines(vectors, a[maybe], b[maybe]) > cosine
        if method == "components":
            previous = components_from_edges(num, a[dup], b[dup], start=previous)
            out[k] = previous
        else:
            out[k] = _greedy(num, a[dup], b[dup])
    return [labels for labels in out if labels is not None]


def _one_blas_thread():  # noqa: ANN202 - a context manager
    """BLAS on one thread: a small product only waits for a second thread on a busy machine."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _greedy(num: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Greedy eps-net labels in index order from duplicate pairs a < b.

    A prototype with no earlier duplicate is kept; any other one is kept unless an earlier kept
    prototype duplicates it, and then takes the smallest such as its label.
    """
    labels = np.arange(num)
    if a.size == 0:
        return labels
    # Earlier partners of each later prototype, as CSR sorted by the later one.
    order = np.lexsort((a, b))
    later, earlier = b[order], a[order]
    starts = np.searchsorted(later, np.arange(num + 1))
    kept = np.ones(num, dtype=bool)
    for i in np.unique(later).tolist():
        partners = earlier[starts[i]:starts[i + 1]]  # ascending
        hit = partners[kept[partners]]
        if hit.size:
            kept[i] = False
            labels[i] = hit[0]
    return canonical_labels(labels)
