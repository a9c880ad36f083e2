"""Blocked nearest-prototype assignment: argmax cosine without ever holding an N x K matrix.

The work is tiled over samples *and* prototypes: a (sample block x prototype block) score tile
is the only large temporary, so memory stays bounded by ``block_size * prototype_block_size``
floats whatever N and K are (1M samples x 65536 prototypes runs in about 64 MiB of scores).

The tiles are scored by numpy on the CPU or by torch on a GPU (``device``; see ``tiles.py``).

Ties go to the lowest prototype index. Within a tile ``argmax`` returns the first maximum;
across tiles a later tile replaces the running best only when strictly greater. Prototype rows
that are bit-for-bit identical (exact copies, common in collapsed heads) are scored once and
the lowest index of each copy set is reported, so exact ties never depend on how BLAS rounds
different tile shapes. Two *different* rows within float32 rounding of each other for a sample
(near-exact copies, e.g. weight-norm rows that differ in the last bit after normalisation) are
decided by the float32 scores and either may win; they are duplicates at any useful eps, so the
merged (per duplicate group) statistics do not depend on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from ..validation import describe, fail
from .tiles import resolve_device, tiles_for

__all__ = ["assign", "normalise_rows", "DEFAULT_BLOCK_SIZE", "DEFAULT_PROTOTYPE_BLOCK_SIZE",
           "Progress", "Embed"]

log = logging.getLogger(__name__)

#: Samples per tile.
DEFAULT_BLOCK_SIZE: int = 4096
#: Prototypes per tile. With the sample block: a 4096 x 4096 float32 tile, 64 MiB.
DEFAULT_PROTOTYPE_BLOCK_SIZE: int = 4096

#: ``progress(samples_done, num_samples)`` after each block of samples.
Progress = Callable[[int, int], None]
#: Maps a (b, d) block of raw features to (b, D) embeddings (e.g. a head MLP).
Embed = Callable[[np.ndarray], np.ndarray]


def normalise_rows(block: np.ndarray, *, what: str = "embeddings", offset: int = 0) -> np.ndarray:
    """(b, D) -> (b, D) float32 unit rows. Zero or non-finite rows are an InputError naming
    their sample indices (``offset`` is the block's first sample)."""
    block = np.asarray(block, dtype=np.float32)
    norms = np.linalg.norm(block, axis=1)
    bad = ~(np.isfinite(norms) & (norms > 0))
    if bad.any():
        first = (np.flatnonzero(bad)[:5] + offset).tolist()
        raise fail(what, expected="finite, non-zero rows", got=f"{int(bad.sum())} zero or non-finite rows "
                   f"in samples {offset}-{offset + block.shape[0] - 1} (first: {first})",
                   hint="Remove empty or diverged samples before measuring usage.")
    return block / norms[:, None]


def _check_block_size(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise fail(what, expected="a positive integer", got=repr(value))
    return int(value)


def _distinct_rows(prototypes: np.ndarray, *, chunk: int = 4096) -> np.ndarray:
    """(K',) ascending indices of the first (lowest) row of every set of bit-identical rows.

    Rows are hashed exactly (their float32 bits times fixed odd 64-bit weights, summed modulo
    2^64) one chunk at a time, and a row is dropped only when its bits equal those of the first
    row with the same hash, so memory stays at a few MiB beyond the (K,) arrays.
    """
    rows = np.ascontiguousarray(prototypes, dtype=np.float32)
    num, dim = rows.shape
    bits = rows.view(np.uint32)
    weights = np.random.default_rng(0).integers(1, 2**63, size=dim, dtype=np.uint64) | np.uint64(1)
    hashes = np.empty(num, dtype=np.uint64)
    for start in range(0, num, chunk):
        # uint64 products and sums wrap modulo 2^64: exact, so equal rows hash equally.
        hashes[start:start + chunk] = (bits[start:start + chunk].astype(np.uint64) * weights).sum(
            axis=1, dtype=np.uint64)
    _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    owner = first[inverse.reshape(-1)]
    keep = owner == np.arange(num)
    for start in range(0, num, chunk):
        stop = min(start + chunk, num)
        same = (bits[start:stop] == bits[owner[start:stop]]).all(axis=1)
        keep[start:stop] |= ~same  # a hash collision between different rows: keep both
    return np.flatnonzero(keep)


def assign(
    prototypes: np.ndarray,
    embeddings: np.ndarray,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    prototype_block_size: int = DEFAULT_PROTOTYPE_BLOCK_SIZE,
    embed: Embed | None = None,
    progress: Progress | None = None,
    device: str = "cpu",
) -> np.ndarray:
    """Assign every sample to its most similar prototype (cosine).

    Args:
        prototypes: (K, D) float32 unit rows.
        embeddings: (N, d) array, possibly memory-mapped; read one block of ``block_size`` rows
            at a time. Rows are L2-normalised here (after ``embed`` when given).
        block_size: samples per tile.
        prototype_block_size: prototypes per tile.
        embed: optional map from a (b, d) block of raw rows to (b, D) embeddings.
        progress: called as ``progress(samples_done, N)`` after each block of samples.
        device: ``cpu`` (numpy), ``cuda`` (torch on the GPU, float32 without TF32) or ``auto``.

    Returns:
        (N,) int64 prototype index of each sample (ties: lowest index).
    """
    block_size = _check_block_size(block_size, "block_size")
    prototype_block_size = _check_block_size(prototype_block_size, "prototype_block_size")
    if getattr(embeddings, "ndim", None) != 2:
        raise fail("embeddings", expected="a 2-D array of shape (N, D)", got=describe(embeddings))
    num_samples = int(embeddings.shape[0])
    if num_samples < 1:
        raise fail("embeddings", expected="at least one sample", got="N = 0")
    keep = _distinct_rows(prototypes)
    distinct = prototypes if keep.size == prototypes.shape[0] else prototypes[keep]
    resolved = resolve_device(device)
    tiles = tiles_for(distinct, resolved)
    dim = int(prototypes.shape[1])
    log.debug("assign: N=%d K=%d (distinct %d) D=%d tiles %dx%d on %s", num_samples, prototypes.shape[0],
              distinct.shape[0], dim, block_size, prototype_block_size, resolved)
    out = np.empty(num_samples, dtype=np.int64)
    for start in range(0, num_samples, block_size):
        raw = np.asarray(embeddings[start:start + block_size])
        block = normalise_rows(embed(raw) if embed is not None else raw, offset=start)
        if block.shape[1] != dim:
            raise fail("embeddings", expected=f"dimension {dim} (the prototypes' D)",
                       got=f"dimension {block.shape[1]}")
        best_idx = tiles.best(block, prototype_block_size)
        out[start:start + block.shape[0]] = keep[best_idx]
        if progress is not None:
            progress(start + block.shape[0], num_samples)
    return out
