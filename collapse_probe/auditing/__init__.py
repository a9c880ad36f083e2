"""The audit: the run, its records, the verdicts, nearest neighbours and the gate rule.

:func:`audit` reads every head of every checkpoint, deduplicates it once at every threshold it
needs (the shown ones, the gate's and the verdict's) and returns an :class:`AuditReport`; the
verdicts, figures and renderers only read it (rendering and writing live in
:mod:`collapse_probe.report`).
"""

from __future__ import annotations

from .gate import gate_passes, head_status
from .neighbours import (NeighbourSimilarity, nearest_neighbour_similarity, random_nn_cdf,
                         random_nn_pdf)
from .records import AuditReport, CheckpointAudit, GateFailure, GateResult, HeadAudit
from .run import Source, audit
from .verdicts import VERDICT_LABELS, VERDICT_NOTE, Verdict, VerdictPolicy, judge_head

__all__ = ["audit", "Source", "AuditReport", "CheckpointAudit", "HeadAudit", "GateResult",
           "GateFailure", "Verdict", "VerdictPolicy", "judge_head", "VERDICT_LABELS",
           "VERDICT_NOTE", "nearest_neighbour_similarity", "NeighbourSimilarity", "random_nn_cdf",
           "random_nn_pdf", "head_status", "gate_passes"]
