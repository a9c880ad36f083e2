"""A distance-shrinking projection onto the top principal directions, and its error bound.

For an orthonormal basis V (D, m) and unit rows a, b:
``a . b = (V^T a) . (V^T b) + r_a . r_b <= (V^T a) . (V^T b) + |r_a| |r_b|`` where r is the part
of a row outside span(V) (Cauchy-Schwarz). A cheap m-dimensional product plus the residual norms
therefore bounds every cosine from above, so it can rule pairs out and never drops a true pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .decide import similarity_margin

__all__ = ["Projection", "principal_projection"]

#: Rows used to estimate the second-moment matrix (any orthonormal basis keeps the bound valid).
_SAMPLE_ROWS = 4096
#: Up to this many rows the projection is the identity.
_EXACT_ROWS = 4096


@dataclass(frozen=True, eq=False)
class Projection:
    """Projected rows and residual norms of a (K, D) matrix.

    Attributes:
        coords: (K, m) float32, the rows in the top-m principal basis.
        residual: (K,) float32, an upper bound on each row's norm outside that basis.
        margin: what to subtract from a bound ``coords_a . coords_b + residual_a * residual_b``
            so float32 rounding (basis, projection, product) cannot make it fall below the cosine.
    """

    coords: np.ndarray
    residual: np.ndarray
    margin: float

    @cached_property
    def augmented(self) -> np.ndarray:
        """(K, m + 1) float32 ``[coords, residual]``: one product gives the whole upper bound."""
        return np.ascontiguousarray(np.concatenate([self.coords, self.residual[:, None]], axis=1))


def principal_projection(vectors: np.ndarray, dim: int, *, norm_max: float = 1.0 + 1e-5,
                         seed: int = 0, chunk: int = 8192) -> Projection:
    """Project (K, D) float32 rows onto their top ``dim`` uncentred principal directions.

    ``norm_max`` bounds every row's squared norm.
    """
    num, full_dim = vectors.shape
    dim = max(1, min(dim, full_dim))
    if num <= _EXACT_ROWS:
        # Small heads: the identity basis (nothing to gain from a projection, nothing to factor).
        coords = np.array(vectors, dtype=np.float32, order="C")
        residual = np.full(num, np.sqrt(1e-5), dtype=np.float32)
        return Projection(coords=coords, residual=residual, margin=2.0 * similarity_margin(full_dim))
    if num > _SAMPLE_ROWS:
        rows = np.random.default_rng(seed).choice(num, _SAMPLE_ROWS, replace=False)
        sample = vectors[np.sort(rows)].astype(np.float64)
    else:
        sample = vectors.astype(np.float64)
    _, eigvec = _eigh(sample.T @ sample)
    basis = np.ascontiguousarray(eigvec[:, ::-1][:, :dim]).astype(np.float32)
    coords = np.empty((num, dim), dtype=np.float32)
    residual = np.empty(num, dtype=np.float32)
    for start in range(0, num, chunk):
        proj = vectors[start:start + chunk] @ basis
        coords[start:start + chunk] = proj
        kept = np.einsum("ij,ij->i", proj, proj)
        # Rows have squared norm <= norm_max; 1e-5 inside the root absorbs the float32 error
        # of `kept` (the bound only loosens).
        residual[start:start + chunk] = np.sqrt(np.maximum(norm_max - kept, 0.0) + 1e-5)
    margin = similarity_margin(full_dim) + similarity_margin(dim) + 1e-5
    return Projection(coords=coords, residual=residual, margin=margin)


def _eigh(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric eigendecomposition on one BLAS thread (a small matrix: threads only contend)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return np.linalg.eigh(matrix)
    with threadpool_limits(limits=1):
        return np.linalg.eigh(matrix)
