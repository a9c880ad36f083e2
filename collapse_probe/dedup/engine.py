"""Blocked exact engine: a float32 candidate pass per row block, decided in float64."""

from __future__ import annotations

import numpy as np

from ..thresholds import Threshold
from .decide import CANDIDATE_MARGIN, exact_cosines
from .labels import canonical_labels, components_from_edges

__all__ = ["group_labels"]


def group_labels(vectors: np.ndarray, thresholds: tuple[Threshold, ...], *, method: str,
                 block_size: int = 1024) -> list[np.ndarray]:
    """One (K,) label array per threshold. vectors: (K, D) float32 unit rows."""
    num = vectors.shape[0]
    loosest = min(t.cosine for t in thresholds)
    rows_all, cols_all, cos_all = [], [], []
    for start in range(0, num, block_size):
        block = vectors[start:start + block_size]
        sims = block @ vectors[: start + block.shape[0]].T  # only j < i: each pair once
        r, c = np.nonzero(sims > loosest - CANDIDATE_MARGIN)
        r = r + start
        keep = c < r
        r, c = r[keep], c[keep]
        rows_all.append(r)
        cols_all.append(c)
        cos_all.append(exact_cosines(vectors, r, c))
    rows = np.concatenate(rows_all)
    cols = np.concatenate(cols_all)
    cos = np.concatenate(cos_all)
    out = []
    for threshold in thresholds:
        hit = cos > threshold.cosine
        if method == "components":
            out.append(components_from_edges(num, rows[hit], cols[hit]))
        else:
            out.append(_greedy(num, rows[hit], cols[hit]))
    return out


def _greedy(num: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Greedy eps-net in index order; a dropped prototype joins its first kept earlier neighbour."""
    order = np.lexsort((cols, rows))
    rows, cols = rows[order], cols[order]
    starts = np.searchsorted(rows, np.arange(num + 1))
    labels = np.arange(num)
    kept = np.ones(num, dtype=bool)
    for i in range(num):
        earlier = cols[starts[i]:starts[i + 1]]
        hits = earlier[kept[earlier]]
        if hits.size:
            kept[i] = False
            labels[i] = hits.min()
    return canonical_labels(labels)
