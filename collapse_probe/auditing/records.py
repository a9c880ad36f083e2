"""The audit records: what one audit found, for every checkpoint, head and threshold."""

from __future__ import annotations

from dataclasses import dataclass

from ..thresholds import Threshold
from ..types import DedupResult, PrototypeSet, result_at
from .neighbours import NeighbourSimilarity
from .verdicts import Verdict

__all__ = ["HeadAudit", "CheckpointAudit", "GateFailure", "GateResult", "AuditReport"]


@dataclass(frozen=True, eq=False)
class HeadAudit:
    """One head of one checkpoint: its prototypes and one DedupResult per threshold (ascending eps).

    ``results`` are at the report's thresholds (what is shown); ``extra_results`` at thresholds
    the audit needed beyond them (the verdict's eps when it is not among them), never shown.
    ``verdict`` is the one-word hint of :mod:`collapse_probe.auditing.verdicts` (None when not judged);
    ``neighbours`` the nearest-neighbour similarities it was judged on (reused by the figures).
    """

    prototypes: PrototypeSet
    results: tuple[DedupResult, ...]
    verdict: Verdict | None = None
    neighbours: NeighbourSimilarity | None = None
    extra_results: tuple[DedupResult, ...] = ()

    @property
    def name(self) -> str:
        return self.prototypes.name

    @property
    def num_prototypes(self) -> int:
        return self.prototypes.num_prototypes

    @property
    def dim(self) -> int:
        return self.prototypes.dim

    def result_at(self, eps: float) -> DedupResult:
        """The result at distance threshold ``eps``, shown or extra (KeyError when not audited)."""
        found = result_at((*self.results, *self.extra_results), eps)
        if found is not None:
            return found
        raise KeyError(f"no result at eps={eps:g} for head {self.name!r}")


@dataclass(frozen=True, eq=False)
class CheckpointAudit:
    """One audited checkpoint.

    Attributes:
        source: what the user named (a path, a zoo name or an example name).
        path: the file that was read ("" for an in-memory array).
        format: the detected or given checkpoint format.
        network: ``teacher`` or ``student`` ("" where the format has no networks).
        sha256: hex digest of the file ("" for an in-memory array).
        heads: one HeadAudit per distinct head.
        note: a caveat to show next to the results (e.g. that the input is synthetic).
        replaced: pickled classes the loader did not load (inert placeholders stood in for
            them; the heads do not depend on them).
    """

    source: str
    path: str
    format: str
    network: str
    sha256: str
    heads: tuple[HeadAudit, ...]
    note: str = ""
    replaced: tuple[str, ...] = ()


@dataclass(frozen=True)
class GateFailure:
    """A head whose utilization at the gate threshold is below the floor."""

    checkpoint: str
    head: str
    utilization: float


@dataclass(frozen=True)
class GateResult:
    """The CI gate: every head must reach ``fail_under`` utilization at ``eps``."""

    fail_under: float
    eps: float
    passed: bool
    failures: tuple[GateFailure, ...]


@dataclass(frozen=True, eq=False)
class AuditReport:
    """Everything one audit found. ``thresholds`` are ascending; ``gate`` is None without a floor."""

    checkpoints: tuple[CheckpointAudit, ...]
    thresholds: tuple[Threshold, ...]
    method: str
    gate: GateResult | None
    tool_version: str
