"""The one exact duplicate decision every engine defers to.

Two prototypes are duplicates when the cosine of their float32 unit vectors, accumulated in
float64, is strictly greater than the threshold's cosine. Fast passes (float32 or lower) only
*propose* candidate pairs with a safety margin; this function decides them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["exact_cosines", "CANDIDATE_MARGIN"]

#: How far below the threshold a float32 similarity may sit and still be checked exactly.
#: float32 dot products of unit vectors in D <= 4096 err by well under 1e-5.
CANDIDATE_MARGIN: float = 1e-4


def exact_cosines(vectors: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Cosines of the pairs (rows[i], cols[i]) in float64. vectors: (K, D) float32 unit rows."""
    a = vectors[rows].astype(np.float64)
    b = vectors[cols].astype(np.float64)
    return np.einsum("ij,ij->i", a, b)
