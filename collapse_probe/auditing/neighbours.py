"""Nearest-neighbour cosine similarity of every prototype, and its law for random unit vectors.

The verdicts and the similarity histogram both look at the same number: for each prototype k,
``max_{j != k} cos(w_k, w_j)``. Duplicates sit at 1; random directions (an untrained head: DINO
initialises its last layer with an isotropic truncated normal) sit where the maximum of K - 1
random cosines falls, which has a closed form (:func:`random_nn_cdf`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..types import PrototypeSet

__all__ = ["NeighbourSimilarity", "nearest_neighbour_similarity", "random_nn_cdf", "random_nn_pdf",
           "MAX_EXACT", "NUM_ANCHORS"]

log = logging.getLogger(__name__)

#: Up to this many prototypes every prototype is an anchor (exact, K x K in blocks).
MAX_EXACT: int = 4096
#: Beyond MAX_EXACT, this many anchors drawn without replacement (fixed seed) are searched against
#: all K prototypes. Each anchor's similarity is still exact; only the set of anchors is a sample.
NUM_ANCHORS: int = 1024


@dataclass(frozen=True, eq=False)
class NeighbourSimilarity:
    """Nearest-neighbour cosine similarities of (a sample of) the prototypes of one head.

    Attributes:
        similarities: (n,) float64 in [-1, 1]: each anchor's largest cosine to another prototype.
        anchors: (n,) int64, the prototype index of each anchor (ascending).
        num_prototypes: K, the number of prototypes searched against.
        dim: D.
        exact: True when every prototype is an anchor (n == K).
        seed: the seed the anchors were drawn with (unused when exact).
    """

    similarities: np.ndarray
    anchors: np.ndarray
    num_prototypes: int
    dim: int
    exact: bool
    seed: int

    @property
    def num_anchors(self) -> int:
        return int(self.similarities.shape[0])


def nearest_neighbour_similarity(
    vectors: np.ndarray | PrototypeSet,
    *,
    max_exact: int = MAX_EXACT,
    num_anchors: int = NUM_ANCHORS,
    seed: int = 0,
    block_size: int = 4096,
) -> NeighbourSimilarity:
    """Each prototype's cosine similarity to its nearest other prototype.

    Args:
        vectors: (K, D) unit rows, or a PrototypeSet.
        max_exact: up to this K, every prototype is an anchor.
        num_anchors: beyond ``max_exact``, the number of anchors sampled (seeded) from the K.
        seed: seed of the anchor sample.
        block_size: anchors searched per faiss call (bounds the memory of one call).

    Returns:
        NeighbourSimilarity. The search is exact (faiss ``IndexFlatIP``, k = 2: the anchor itself
        and its nearest other prototype) for every anchor.
    """
    import faiss

    unit = vectors.vectors if isinstance(vectors, PrototypeSet) else np.asarray(vectors)
    unit = np.ascontiguousarray(unit, dtype=np.float32)
    num, dim = unit.shape
    exact = num <= max_exact
    if exact:
        anchors = np.arange(num, dtype=np.int64)
    else:
        rng = np.random.default_rng(seed)
        anchors = np.sort(rng.choice(num, size=min(num_anchors, num), replace=False)).astype(np.int64)
    index = faiss.IndexFlatIP(dim)
    index.add(unit)
    out = np.empty(anchors.shape[0], dtype=np.float64)
    for start in range(0, anchors.shape[0], block_size):
        idx = anchors[start:start + block_size]
        sims, ids = index.search(unit[idx], 2)
        # With exact duplicates the anchor may come second: then the first hit is a copy,
        # whose similarity (about 1) is the answer anyway.
        out[start:start + idx.shape[0]] = np.where(ids[:, 0] == idx, sims[:, 1], sims[:, 0])
    np.clip(out, -1.0, 1.0, out=out)
    log.debug("nearest neighbours: K=%d D=%d anchors=%d exact=%s", num, dim, anchors.size, exact)
    return NeighbourSimilarity(similarities=out, anchors=anchors, num_prototypes=int(num),
                               dim=int(dim), exact=exact, seed=seed)


def _cosine_sf(x: np.ndarray, dim: int) -> np.ndarray:
    """P(cos > x) for two independent uniform unit vectors in ``dim`` >= 2 dimensions."""
    # scipy.special, not scipy.stats: the same function at a fraction of the import time.
    from scipy.special import betainc

    half = (dim - 1) / 2.0
    # (1 + cos) / 2 ~ Beta((D-1)/2, (D-1)/2); by symmetry its sf at u is the cdf at 1 - u.
    x = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    return betainc(half, half, (1.0 - x) / 2.0)


def random_nn_cdf(x: np.ndarray | float, *, num_prototypes: int, dim: int) -> np.ndarray:
    """CDF of the nearest-neighbour cosine of one of K uniform random unit vectors in D dims.

    Given the anchor, its cosines to the other K - 1 vectors are independent, so
    ``P(max <= x) = F(x) ** (K - 1)`` with F the cosine CDF of two random unit vectors
    (``(1 + cos) / 2 ~ Beta((D-1)/2, (D-1)/2)``). Needs D >= 2.
    """
    sf = _cosine_sf(x, dim)
    with np.errstate(divide="ignore"):
        return np.exp((num_prototypes - 1) * np.log1p(-sf))


def random_nn_pdf(x: np.ndarray | float, *, num_prototypes: int, dim: int) -> np.ndarray:
    """Density of :func:`random_nn_cdf` (for plotting the reference curve)."""
    x = np.asarray(x, dtype=np.float64)
    half = (dim - 1) / 2.0
    u = (x + 1.0) / 2.0
    cdf_one = 1.0 - _cosine_sf(x, dim)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_pdf = (np.log(num_prototypes - 1.0) + (num_prototypes - 2) * np.log(cdf_one)
                   + _beta_logpdf(u, half) - np.log(2.0))
    return np.nan_to_num(np.exp(log_pdf), nan=0.0)


def _beta_logpdf(u: np.ndarray, half: float) -> np.ndarray:
    """log density of Beta(half, half) at u in [0, 1] (-inf outside)."""
    from scipy.special import betaln, xlogy

    with np.errstate(divide="ignore", invalid="ignore"):
        out = xlogy(half - 1.0, u) + xlogy(half - 1.0, 1.0 - u) - betaln(half, half)
    return np.where((u >= 0.0) & (u <= 1.0), out, -np.inf)
