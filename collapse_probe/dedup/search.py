"""Candidate search between nodes: which balls may hold a duplicate pair across them.

Two balls (rep a, radius R_a) and (rep b, radius R_b) can only hold a pair closer than ``never``
if ``d(a, b) < never + R_a + R_b`` (triangle inequality). The search runs over tiles of
representatives: an optional projected upper bound (:mod:`.projection`) rules tiles and rows out
cheaply, a float32 (or lower precision, see :mod:`.torch_backend`) product proposes candidates
with a safety margin, and float64 distances of the candidates decide which pairs are kept.
Memory: one tile of similarities at a time plus the candidate pairs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import lowp
from .decide import exact_distances, similarity_margin
from .nodes import Nodes
from .projection import BoundFactors, Projection

__all__ = ["NodePairs", "SimilarityTiles", "NumpyTiles", "FaissTiles", "default_tiles",
           "find_node_pairs", "find_nested_pairs"]

log = logging.getLogger(__name__)

#: Principal coordinates that bound the tiles' boxes, and the float32 rounding allowance of a
#: box distance (coordinates are float64 projections rounded once).
_BOX_DIMS = 4
_BOX_SLACK = 1e-6
#: Tiles from which a search sorts slabs by the second coordinate.
_MIN_SLAB_TILES = 128
#: Directions tried for the bound, fewest first; a bound costing more than 1/_BOUND_MAX_COST of
#: the full product is not worth it.
_BOUND_DIMS = (16, 32, 64, 96)
_BOUND_MAX_COST = 2
#: Child pairs of a coarse pair listed directly, without a product, up to this many.
_LIST_OUTRIGHT = 64


@dataclass(frozen=True)
class NodePairs:
    """Candidate node pairs a < b with the exact float64 distance of their representatives."""

    a: np.ndarray
    b: np.ndarray
    dist: np.ndarray


class SimilarityTiles:
    """Proposes candidate pairs between two tiles of representatives.

    ``pairs(rows, cols, threshold)`` returns local indices (i, j) of every pair whose exact
    cosine may exceed ``threshold``: all pairs with cosine > threshold must be returned; a few
    more are harmless. ``rows``/``cols`` are index arrays into the vectors.
    """

    def pairs(self, rows: np.ndarray, cols: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        raise TypeError(f"{type(self).__name__} must implement pairs()")


class NumpyTiles(SimilarityTiles):
    """float32 BLAS products on the host."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors
        self.margin = similarity_margin(vectors.shape[1])

    def pairs(self, rows: np.ndarray, cols: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        sims = self.vectors[rows] @ self.vectors[cols].T
        cut = threshold - self.margin
        # Most tiles of a healthy head hold no candidate: one max pass settles them.
        hit = np.flatnonzero(sims.max(axis=1) > cut)
        if hit.size == 0:
            return hit, hit
        i, j = np.nonzero(sims[hit] > cut)
        return hit[i], j


class FaissTiles(SimilarityTiles):
    """float32 faiss ``IndexFlatIP.range_search``: product and selection fused, cache-blocked.

    faiss accumulates inner products in float32 (BLAS or SIMD), so the float32 margin covers it.
    Where faiss-gpu is installed the GPU path is :class:`.torch_backend.TorchTiles`; this one is
    for the host. Small tiles go to numpy (an index costs more to build than they cost).
    """

    #: Below this many pairs a tile is scored by numpy.
    MIN_PAIRS = 1 << 18

    def __init__(self, vectors: np.ndarray) -> None:
        import faiss

        self.faiss = faiss
        self.vectors = vectors
        self.margin = similarity_margin(vectors.shape[1])
        self.small = NumpyTiles(vectors)

    def pairs(self, rows: np.ndarray, cols: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        if rows.size * cols.size < self.MIN_PAIRS:
            return self.small.pairs(rows, cols, threshold)
        index = self.faiss.IndexFlatIP(self.vectors.shape[1])
        index.add(np.ascontiguousarray(self.vectors[cols]))
        lims, _, found = index.range_search(np.ascontiguousarray(self.vectors[rows]),
                                            float(threshold - self.margin))
        i = np.repeat(np.arange(rows.size), np.diff(lims).astype(np.int64))
        return i, found.astype(np.int64)


#: The host's float32 tile kernel: ``numpy`` (BLAS product, then select) or ``faiss`` (fused
#: range search). On the benchmark machine (``bench_dedup.py --kernels``, faiss-cpu loading its
#: generic build, no AVX-512 one) they tie on one thread (8.9 against 9.7 ms per million pairs)
#: and numpy wins on two (11.7 against 12.9), so numpy is the default.
HOST_KERNEL = "numpy"


def default_tiles(vectors: np.ndarray) -> SimilarityTiles:
    """The host's float32 tiles: :data:`HOST_KERNEL`, numpy when faiss is not installed."""
    if HOST_KERNEL == "faiss":
        try:
            return FaissTiles(vectors)
        except ImportError:
            pass
    return NumpyTiles(vectors)


def find_node_pairs(vectors: np.ndarray, nodes: Nodes, never: float, norm_min: float, *,
                    tiles: SimilarityTiles, projection: Projection | None, tile_size: int = 2048,
                    progress: Callable[[int], None] | None = None) -> NodePairs:
    """All node pairs (a < b) with ``d(rep_a, rep_b) < never + R_a + R_b``.

    Args:
        vectors: (K, D) float32 unit rows.
        nodes: the cover whose representatives are searched.
        never: distance beyond which no two prototypes are duplicates (the loosest threshold).
        norm_min: the smallest squared row norm (rows are unit up to rounding).
        tiles: the similarity backend.
        projection: projected rows for the cheap upper bound, or None to skip it.
        tile_size: representatives per tile.
        progress: called with the number of tile rows finished so far.
    """
    reps = nodes.rep
    radius = nodes.radius
    count = reps.size
    # Tiles are boxes on the first principal coordinates: thin slabs along the first, and with
    # many tiles, slabs of several tiles sorted by the second inside. Projection shrinks
    # distances, so two tiles whose boxes are further apart than the reach hold no candidate.
    order, boxes = _tile_order(projection, reps, tile_size)
    starts = list(range(0, count, tile_size))
    max_radius = np.array([radius[order[s:s + tile_size]].max() for s in starts])
    # Bound rows are indexed by position in the tile order.
    factors = None if projection is None else _choose_bound(
        projection, reps[order], radius[order], never, norm_min, tile_size)
    found_a, found_b = [], []
    for ti, si in enumerate(starts):
        rows = order[si:si + tile_size]
        partners = np.arange(ti, len(starts))
        if boxes is not None:
            lo, hi = boxes
            gap = np.maximum(0.0, np.maximum(lo[partners] - hi[ti], lo[ti] - hi[partners]))
            apart = np.sqrt(np.einsum("ij,ij->i", gap, gap))
            partners = partners[apart <= never + max_radius[ti] + max_radius[partners] + _BOX_SLACK]
        for tj in partners.tolist():
            sj = starts[tj]
            reach = never + max_radius[ti] + max_radius[tj]
            cols = order[sj:sj + tile_size]
            # cos(a, b) > norm_min - reach^2 / 2 whenever d(a, b) < reach.
            threshold = norm_min - reach * reach / 2.0
            local = np.arange(rows.size)
            if factors is not None:
                local = local[_survivors(factors, si, rows.size, sj, cols.size, threshold,
                                         same=ti == tj)]
                if local.size == 0:
                    continue
            i, j = tiles.pairs(reps[rows[local]], reps[cols], threshold)
            i = local[i]
            if ti == tj:
                keep = i < j
                i, j = i[keep], j[keep]
            a, b = rows[i], cols[j]
            found_a.append(np.minimum(a, b))
            found_b.append(np.maximum(a, b))
        if progress is not None:
            progress(ti + 1)
    return _decided(vectors, nodes, found_a, found_b, never)


def find_nested_pairs(vectors: np.ndarray, nodes: Nodes, parent: np.ndarray, coarse: NodePairs,
                      never: float, norm_min: float, *, tiles: SimilarityTiles,
                      tile_size: int = 2048) -> NodePairs:
    """Like :func:`find_node_pairs`, for a cover nested in a coarser one already searched.

    If balls a and b hold a pair closer than ``never`` (<= the coarse search's distance), their
    coarse balls A and B are the same ball or a coarse candidate pair: the pair itself puts
    ``d(rep_A, rep_B) < R_A + never + R_B``. So only children of one coarse ball, and children
    of coarse candidate pairs, are compared.

    Args:
        parent: (N,) the coarse ball of each node.
        coarse: the candidate pairs of the coarse cover (found at a distance >= ``never``).
    """
    reps, radius = nodes.rep, nodes.radius
    order = np.argsort(parent, kind="stable")
    starts = np.searchsorted(parent[order], np.arange(int(parent.max()) + 2))
    sizes = np.diff(starts)
    found_a, found_b = [], []

    def compare(rows: np.ndarray, cols: np.ndarray, same: bool) -> None:
        for si in range(0, rows.size, tile_size):
            r = rows[si:si + tile_size]
            for sj in range(si if same else 0, cols.size, tile_size):
                c = cols[sj:sj + tile_size]
                reach = never + radius[r].max() + radius[c].max()
                i, j = tiles.pairs(reps[r], reps[c], norm_min - reach * reach / 2.0)
                a, b = r[i], c[j]
                if same:
                    keep = a < b
                    a, b = a[keep], b[keep]
                found_a.append(np.minimum(a, b))
                found_b.append(np.maximum(a, b))

    # Small products are listed outright (vectorised); large ones go through the tiles.
    same = np.flatnonzero(sizes >= 2)
    small = sizes[same] ** 2 <= _LIST_OUTRIGHT
    _list_pairs(order, starts, same[small], same[small], found_a, found_b)
    for big in same[~small]:
        children = order[starts[big]:starts[big + 1]]
        compare(children, children, True)
    small = sizes[coarse.a] * sizes[coarse.b] <= _LIST_OUTRIGHT
    _list_pairs(order, starts, coarse.a[small], coarse.b[small], found_a, found_b)
    for ca, cb in zip(coarse.a[~small].tolist(), coarse.b[~small].tolist()):
        compare(order[starts[ca]:starts[ca + 1]], order[starts[cb]:starts[cb + 1]], False)
    return _decided(vectors, nodes, found_a, found_b, never)


def _list_pairs(order: np.ndarray, starts: np.ndarray, left: np.ndarray, right: np.ndarray,
                found_a: list[np.ndarray], found_b: list[np.ndarray]) -> None:
    """Every child pair of each coarse pair (left[k], right[k]); a coarse ball with itself gives a < b."""
    if left.size == 0:
        return
    size_l = starts[left + 1] - starts[left]
    size_r = starts[right + 1] - starts[right]
    counts = size_l * size_r
    task = np.repeat(np.arange(left.size), counts)
    within = np.arange(task.size) - np.repeat(np.cumsum(counts) - counts, counts)
    a = order[starts[left[task]] + within // size_r[task]]
    b = order[starts[right[task]] + within % size_r[task]]
    # Inside one coarse ball each pair was listed in both orders (and with itself): keep a < b.
    keep = (a < b) | (left[task] != right[task])
    a, b = a[keep], b[keep]
    found_a.append(np.minimum(a, b))
    found_b.append(np.maximum(a, b))


def _decided(vectors: np.ndarray, nodes: Nodes, found_a: list[np.ndarray], found_b: list[np.ndarray],
             never: float) -> NodePairs:
    """Keep the proposed pairs whose exact representative distance allows a close pair."""
    a = np.concatenate(found_a).astype(np.int64) if found_a else np.empty(0, dtype=np.int64)
    b = np.concatenate(found_b).astype(np.int64) if found_b else np.empty(0, dtype=np.int64)
    dist = exact_distances(vectors, nodes.rep[a], nodes.rep[b])
    keep = dist - nodes.radius[a] - nodes.radius[b] < never
    return NodePairs(a=a[keep], b=b[keep], dist=dist[keep])


def _tile_order(projection: Projection | None, reps: np.ndarray,
                tile_size: int) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """A tile order of the representatives and each tile's box (lo, hi) on the box coordinates."""
    count = reps.size
    if projection is None or count <= tile_size:
        return np.arange(count), None
    coords = projection.coords[reps, :_BOX_DIMS].astype(np.float64)
    tiles = -(-count // tile_size)
    order = np.argsort(coords[:, 0], kind="stable")
    if tiles >= _MIN_SLAB_TILES and coords.shape[1] > 1:
        # Only with many tiles are slabs of sqrt(tiles) tiles narrower than a useful reach.
        slab = round(tiles ** 0.5) * tile_size
        order = np.concatenate([
            part[np.argsort(coords[part, 1], kind="stable")]
            for part in (order[s:s + slab] for s in range(0, count, slab))
        ])
    starts = np.arange(0, count, tile_size)
    ordered = coords[order]
    lo = np.minimum.reduceat(ordered, starts, axis=0)
    hi = np.maximum.reduceat(ordered, starts, axis=0)
    return order, (lo, hi)


def _survivors(factors: BoundFactors, si: int, nrows: int, sj: int, ncols: int, threshold: float,
               *, same: bool = False) -> np.ndarray:
    """(nrows,) bool: rows of a tile whose upper bound reaches ``threshold`` for some column.

    Tiles are the positions si:si+nrows and sj:sj+ncols of the factors' rows.
    """
    if factors.low is not None:
        return factors.low.rows_above(si, nrows, sj, ncols, threshold - factors.margin, same=same)
    bound = factors.rows[si:si + nrows] @ factors.rows[sj:sj + ncols].T
    if same:
        np.fill_diagonal(bound, -np.inf)  # a row with itself is no pair
    return bound.max(axis=1) > threshold - factors.margin


def _choose_bound(projection: Projection, reps: np.ndarray, radius: np.ndarray, never: float,
                  norm_min: float, tile_size: int) -> BoundFactors | None:
    """Bound factors whose estimated cost on a sample tile pair is lowest, or None.

    Cost of a tile pair relative to the full float32 product: ``(dim + 1) / D`` for the bound
    (divided by :data:`.lowp.BF16_SPEEDUP` in bfloat16) plus the fraction of rows it leaves for
    the full product; no bound costs 1. bfloat16 is used where :func:`.lowp.worth_it` says the
    time it saves on the bound passes exceeds what it costs to set up.
    """
    count = reps.size
    if count <= 2 * tile_size:
        return None
    full_dim = projection.vectors.shape[1]
    # The bound pass over all tile pairs at 96 directions, in float32, estimated as the dense
    # path's cost model: what bfloat16 could save at most is half of it.
    from .dense import dense_seconds

    saved = dense_seconds(count, min(full_dim, 97), 0) * (1.0 - 1.0 / lowp.BF16_SPEEDUP)
    precision = "bfloat16" if lowp.worth_it(saved) else "float32"
    speedup = lowp.BF16_SPEEDUP if precision == "bfloat16" else 1.0
    rng = np.random.default_rng(0)
    picked = rng.choice(count, 2 * tile_size, replace=False)
    sample = reps[picked]
    reach = never + 2.0 * float(radius.max())
    threshold = norm_min - reach * reach / 2.0
    best_dim, best_cost = 0, 1.0
    for dim in _BOUND_DIMS:
        if dim * _BOUND_MAX_COST > full_dim:
            break
        probe = projection.bound_factors(sample, dim, precision=precision)
        alive = np.count_nonzero(_survivors(probe, 0, tile_size, tile_size, tile_size, threshold))
        cost = (dim + 1) / full_dim / speedup + alive / tile_size
        if cost < best_cost:
            best_dim, best_cost = dim, cost
        if alive == 0:
            break  # more directions only cost more
    if best_dim == 0:
        return None
    log.debug("dedup: bound on %d principal directions in %s (estimated cost %.2f of the full "
              "product)", best_dim, precision, best_cost)
    return projection.bound_factors(reps, best_dim, precision=precision)
