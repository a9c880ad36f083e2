"""The one exact duplicate decision every engine defers to, and the error margins of fast passes.

Two prototypes are duplicates when the cosine of their float32 unit vectors, accumulated in
float64, is strictly greater than the threshold's cosine. Fast passes (float32 or lower) only
*propose* candidate pairs with a safety margin; the functions here decide them.

Geometric shortcuts (triangle inequality on clusters) work with Euclidean distances between the
float32 vectors, computed in float64. Rows are unit only up to float32 rounding, so a distance
``d`` decides a pair only outside a thin band around ``eps``: see :class:`DistanceBand`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["exact_cosines", "exact_distances", "row_distances", "similarity_margin", "DistanceBand",
           "squared_norm_range"]

#: Unit roundoff of the low-precision formats a candidate pass may use.
_UNIT_ROUNDOFF = {"float32": 2.0 ** -24, "tf32": 2.0 ** -11, "bfloat16": 2.0 ** -8, "float16": 2.0 ** -11}

#: Absolute slack on float64 distances (their own rounding is ~1e-16 relative).
_DISTANCE_SLACK: float = 1e-9


def similarity_margin(dim: int, precision: str = "float32") -> float:
    """A bound on |computed - exact| for the dot product of two unit rows of length ``dim``.

    Inputs rounded to ``precision`` err by at most ``2u`` of ``sum |a_k b_k| <= 1`` and a float32
    accumulation by ``dim * 2**-24`` (the worst-case bound, whatever the summation order);
    doubled for safety.
    """
    rounding = 0.0 if precision == "float32" else 2.0 * _UNIT_ROUNDOFF[precision]
    return 2.0 * (rounding + dim * 2.0 ** -24) + 1e-6


def exact_cosines(vectors: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Cosines of the pairs (rows[i], cols[i]) in float64. vectors: (K, D) float32 unit rows."""
    a = vectors[rows].astype(np.float64)
    b = vectors[cols].astype(np.float64)
    return np.einsum("ij,ij->i", a, b)


def exact_distances(vectors: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                    *, chunk: int = 8192) -> np.ndarray:
    """(n,) float64 Euclidean distances ||x_rows[i] - x_cols[i]|| of the float32 rows."""
    out = np.empty(rows.size, dtype=np.float64)
    for start in range(0, rows.size, chunk):
        stop = start + chunk
        diff = vectors[rows[start:stop]].astype(np.float64) - vectors[cols[start:stop]]
        out[start:stop] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return out


def row_distances(vectors: np.ndarray, rows: np.ndarray, point: int, *, chunk: int = 8192) -> np.ndarray:
    """(n,) float64 distances from ``vectors[point]`` to each of ``vectors[rows]``."""
    centre = vectors[point].astype(np.float64)
    out = np.empty(rows.size, dtype=np.float64)
    for start in range(0, rows.size, chunk):
        diff = vectors[rows[start:start + chunk]].astype(np.float64) - centre
        out[start:start + chunk] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return out


def squared_norm_range(vectors: np.ndarray, *, chunk: int = 8192) -> tuple[float, float]:
    """(min, max) of the float64 squared row norms: 1 up to float32 rounding."""
    low, high = np.inf, -np.inf
    for start in range(0, vectors.shape[0], chunk):
        block = vectors[start:start + chunk].astype(np.float64)
        sq = np.einsum("ij,ij->i", block, block)
        low, high = min(low, float(sq.min())), max(high, float(sq.max()))
    return low, high


@dataclass(frozen=True)
class DistanceBand:
    """What a float64 distance between two rows says about a threshold's exact decision.

    With squared norms in [nu_min, nu_max], ``cos = (|a|^2 + |b|^2 - d^2) / 2``: a distance below
    ``sure`` is a duplicate for certain, one above ``never`` is not; in between (a band of
    width ~1e-6 around eps) only :func:`exact_cosines` decides.
    """

    cosine: float
    sure: float
    never: float

    @classmethod
    def for_cosine(cls, cosine: float, norm_range: tuple[float, float]) -> DistanceBand:
        nu_min, nu_max = norm_range
        sure = np.sqrt(max(0.0, 2.0 * nu_min - 2.0 * cosine - 1e-12)) - _DISTANCE_SLACK
        never = np.sqrt(max(0.0, 2.0 * nu_max - 2.0 * cosine + 1e-12)) + _DISTANCE_SLACK
        return cls(cosine=cosine, sure=float(max(sure, 0.0)), never=float(never))
