"""Greedy eps-net in index order, from a cover by cliques and candidate node pairs.

Walk i = 0..K-1 and keep i unless it duplicates an already kept prototype; a dropped prototype
is labelled by the smallest kept prototype it duplicates. In a clique every two members are
duplicates, so a clique keeps at most one member. A clique that no candidate pair touches keeps
its first member and drops the rest onto it (vectorised); only members of cliques that touch
others walk in order, each checked against the (at most one) kept member of every neighbour.
"""

from __future__ import annotations

import numpy as np

from .decide import DistanceBand, exact_cosines
from .labels import canonical_labels
from .nodes import Nodes
from .search import NodePairs

__all__ = ["greedy_labels"]


def greedy_labels(vectors: np.ndarray, nodes: Nodes, pairs: NodePairs, band: DistanceBand) -> np.ndarray:
    """(K,) canonical greedy labels at ``band``'s threshold. nodes: cliques (2 radius < band.sure)."""
    radius = nodes.radius
    lower = pairs.dist - radius[pairs.a] - radius[pairs.b]
    possible = lower < band.never
    a, b = pairs.a[possible], pairs.b[possible]
    certain = (pairs.dist + radius[pairs.a] + radius[pairs.b])[possible] < band.sure
    num = nodes.node_of.size
    first = np.full(nodes.count, num, dtype=np.int64)
    np.minimum.at(first, nodes.node_of, np.arange(num))
    # Untouched cliques: everyone joins the clique's first member.
    labels = first[nodes.node_of].copy()
    if a.size == 0:
        return canonical_labels(labels)
    # Adjacency of nodes (CSR), both directions.
    src = np.concatenate([a, b])
    dst = np.concatenate([b, a])
    sure = np.concatenate([certain, certain])
    order = np.argsort(src, kind="stable")
    src, dst, sure = src[order], dst[order], sure[order]
    indptr = np.searchsorted(src, np.arange(nodes.count + 1))
    coupled = np.zeros(nodes.count, dtype=bool)
    coupled[src] = True
    walk = np.flatnonzero(coupled[nodes.node_of])
    kept: dict[int, int] = {}
    # Kept members of each node's neighbours, ascending (they are appended in walk order).
    kept_nearby: dict[int, list[tuple[int, bool]]] = {}
    node_of = nodes.node_of
    for i in walk.tolist():
        own = int(node_of[i])
        best = kept.get(own, -1)
        for k, certain_dup in kept_nearby.get(own, ()):
            if 0 <= best < k:
                break
            if certain_dup or exact_cosines(vectors, np.array([i]), np.array([k]))[0] > band.cosine:
                best = k
                break
        if best < 0:
            kept[own] = i
            best = i
            lo, hi = indptr[own], indptr[own + 1]
            for other, certain_dup in zip(dst[lo:hi].tolist(), sure[lo:hi].tolist()):
                kept_nearby.setdefault(other, []).append((i, certain_dup))
        labels[i] = best
    return canonical_labels(labels)
