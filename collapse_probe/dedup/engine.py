"""The exact deduplication engine: cover by balls, search between balls, decide exactly.

1. Leader clustering (:mod:`.nodes`) covers the prototypes with balls, one level per threshold
   (ascending eps), each level merging the previous one: stars (radius < eps) for components,
   cliques (radius < eps / 2) for greedy. Collapsed groups become single balls.
2. Candidate search (:mod:`.search`) between ball representatives, once per run of thresholds
   that share a cover, at the loosest of them (a sweep on a healthy or tightly collapsed head is
   a single pass). The coarsest cover is searched in full; each finer cover only inside coarse
   balls and across coarse candidate pairs.
3. Per threshold, components (:mod:`.components`) or the greedy walk (:mod:`.greedy`) decide the
   remaining pairs with the exact float64 rule of :mod:`.decide`.

Memory: the matrix, its first principal coordinates (K x 16), the bound factors of the coarsest
search (at most K x 97 float32), a few (K,) arrays, one tile of similarities and the candidate
pairs between balls. Those pairs stay few for components (a star absorbs a dense group); for
greedy, a group too loose for cliques (members between eps / 2 and eps apart) lists its pairs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from ..thresholds import Threshold
from ..validation import fail
from .components import component_labels
from .decide import DistanceBand, squared_norm_range
from .dense import dense_labels, dense_seconds
from .greedy import greedy_labels
from .nodes import Nodes, grid_merge, merge_nodes, singletons
from .projection import principal_projection
from .search import SimilarityTiles, default_tiles, find_nested_pairs, find_node_pairs

__all__ = ["group_labels", "choose_path", "PATHS", "PROJECTION_DIM"]

log = logging.getLogger(__name__)

#: Principal coordinates kept for clustering and tile boxes.
PROJECTION_DIM = 16
#: Nodes per leader-clustering step (its cost grows with the square of this).
_MERGE_BLOCK = 1024
#: ``dense``: all pairs in blocked float32 products (:mod:`.dense`); ``search``: covers and the
#: candidate search; ``auto``: whichever :func:`choose_path` estimates cheaper.
PATHS: tuple[str, ...] = ("auto", "dense", "search")
#: Estimated dense seconds up to which the dense path is taken. Measured with
#: ``bench_dedup.py --crossover`` (2 cores, benchmarks/README.md): the search costs 0.09-0.77 s on
#: healthy heads of 256-2048 prototypes whatever D, where the dense path costs 1-90 ms; on
#: collapsed heads the search wins from about 1024-2048 on, by at most 0.05 s there. At an
#: estimate of 0.05 s (K about 2048 at D = 256, 2900 at D = 64) the dense path's worst case
#: (a collapsed head, many pairs) still costs less than the search's worst case (a healthy one).
_SEARCH_FLOOR_SECONDS = 0.05


def group_labels(vectors: np.ndarray, thresholds: tuple[Threshold, ...], *, method: str,
                 block_size: int = 2048, tiles: SimilarityTiles | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 cluster: bool = True, path: str = "auto") -> list[np.ndarray]:
    """One (K,) canonical label array per threshold (same order as ``thresholds``).

    Args:
        vectors: (K, D) float32 unit rows.
        thresholds: the thresholds, any order.
        method: ``components`` or ``greedy``.
        block_size: tile size of the candidate search; results do not depend on it.
        tiles: similarity backend (float32 faiss or numpy on the host by default).
        progress: ``progress(done, total)`` after each tile row of each search.
        cluster: cover by balls first (True) or search all pairs of prototypes (False); results
            do not depend on it.
        path: ``auto``, ``dense`` or ``search`` (see :data:`PATHS`); results do not depend on it.
    """
    num = vectors.shape[0]
    if choose_path(vectors.shape, len(thresholds), path) == "dense":
        if progress is not None:
            progress(0, 1)
        labels = dense_labels(vectors, thresholds, method=method)
        if progress is not None:
            progress(1, 1)
        return labels
    tiles = tiles or default_tiles(vectors)
    norm_range = squared_norm_range(vectors)
    order = sorted(range(len(thresholds)), key=lambda k: thresholds[k].cosine, reverse=True)
    bands = [DistanceBand.for_cosine(thresholds[k].cosine, norm_range) for k in order]
    projection = principal_projection(vectors, PROJECTION_DIM, norm_max=norm_range[1])

    clock = time.process_time()
    covers: list[Nodes] = []
    nodes = singletons(num)
    for band in bands:
        if cluster:
            limit = band.sure if method == "components" else band.sure / 2.0
            # Two shifted grids: a group cut by a cell border in one is whole in the other.
            # When the first merges nothing (a healthy head) the second would hardly do better.
            for seed in (0, 1):
                merged = grid_merge(vectors, projection.coords, nodes, limit, seed=seed)
                if merged is nodes:
                    break
                nodes = merged
            nodes = merge_nodes(vectors, projection.coords, nodes, limit, block_size=_MERGE_BLOCK)
        covers.append(nodes)
    runs = _runs(covers)
    log.debug("dedup: covers %s built in %.3f s", [c.count for c in covers], time.process_time() - clock)
    # Loosest run first: a full search over its (fewest) balls; every finer run only compares
    # balls inside one coarse ball or across a coarse candidate pair.
    coarsest = covers[runs[-1][0]]
    total = -(-coarsest.count // block_size) + len(runs) - 1
    if progress is not None:
        progress(0, total)

    def report(finished: int) -> None:
        if progress is not None:
            progress(finished, total)

    out: list[np.ndarray | None] = [None] * len(thresholds)
    coarse_nodes: Nodes | None = None
    coarse_pairs = None
    done = total - len(runs) + 1
    for run in reversed(runs):
        nodes = covers[run[0]]
        never = max(bands[k].never for k in run)
        log.debug("dedup: %d balls for %d prototypes, search at distance %.4g", nodes.count, num, never)
        if coarse_nodes is None:
            pairs = find_node_pairs(vectors, nodes, never, norm_range[0], tiles=tiles,
                                    projection=projection, tile_size=block_size, progress=report)
        else:
            parent = coarse_nodes.node_of[nodes.rep]
            pairs = find_nested_pairs(vectors, nodes, parent, coarse_pairs, never, norm_range[0],
                                      tiles=tiles, tile_size=block_size)
            done += 1
            report(done)
        log.debug("dedup: %d candidate ball pairs at %.3f s", pairs.a.size, time.process_time() - clock)
        coarse_nodes, coarse_pairs = nodes, pairs
        members = nodes.members() if method == "components" else None
        for k in run:
            if method == "components":
                labels = component_labels(vectors, nodes, pairs, bands[k], members)
            else:
                labels = greedy_labels(vectors, nodes, pairs, bands[k])
            out[order[k]] = labels
    return [labels for labels in out if labels is not None]


def choose_path(shape: tuple[int, int], num_thresholds: int, path: str = "auto") -> str:
    """``dense`` or ``search`` for a (K, D) head: the given one, or by estimated cost.

    The dense path's cost is K^2 D (:func:`.dense.dense_seconds`); the search costs at least its
    fixed overhead whatever the head, and often far less than K^2 D above it (collapsed heads,
    small eps), so the dense path is taken only where it costs less than that overhead.
    """
    if path not in PATHS:
        raise fail("path", expected=" or ".join(repr(p) for p in PATHS), got=repr(path))
    if path != "auto":
        return path
    num, dim = shape
    return "dense" if dense_seconds(num, dim, num_thresholds) < _SEARCH_FLOOR_SECONDS else "search"


def _runs(covers: list[Nodes]) -> list[list[int]]:
    """Consecutive indices whose covers are the same object."""
    runs: list[list[int]] = []
    for k, nodes in enumerate(covers):
        if runs and covers[runs[-1][-1]] is nodes:
            runs[-1].append(k)
        else:
            runs.append([k])
    return runs
