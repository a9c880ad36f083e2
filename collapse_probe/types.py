"""Frozen records that flow through the core: arrays in, these out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .thresholds import eps_index

__all__ = ["PrototypeSet", "DedupResult", "Group", "METHODS", "result_at"]

#: Grouping methods: connected components of "closer than eps" (single linkage), or a greedy
#: eps-net walked in index order.
METHODS: tuple[str, ...] = ("components", "greedy")


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class PrototypeSet:
    """The prototypes of one head.

    Attributes:
        name: the head's name (``head``, ``head_dense``, ``dino_head``, ``prototypes``, ...).
        vectors: (K, D) float32, unit rows: the prototype directions (weight norm applied).
        norms: (K,) float32, each prototype's norm before normalisation (the effective row norm
            ``|g_k|`` for weight-norm layers, the plain row norm otherwise).
        source_keys: the checkpoint keys the prototypes were read from.
        shared_with: names of other heads that hold the very same tensor (iBOT's shared head).
        gain_all_ones: for weight-norm layers, whether every g is 1 up to float rounding;
            None for plain layers and raw arrays.
    """

    name: str
    vectors: np.ndarray
    norms: np.ndarray
    source_keys: tuple[str, ...] = ()
    shared_with: tuple[str, ...] = ()
    gain_all_ones: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "vectors", _frozen(self.vectors))
        object.__setattr__(self, "norms", _frozen(self.norms))

    @property
    def num_prototypes(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @classmethod
    def from_array(cls, weights: np.ndarray, *, name: str = "prototypes",
                   source_keys: tuple[str, ...] = (), shared_with: tuple[str, ...] = (),
                   gain_all_ones: bool | None = None) -> PrototypeSet:
        """Validate a raw (K, D) matrix, keep its row norms and normalise its rows."""
        from .validation import as_prototype_matrix

        matrix = as_prototype_matrix(weights, name=name)
        # float64 norms: float32 sums of 256+ squares lose digits the norm report would show.
        norms = np.linalg.norm(matrix.astype(np.float64), axis=1)
        vectors = (matrix / norms[:, None]).astype(np.float32)
        return cls(name=name, vectors=vectors, norms=norms.astype(np.float32),
                   source_keys=source_keys, shared_with=shared_with, gain_all_ones=gain_all_ones)


@dataclass(frozen=True)
class Group:
    """One group of duplicate prototypes: its size and member indices (ascending)."""

    size: int
    members: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class DedupResult:
    """Duplicate groups of one head at one threshold.

    Attributes:
        eps: distance threshold (duplicates when ``||a - b|| < eps``).
        cosine: the same threshold as a cosine (duplicates when ``cos > cosine``).
        method: ``components`` or ``greedy``.
        labels: (K,) int64, the group of each prototype. Groups are numbered 0..U-1 in the
            order of their smallest member, so equal groupings have equal label arrays.
    """

    eps: float
    cosine: float
    method: str
    labels: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _frozen(np.asarray(self.labels, dtype=np.int64)))

    @property
    def num_prototypes(self) -> int:
        return int(self.labels.shape[0])

    @cached_property
    def group_sizes(self) -> np.ndarray:
        """(U,) int64: the size of each group, indexed by label."""
        return _frozen(np.bincount(self.labels))

    @property
    def unique(self) -> int:
        """U, the number of groups: unique prototypes."""
        return int(self.group_sizes.shape[0])

    @property
    def utilization(self) -> float:
        """U / K, the unique fraction."""
        return self.unique / self.num_prototypes

    @property
    def largest_group(self) -> int:
        return int(self.group_sizes.max())

    def largest_groups(self, n: int = 5) -> tuple[Group, ...]:
        """The ``n`` largest groups, largest first (ties: smaller label first), with members."""
        sizes = self.group_sizes
        order = np.lexsort((np.arange(sizes.size), -sizes))[:n]
        by_label = np.argsort(self.labels, kind="stable")
        starts = np.concatenate(([0], np.cumsum(sizes)))
        return tuple(
            Group(size=int(sizes[g]), members=tuple(int(i) for i in by_label[starts[g]:starts[g + 1]]))
            for g in order
        )

    def __repr__(self) -> str:
        return (f"DedupResult(eps={self.eps:g}, cosine={self.cosine:.7g}, method={self.method!r}, "
                f"unique={self.unique}, num_prototypes={self.num_prototypes})")


def result_at(results: Iterable[DedupResult], eps: float) -> DedupResult | None:
    """The one of ``results`` at threshold ``eps`` (matched as :func:`~collapse_probe.thresholds.eps_index`
    does), None when none is."""
    results = tuple(results)
    index = eps_index((r.eps for r in results), eps)
    return None if index is None else results[index]
