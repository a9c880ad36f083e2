"""Connected components at one threshold, from a cover by stars and candidate node pairs.

Every member of a star is an exact duplicate of its representative, so a star is connected. Two
stars are joined when some pair across them is a duplicate: for certain when their
representatives are; otherwise (a *maybe* pair) the members that can reach the other ball are
checked exactly, and only while the two stars are not already joined. No pair list grows with
the square of a group: a group inside one star costs nothing.
"""

from __future__ import annotations

import numpy as np

from .decide import DistanceBand, exact_cosines, row_distances
from .labels import canonical_labels, components_from_edges
from .nodes import Nodes
from .search import NodePairs

__all__ = ["component_labels"]

#: float64 product blocks in the exact check of a maybe pair (rows x columns).
_CHECK_BLOCK = 1024


def component_labels(vectors: np.ndarray, nodes: Nodes, pairs: NodePairs, band: DistanceBand,
                     members: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """(K,) canonical component labels at ``band``'s threshold. nodes: stars (radius < band.sure)."""
    radius = nodes.radius
    lower = pairs.dist - radius[pairs.a] - radius[pairs.b]
    possible = lower < band.never
    sure = possible & (pairs.dist < band.sure)
    maybe = possible & ~sure
    node_label = components_from_edges(nodes.count, pairs.a[sure], pairs.b[sure])
    if np.any(maybe):
        node_label = _join_maybe(vectors, nodes, pairs.a[maybe], pairs.b[maybe], pairs.dist[maybe],
                                 node_label, band, members or nodes.members())
    return canonical_labels(node_label[nodes.node_of])


def _join_maybe(vectors: np.ndarray, nodes: Nodes, a: np.ndarray, b: np.ndarray, dist: np.ndarray,
                node_label: np.ndarray, band: DistanceBand,
                members: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Union the maybe pairs that hold an exact duplicate, skipping already joined ones."""
    parent = np.arange(int(node_label.max()) + 1)

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    order, starts = members
    # Closest first: those are the likeliest to join, which lets later checks be skipped.
    for k in np.argsort(dist, kind="stable"):
        na, nb = int(a[k]), int(b[k])
        ra, rb = find(int(node_label[na])), find(int(node_label[nb]))
        if ra == rb:
            continue
        if _any_duplicate(vectors, nodes, order[starts[na]:starts[na + 1]],
                          order[starts[nb]:starts[nb + 1]], na, nb, band):
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([find(int(x)) for x in range(parent.size)])
    return roots[node_label]


def _any_duplicate(vectors: np.ndarray, nodes: Nodes, members_a: np.ndarray, members_b: np.ndarray,
                   na: int, nb: int, band: DistanceBand) -> bool:
    """Whether some x in ball a and y in ball b are exact duplicates."""
    rep_a, rep_b = int(nodes.rep[na]), int(nodes.rep[nb])
    # Only members within never + R of the other representative can reach the other ball.
    xs = members_a[row_distances(vectors, members_a, rep_b) < band.never + nodes.radius[nb]]
    ys = members_b[row_distances(vectors, members_b, rep_a) < band.never + nodes.radius[na]]
    if xs.size == 0 or ys.size == 0:
        return False
    for i in range(0, xs.size, _CHECK_BLOCK):
        left = vectors[xs[i:i + _CHECK_BLOCK]].astype(np.float64)
        for j in range(0, ys.size, _CHECK_BLOCK):
            right = vectors[ys[j:j + _CHECK_BLOCK]].astype(np.float64)
            # The product only nominates; exact_cosines decides what sits near the threshold.
            r, c = np.nonzero(left @ right.T > band.cosine - 1e-9)
            if r.size and np.any(exact_cosines(vectors, xs[i + r], ys[j + c]) > band.cosine):
                return True
    return False
