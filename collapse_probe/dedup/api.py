"""Public entry points: :func:`deduplicate` for one threshold, :func:`sweep` for many."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import numpy as np

from ..thresholds import resolve_thresholds
from ..types import METHODS, DedupResult, PrototypeSet
from ..validation import as_prototype_matrix, fail
from .engine import group_labels
from .search import SimilarityTiles

__all__ = ["deduplicate", "sweep", "DEVICES"]

log = logging.getLogger(__name__)

#: Where the candidate search runs: ``cpu`` (float32 BLAS), ``cuda`` (torch, low precision with a
#: safe margin), ``auto`` (cuda when torch sees a GPU, else cpu). Labels never depend on it.
DEVICES: tuple[str, ...] = ("cpu", "cuda", "auto")


def _unit_rows(vectors: np.ndarray | PrototypeSet, *, chunk: int = 8192) -> np.ndarray:
    """(K, D) float32 unit rows, bit for bit as :meth:`PrototypeSet.from_array` makes them.

    Row by row in chunks, so a 1M x 256 head never needs a 2 GiB float64 copy.
    """
    if isinstance(vectors, PrototypeSet):
        return vectors.vectors
    matrix = as_prototype_matrix(vectors)
    unit = np.empty_like(matrix)
    for start in range(0, matrix.shape[0], chunk):
        block = matrix[start:start + chunk]
        norms = np.linalg.norm(block.astype(np.float64), axis=1)
        unit[start:start + chunk] = (block / norms[:, None]).astype(np.float32)
    return unit


def _tiles_for(device: str, unit: np.ndarray) -> SimilarityTiles | None:
    if device not in DEVICES:
        raise fail("device", expected=" or ".join(repr(d) for d in DEVICES), got=repr(device))
    if device == "cpu":
        return None
    from .torch_backend import TorchTiles, cuda_available

    if device == "auto":
        return TorchTiles(unit, device="cuda") if cuda_available() else None
    if not cuda_available():
        raise fail("device", expected="a CUDA GPU visible to torch", got="none",
                   hint="Use device='cpu' or device='auto'.")
    return TorchTiles(unit, device="cuda")


def sweep(
    vectors: np.ndarray | PrototypeSet,
    *,
    eps: float | Iterable[float] | None = None,
    cosine: float | Iterable[float] | None = None,
    method: str = "components",
    device: str = "cpu",
    block_size: int = 2048,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[DedupResult, ...]:
    """Group duplicate prototypes at every threshold in one pass.

    Args:
        vectors: (K, D) prototypes (any norm; rows are L2-normalised here) or a PrototypeSet.
        eps: distance threshold(s); duplicates when ``||a - b|| < eps`` on unit vectors.
        cosine: cosine threshold(s); duplicates when ``cos(a, b) > cosine``.
            With neither, the default sweep (0.025, 0.05, 0.1, 0.25, 0.5).
        method: ``components`` (single linkage, order-free) or ``greedy`` (eps-net in index order).
        device: ``cpu``, ``cuda`` or ``auto``: where the candidate search runs. Every device gives
            the same labels (candidates are decided exactly in float64 on the host).
        block_size: tile size of the search (memory ~ block_size^2 floats); labels do not depend on it.
        progress: called as ``progress(done, total)`` while the search runs.

    Returns:
        One DedupResult per threshold, ascending eps.
    """
    if method not in METHODS:
        raise fail("method", expected=" or ".join(repr(m) for m in METHODS), got=repr(method))
    if not isinstance(block_size, int) or block_size < 16:
        raise fail("block_size", expected="an integer >= 16", got=repr(block_size))
    unit = _unit_rows(vectors)
    thresholds = resolve_thresholds(eps, cosine)
    tiles = _tiles_for(device, unit)
    log.debug("dedup: K=%d D=%d thresholds=%s method=%s device=%s", *unit.shape, thresholds,
              method, device)
    labels = group_labels(unit, thresholds, method=method, block_size=block_size, tiles=tiles,
                          progress=progress)
    return tuple(DedupResult(eps=t.eps, cosine=t.cosine, method=method, labels=lab)
                 for t, lab in zip(thresholds, labels))


def deduplicate(
    vectors: np.ndarray | PrototypeSet,
    *,
    eps: float | None = None,
    cosine: float | None = None,
    method: str = "components",
    device: str = "cpu",
    block_size: int = 2048,
    progress: Callable[[int, int], None] | None = None,
) -> DedupResult:
    """Group duplicate prototypes at one threshold: give exactly one of ``eps`` or ``cosine``.

    Keyword options as for :func:`sweep`.
    """
    if (eps is None) == (cosine is None):
        raise fail("threshold", expected="exactly one of eps or cosine",
                   got=f"eps={eps!r}, cosine={cosine!r}")
    return sweep(vectors, eps=eps, cosine=cosine, method=method, device=device,
                 block_size=block_size, progress=progress)[0]
