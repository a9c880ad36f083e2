"""``data_usage``: which prototypes a set of embeddings actually uses."""

from __future__ import annotations

import logging

import numpy as np

from ..dedup import deduplicate
from ..thresholds import GATE_EPS
from ..types import PrototypeSet
from ..validation import describe, fail
from .assign import (DEFAULT_BLOCK_SIZE, DEFAULT_PROTOTYPE_BLOCK_SIZE, Embed, Progress, assign)
from .report import UsageReport
from .shards import all_reduce_counts, shard_from_env
from .stats import TOP_GROUPS, summarise
from .tiles import resolve_device

__all__ = ["data_usage", "as_prototype_set"]

log = logging.getLogger(__name__)


def as_prototype_set(prototypes: PrototypeSet | np.ndarray) -> PrototypeSet:
    """A PrototypeSet as is; a raw (K, D) array (or tensor) validated and normalised."""
    if isinstance(prototypes, PrototypeSet):
        return prototypes
    return PrototypeSet.from_array(prototypes)


def data_usage(
    prototypes: PrototypeSet | np.ndarray,
    embeddings: np.ndarray,
    *,
    eps: float = GATE_EPS,
    method: str = "components",
    block_size: int = DEFAULT_BLOCK_SIZE,
    prototype_block_size: int = DEFAULT_PROTOTYPE_BLOCK_SIZE,
    embed: Embed | None = None,
    progress: Progress | None = None,
    top: int = TOP_GROUPS,
    space: str | None = None,
    device: str = "cpu",
) -> UsageReport:
    """Assign each sample to its most similar prototype and summarise the usage.

    Args:
        prototypes: a PrototypeSet, or (K, D) prototype rows (any norm; normalised here).
        embeddings: (N, D) bottleneck-space embeddings, any norm (normalised here), possibly a
            ``np.load(..., mmap_mode="r")`` memory map: only one block is read at a time.
            With ``embed``, (N, d) raw features that ``embed`` maps to (b, D) block by block.
        eps: distance threshold of the duplicate groups the merged statistics use.
        method: duplicate grouping method, ``components`` or ``greedy``.
        block_size, prototype_block_size: tile shape; peak memory is about
            ``block_size * prototype_block_size * 4`` bytes plus the (N,) assignment.
        embed: optional map from a (b, d) block of raw features to (b, D) embeddings.
        progress: ``progress(samples_done, N)`` after each block of samples.
        top: how many most-used groups to list.
        space: recorded in the report (``bottleneck`` or ``backbone``).
        device: where the tiles are scored: ``cpu`` (numpy), ``cuda`` (torch, float32 without
            TF32) or ``auto`` (the GPU when torch sees one).

    Under ``torchrun`` each process scores its shard of the samples and the counts are summed
    over processes (:mod:`.shards`): every rank returns the report one process would.

    Returns:
        UsageReport with ``source="data"``. Assignment is argmax cosine; ties go to the lowest
        prototype index.
    """
    protos = as_prototype_set(prototypes)
    if getattr(embeddings, "ndim", None) != 2:
        raise fail("embeddings", expected="a 2-D array of shape (N, D)", got=describe(embeddings))
    if embed is None and embeddings.shape[1] != protos.dim:
        raise fail("embeddings", expected=f"dimension {protos.dim} (the prototypes' D)",
                   got=f"dimension {embeddings.shape[1]}",
                   hint="Pass bottleneck embeddings, or map backbone features through the head.")
    dedup = deduplicate(protos, eps=eps, method=method)
    num_samples = int(embeddings.shape[0])
    shard = shard_from_env(resolve_device(device))
    start, stop = shard.bounds(num_samples)
    counts = np.zeros(protos.num_prototypes, dtype=np.int64)
    if stop > start or not shard.active:
        labels = assign(protos.vectors, embeddings[start:stop], block_size=block_size,
                        prototype_block_size=prototype_block_size, embed=embed, progress=progress,
                        device=device)
        counts += np.bincount(labels, minlength=protos.num_prototypes)
    counts = all_reduce_counts(counts, shard)
    log.info("usage: %d samples on %d prototypes, %d used", num_samples, protos.num_prototypes,
             int(np.count_nonzero(counts)))
    return summarise(counts / num_samples, dedup, source="data", counts=counts,
                     num_samples=num_samples, head=protos.name, space=space, top=top)
