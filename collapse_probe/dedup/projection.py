"""A distance-shrinking projection onto the top principal directions, and its error bound.

For an orthonormal basis V (D, m) and rows a, b:
``a . b = (V^T a) . (V^T b) + r_a . r_b <= (V^T a) . (V^T b) + |r_a| |r_b|`` where r is the part
of a row outside span(V) (Cauchy-Schwarz). A cheap m-dimensional product plus the residual norms
therefore bounds every cosine from above, so it can rule pairs out and never drops a true pair.
On a healthy head the residual product alone stays far below a large threshold once m is about a
third of D (random directions spread their energy evenly), and far fewer dimensions suffice for
small thresholds or collapsed heads, whose energy sits in few directions.

Projections are computed in float64 from the float32 rows (the basis is orthonormal to 1e-15),
then rounded to float32 for the products; :attr:`BoundFactors.margin` covers that rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .decide import similarity_margin
from .lowp import LowPrecisionRows

__all__ = ["Projection", "BoundFactors", "principal_projection"]

#: Rows used to estimate the second-moment matrix (any orthonormal basis keeps the bound valid).
_SAMPLE_ROWS = 4096
#: Up to this many rows the basis is the identity (nothing to gain from factoring).
_EXACT_ROWS = 4096
#: Most principal directions a bound may use.
MAX_BOUND_DIM = 128


@dataclass(frozen=True, eq=False)
class BoundFactors:
    """Rows ``[V^T a, |r_a|]`` (float32) whose products bound the cosines from above.

    ``bound(a, b) = rows_a . rows_b >= cos(a, b) - margin`` for every pair; with ``low`` (the
    rows in bfloat16, :mod:`.lowp`) the products are taken there and the margin covers it.
    """

    rows: np.ndarray
    margin: float
    low: LowPrecisionRows | None = None


@dataclass(frozen=True, eq=False)
class Projection:
    """A principal basis of a (K, D) matrix and the rows' first coordinates in it.

    Attributes:
        vectors: (K, D) float32 rows.
        basis: (D, M) float64 orthonormal columns, most energetic first.
        coords: (K, m) float32, the rows' first m coordinates (clustering, tile order).
        norm_max: an upper bound on the rows' squared norms.
        margin: how far a float32 coordinate difference may exceed the true one.
    """

    vectors: np.ndarray
    basis: np.ndarray
    coords: np.ndarray
    norm_max: float
    margin: float

    def bound_factors(self, rows: np.ndarray, dim: int, *, chunk: int = 8192,
                      precision: str = "float32") -> BoundFactors:
        """:class:`BoundFactors` of ``vectors[rows]`` with the first ``dim`` directions.

        ``precision``: ``float32`` (numpy products) or ``bfloat16`` (:mod:`.lowp`).
        """
        dim = max(1, min(dim, self.basis.shape[1]))
        basis = self.basis[:, :dim]
        out = np.empty((rows.size, dim + 1), dtype=np.float32)
        for start in range(0, rows.size, chunk):
            proj = self.vectors[rows[start:start + chunk]].astype(np.float64) @ basis
            kept = np.einsum("ij,ij->i", proj, proj)
            residual = np.sqrt(np.maximum(self.norm_max - kept, 0.0) + 1e-12)
            out[start:start + chunk, :dim] = proj
            # Round the residual up, so float32 storage never shrinks the bound.
            out[start:start + chunk, dim] = np.nextafter(residual.astype(np.float32), np.float32(np.inf))
        if precision == "bfloat16":
            return BoundFactors(rows=out, margin=similarity_margin(dim + 1, "bfloat16") + 1e-5,
                                low=LowPrecisionRows(out))
        return BoundFactors(rows=out, margin=similarity_margin(dim + 1) + 1e-5)


def principal_projection(vectors: np.ndarray, dim: int, *, norm_max: float = 1.0 + 1e-5,
                         seed: int = 0, chunk: int = 8192) -> Projection:
    """Principal basis of (K, D) float32 rows (uncentred) and their first ``dim`` coordinates.

    ``norm_max`` bounds every row's squared norm.
    """
    num, full_dim = vectors.shape
    dim = max(1, min(dim, full_dim))
    if num <= _EXACT_ROWS:
        basis = np.eye(full_dim)[:, :MAX_BOUND_DIM]
    else:
        rows = np.random.default_rng(seed).choice(num, min(num, _SAMPLE_ROWS), replace=False)
        sample = vectors[np.sort(rows)].astype(np.float64)
        _, eigvec = _eigh(sample.T @ sample)
        basis = np.ascontiguousarray(eigvec[:, ::-1][:, :MAX_BOUND_DIM])
    coords = np.empty((num, dim), dtype=np.float32)
    for start in range(0, num, chunk):
        coords[start:start + chunk] = vectors[start:start + chunk].astype(np.float64) @ basis[:, :dim]
    # Coordinates are float64 projections rounded once to float32.
    margin = 4.0 * 2.0 ** -24 + 1e-9
    return Projection(vectors=vectors, basis=basis, coords=coords, norm_max=norm_max, margin=margin)


def _eigh(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric eigendecomposition on one BLAS thread (a small matrix: threads only contend)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return np.linalg.eigh(matrix)
    with threadpool_limits(limits=1):
        return np.linalg.eigh(matrix)
