"""The record one fine-tuning run returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FinetuneResult", "UTILIZATION_EPS"]

#: Thresholds at which utilization is reported before and after fine-tuning.
UTILIZATION_EPS: tuple[float, ...] = (0.025, 0.1)


@dataclass(frozen=True, eq=False)
class FinetuneResult:
    """What a fine-tuning run did and what it changed.

    Attributes:
        checkpoint: the input file (never modified).
        out: the file written (None on non-zero ranks of a distributed run).
        format: checkpoint format.
        head: the head fine-tuned.
        objective: ``dino`` or ``msn``.
        num_prototypes: K.
        networks: the networks written (``teacher``, and ``student`` when the file has one).
        settings: every setting used (koleo_weight, steps, batch_size, lr, temperatures,
            momenta, seed, device, world_size, feature augmentation or None for given views...).
        unique_before, unique_after: ``{network: {eps: unique prototypes}}`` (components
            method) at :data:`UTILIZATION_EPS`.
        loss: (steps, 3) float64 per-step values: total loss, the method's loss, KoLeo-Proto
            (NaN on steps where it was not computed: with weight 0 it is only logged).
        written_keys: the checkpoint paths that received new tensors.
    """

    checkpoint: Path
    out: Path | None
    format: str
    head: str
    objective: str
    num_prototypes: int
    networks: tuple[str, ...]
    settings: Mapping[str, Any]
    unique_before: Mapping[str, Mapping[float, int]]
    unique_after: Mapping[str, Mapping[float, int]]
    loss: np.ndarray = field(repr=False)
    written_keys: tuple[str, ...] = ()

    def utilization(self, network: str = "teacher", eps: float = 0.025, *, after: bool = True) -> float:
        """Unique fraction U / K of ``network`` at ``eps``, after (or before) fine-tuning."""
        table = self.unique_after if after else self.unique_before
        return table[network][eps] / self.num_prototypes

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready numbers (loss curve as lists, NaN as null)."""
        def column(i: int) -> list[float | None]:
            return [None if not np.isfinite(v) else float(v) for v in self.loss[:, i]]

        def table(t: Mapping[str, Mapping[float, int]]) -> dict[str, dict[str, Any]]:
            return {net: {f"{eps:g}": {"unique": u, "utilization": u / self.num_prototypes}
                          for eps, u in row.items()} for net, row in t.items()}

        return {
            "checkpoint": str(self.checkpoint),
            "out": None if self.out is None else str(self.out),
            "format": self.format,
            "head": self.head,
            "objective": self.objective,
            "num_prototypes": self.num_prototypes,
            "networks": list(self.networks),
            "settings": dict(self.settings),
            "unique_before": table(self.unique_before),
            "unique_after": table(self.unique_after),
            "loss": {"total": column(0), "method": column(1), "koleo": column(2)},
            "written_keys": list(self.written_keys),
        }
