"""Public entry points: :func:`deduplicate` for one threshold, :func:`sweep` for many."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np

from ..thresholds import resolve_thresholds
from ..types import METHODS, DedupResult, PrototypeSet
from ..validation import fail
from .engine import group_labels

__all__ = ["deduplicate", "sweep"]

log = logging.getLogger(__name__)


def _unit_rows(vectors: np.ndarray | PrototypeSet) -> np.ndarray:
    if isinstance(vectors, PrototypeSet):
        return vectors.vectors
    return PrototypeSet.from_array(vectors).vectors


def sweep(
    vectors: np.ndarray | PrototypeSet,
    *,
    eps: float | Iterable[float] | None = None,
    cosine: float | Iterable[float] | None = None,
    method: str = "components",
) -> tuple[DedupResult, ...]:
    """Group duplicate prototypes at every threshold in one pass.

    Args:
        vectors: (K, D) prototypes (any norm; rows are L2-normalised here) or a PrototypeSet.
        eps: distance threshold(s); duplicates when ``||a - b|| < eps`` on unit vectors.
        cosine: cosine threshold(s); duplicates when ``cos(a, b) > cosine``.
            With neither, the default sweep (0.025, 0.05, 0.1, 0.25, 0.5).
        method: ``components`` (single linkage, order-free) or ``greedy`` (eps-net in index order).

    Returns:
        One DedupResult per threshold, ascending eps.
    """
    if method not in METHODS:
        raise fail("method", expected=" or ".join(repr(m) for m in METHODS), got=repr(method))
    unit = _unit_rows(vectors)
    thresholds = resolve_thresholds(eps, cosine)
    log.debug("dedup: K=%d D=%d thresholds=%s method=%s", *unit.shape, thresholds, method)
    labels = group_labels(unit, thresholds, method=method)
    return tuple(DedupResult(eps=t.eps, cosine=t.cosine, method=method, labels=lab)
                 for t, lab in zip(thresholds, labels))


def deduplicate(
    vectors: np.ndarray | PrototypeSet,
    *,
    eps: float | None = None,
    cosine: float | None = None,
    method: str = "components",
) -> DedupResult:
    """Group duplicate prototypes at one threshold: give exactly one of ``eps`` or ``cosine``."""
    if (eps is None) == (cosine is None):
        raise fail("threshold", expected="exactly one of eps or cosine",
                   got=f"eps={eps!r}, cosine={cosine!r}")
    return sweep(vectors, eps=eps, cosine=cosine, method=method)[0]
