"""The trend model: unique prototypes per head and threshold, checkpoint after checkpoint."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..thresholds import Threshold, eps_index

__all__ = ["TrendHead", "TrendEntry", "TrendReport"]


@dataclass(frozen=True)
class TrendHead:
    """One head of one checkpoint: unique counts at each threshold (same order as ``eps``)."""

    name: str
    num_prototypes: int
    eps: tuple[float, ...]
    unique: tuple[int, ...]

    @property
    def utilization(self) -> tuple[float, ...]:
        """U / K at each threshold."""
        return tuple(u / self.num_prototypes for u in self.unique)

    def unique_at(self, eps: float) -> int | None:
        """Unique count at ``eps`` (matched as :func:`~collapse_probe.thresholds.eps_index` does),
        None when not measured."""
        index = eps_index(self.eps, eps)
        return None if index is None else self.unique[index]


@dataclass(frozen=True)
class TrendEntry:
    """One audited checkpoint of the run.

    Attributes:
        path: the file that was read.
        epoch: its epoch, None when unknown (see :mod:`collapse_probe.runs.ordering`).
        epoch_source: ``checkpoint``, ``name``, ``folder`` or ``none``.
        heads: one TrendHead per head of the checkpoint.
        size_bytes, mtime_ns: the file's size and modification time when it was audited
            (a watcher audits ``checkpoint.pth`` again each time it is rewritten).
    """

    path: str
    epoch: int | None
    epoch_source: str
    heads: tuple[TrendHead, ...]
    size_bytes: int = 0
    mtime_ns: int = 0


@dataclass(frozen=True)
class TrendReport:
    """Audits of a run's checkpoints in order. ``thresholds`` ascend; entries are in run order."""

    entries: tuple[TrendEntry, ...]
    thresholds: tuple[Threshold, ...]
    method: str
    network: str
    tool_version: str

    @property
    def heads(self) -> tuple[str, ...]:
        """Head names in order of first appearance."""
        names: dict[str, None] = {}
        for entry in self.entries:
            for head in entry.heads:
                names.setdefault(head.name, None)
        return tuple(names)

    @property
    def by_epoch(self) -> bool:
        """Whether every entry has an epoch (then the x axis is the epoch, else the position)."""
        return bool(self.entries) and all(e.epoch is not None for e in self.entries)

    @property
    def x_label(self) -> str:
        if not self.by_epoch:
            return "checkpoint (run order)"
        sources = {e.epoch_source for e in self.entries}
        if "folder" not in sources:
            return "epoch"
        return "step (from folder names)" if sources == {"folder"} else "epoch or step (from folder names)"

    def x_values(self) -> np.ndarray:
        """(N,) float64: the epoch of each entry, or its position 0..N-1 when any epoch is unknown."""
        if self.by_epoch:
            return np.array([float(e.epoch) for e in self.entries])  # type: ignore[arg-type]
        return np.arange(len(self.entries), dtype=np.float64)

    def series(self, head: str, eps: float) -> np.ndarray:
        """(N,) float64 utilization of ``head`` at ``eps`` per entry; NaN where not measured."""
        values = []
        for entry in self.entries:
            value = math.nan
            for h in entry.heads:
                if h.name == head:
                    unique = h.unique_at(eps)
                    if unique is not None:
                        value = unique / h.num_prototypes
            values.append(value)
        return np.array(values, dtype=np.float64)
