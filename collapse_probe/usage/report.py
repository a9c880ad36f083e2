"""The frozen record data-side usage produces: :class:`UsageReport` and :class:`UsageGroup`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["UsageReport", "UsageGroup", "SOURCES"]

#: Where a usage distribution comes from: real samples, or the checkpoint's ``center`` buffer.
SOURCES: tuple[str, ...] = ("data", "center-proxy")


def _frozen(array: np.ndarray | None) -> np.ndarray | None:
    if array is None:
        return None
    array = np.asarray(array)
    array.setflags(write=False)
    return array


@dataclass(frozen=True)
class UsageGroup:
    """One weight-space duplicate group (at the report's eps) and the usage it receives.

    Attributes:
        label: the group's label in the DedupResult at eps (0..U-1, ordered by smallest member).
        size: number of prototypes in the group.
        members: up to ``MEMBERS_SHOWN`` member indices, ascending (a sample, not all of them).
        share: fraction of the samples (or of the proxy mass) that lands on any member, in [0, 1].
    """

    label: int
    size: int
    members: tuple[int, ...]
    share: float

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "size": self.size, "members": list(self.members),
                "share": self.share}


@dataclass(frozen=True, eq=False)
class UsageReport:
    """Which prototypes a data set uses, plain and merged over duplicate groups.

    Entropies are in nats; a perplexity is ``exp(entropy)``, the effective number of prototypes
    (or groups) in use. "Merged" statistics first sum the distribution over each weight-space
    duplicate group at ``eps``: duplicates that split mass between them keep the plain
    perplexity high, the merged one exposes them.

    Attributes:
        source: ``data`` (argmax assignment of real samples) or ``center-proxy`` (softmax of the
            checkpoint's ``center`` buffer at ``temperature``: a rough proxy, not a measurement).
        num_prototypes: K.
        num_samples: N for ``data``; None for the proxy.
        counts: (K,) int64 samples assigned to each prototype; None for the proxy.
        mass: (K,) float64 distribution over prototypes (counts / N, or the proxy softmax).
        used: prototypes that are the argmax for at least one sample; None for the proxy.
        entropy: H(mass) in nats.
        perplexity: exp(entropy).
        eps: the distance threshold of the duplicate groups; ``cosine`` is the same threshold.
        method: duplicate grouping method (``components`` or ``greedy``).
        unique: number of weight-space groups at eps (the audit's unique count).
        group_mass: (U,) float64 the distribution summed over each group, indexed by group label.
        merged_entropy: H(group_mass), nats.
        merged_perplexity: exp(merged_entropy).
        merged_used: groups that receive at least one sample; None for the proxy.
        top_groups: the most-used groups, most-used first (ties: smaller label first).
        largest_group: the largest weight-space group (ties: smaller label) and its share.
        temperature: the proxy's softmax temperature; None for ``data``.
        head: the name of the prototype head.
        space: ``bottleneck`` or ``backbone`` when features went through a checkpoint; else None.
    """

    source: str
    num_prototypes: int
    num_samples: int | None
    counts: np.ndarray | None = field(repr=False)
    mass: np.ndarray = field(repr=False)
    used: int | None
    entropy: float
    perplexity: float
    eps: float
    cosine: float
    method: str
    unique: int
    group_mass: np.ndarray = field(repr=False)
    merged_entropy: float
    merged_perplexity: float
    merged_used: int | None
    top_groups: tuple[UsageGroup, ...]
    largest_group: UsageGroup
    temperature: float | None = None
    head: str = "prototypes"
    space: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "counts", _frozen(self.counts))
        object.__setattr__(self, "mass", _frozen(self.mass))
        object.__setattr__(self, "group_mass", _frozen(self.group_mass))

    @property
    def is_proxy(self) -> bool:
        return self.source != "data"

    @property
    def used_fraction(self) -> float | None:
        """used / K; None for the proxy."""
        return None if self.used is None else self.used / self.num_prototypes

    @property
    def largest_group_share(self) -> float:
        """Share of the samples (or proxy mass) landing in the largest weight-space group."""
        return self.largest_group.share

    def to_dict(self, *, include_distribution: bool = True) -> dict[str, Any]:
        """A JSON-safe dict. ``include_distribution`` adds ``counts``/``mass`` (K numbers)."""
        out: dict[str, Any] = {
            "source": self.source,
            "proxy": self.is_proxy,
            "head": self.head,
            "space": self.space,
            "temperature": self.temperature,
            "num_prototypes": self.num_prototypes,
            "num_samples": self.num_samples,
            "used": self.used,
            "used_fraction": self.used_fraction,
            "entropy_nats": self.entropy,
            "perplexity": self.perplexity,
            "eps": self.eps,
            "cosine": self.cosine,
            "method": self.method,
            "unique": self.unique,
            "merged_entropy_nats": self.merged_entropy,
            "merged_perplexity": self.merged_perplexity,
            "merged_used": self.merged_used,
            "largest_group": self.largest_group.to_dict(),
            "top_groups": [g.to_dict() for g in self.top_groups],
        }
        if include_distribution:
            if self.counts is not None:
                out["counts"] = self.counts.tolist()
            else:
                out["mass"] = self.mass.tolist()
            out["group_mass"] = self.group_mass.tolist()
        return out

    def __repr__(self) -> str:
        used = "proxy" if self.used is None else f"used={self.used}"
        return (f"UsageReport(source={self.source!r}, K={self.num_prototypes}, N={self.num_samples}, "
                f"{used}, perplexity={self.perplexity:.4g}, merged_perplexity={self.merged_perplexity:.4g}, "
                f"unique={self.unique}, eps={self.eps:g})")
