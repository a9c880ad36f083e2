"""Usage statistics of a distribution over prototypes, plain and merged over duplicate groups."""

from __future__ import annotations

import numpy as np

from ..types import DedupResult
from .report import UsageGroup, UsageReport

__all__ = ["entropy_nats", "summarise", "MEMBERS_SHOWN", "TOP_GROUPS"]

#: How many member indices a UsageGroup carries (a sample of the group, ascending).
MEMBERS_SHOWN: int = 8
#: How many most-used groups a report lists by default.
TOP_GROUPS: int = 10


def entropy_nats(mass: np.ndarray) -> float:
    """Shannon entropy in nats of a distribution (1-D, non-negative, sums to 1); 0 log 0 = 0."""
    p = np.asarray(mass, dtype=np.float64)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _group(label: int, members_by_label: np.ndarray, starts: np.ndarray, sizes: np.ndarray,
           merged: np.ndarray) -> UsageGroup:
    members = members_by_label[starts[label]:starts[label] + min(int(sizes[label]), MEMBERS_SHOWN)]
    return UsageGroup(label=int(label), size=int(sizes[label]),
                      members=tuple(int(m) for m in members), share=float(merged[label]))


def summarise(
    mass: np.ndarray,
    dedup: DedupResult,
    *,
    source: str,
    counts: np.ndarray | None = None,
    num_samples: int | None = None,
    temperature: float | None = None,
    head: str = "prototypes",
    space: str | None = None,
    top: int = TOP_GROUPS,
) -> UsageReport:
    """Build a UsageReport from a (K,) distribution and the weight-space groups at one eps.

    Args:
        mass: (K,) float64 distribution over prototypes (sums to 1).
        dedup: duplicate groups of the same K prototypes.
        counts: (K,) int64 sample counts when the distribution comes from data.
        num_samples: N when it comes from data.
        top: how many most-used groups to list.
    """
    mass = np.asarray(mass, dtype=np.float64)
    labels = dedup.labels
    sizes = dedup.group_sizes
    merged = np.bincount(labels, weights=mass, minlength=sizes.size)
    members_by_label = np.argsort(labels, kind="stable")
    starts = np.concatenate(([0], np.cumsum(sizes)))
    if counts is not None:
        # Integer counts decide "used": float shares could round a single sample away.
        merged_counts = np.bincount(labels, weights=counts, minlength=sizes.size)
        used: int | None = int(np.count_nonzero(counts))
        merged_used: int | None = int(np.count_nonzero(merged_counts))
        ranking_key = merged_counts
    else:
        used = merged_used = None
        ranking_key = merged
    order = np.lexsort((np.arange(sizes.size), -ranking_key))
    order = order[ranking_key[order] > 0][:top]
    largest = int(np.lexsort((np.arange(sizes.size), -sizes))[0])
    entropy = entropy_nats(mass)
    merged_entropy = entropy_nats(merged)
    return UsageReport(
        source=source,
        num_prototypes=int(mass.size),
        num_samples=num_samples,
        counts=counts,
        mass=mass,
        used=used,
        entropy=entropy,
        perplexity=float(np.exp(entropy)),
        eps=dedup.eps,
        cosine=dedup.cosine,
        method=dedup.method,
        unique=dedup.unique,
        group_mass=merged,
        merged_entropy=merged_entropy,
        merged_perplexity=float(np.exp(merged_entropy)),
        merged_used=merged_used,
        top_groups=tuple(_group(int(g), members_by_label, starts, sizes, merged) for g in order),
        largest_group=_group(largest, members_by_label, starts, sizes, merged),
        temperature=temperature,
        head=head,
        space=space,
    )
