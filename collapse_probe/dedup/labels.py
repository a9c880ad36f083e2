"""Group labels: canonical numbering and union-find over candidate edges."""

from __future__ import annotations

import numpy as np

__all__ = ["canonical_labels", "components_from_edges"]


def canonical_labels(labels: np.ndarray) -> np.ndarray:
    """Renumber (K,) group ids 0..U-1 in the order of each group's smallest member."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty_like(first)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[inverse].astype(np.int64)


def components_from_edges(num_nodes: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(K,) canonical component labels of the graph with the given undirected edges."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(rows.size, dtype=np.int8), (rows, cols)), shape=(num_nodes, num_nodes))
    _, labels = connected_components(graph, directed=False)
    return canonical_labels(labels)
