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
    neighbours: dict[int, list[tuple[int, bool]]] = {}
    for x, y, c in zip(a.tolist(), b.tolist(), certain.tolist()):
        neighbours.setdefault(x, []).append((y, c))
        neighbours.setdefault(y, []).append((x, c))
    coupled = np.zeros(nodes.count, dtype=bool)
    coupled[list(neighbours)] = True
    walk = np.flatnonzero(coupled[nodes.node_of])
    kept: dict[int, int] = {}
    node_of = nodes.node_of
    for i in walk.tolist():
        own = int(node_of[i])
        best = kept.get(own, -1)
        for other, sure in neighbours[own]:
            k = kept.get(other, -1)
            if k < 0 or (0 <= best < k):
                continue
            if sure or exact_cosines(vectors, np.array([i]), np.array([k]))[0] > band.cosine:
                best = k
        if best < 0:
            kept[own] = i
            best = i
        labels[i] = best
    return canonical_labels(labels)
