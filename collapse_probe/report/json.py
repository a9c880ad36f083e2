"""The versioned JSON form of an AuditReport. The schema is ``schema.json`` beside this file."""

from __future__ import annotations

import json
import math
from typing import Any

from ..types import DedupResult
from ..auditing.records import AuditReport, CheckpointAudit, HeadAudit

__all__ = ["SCHEMA_VERSION", "report_to_dict", "report_to_json"]

#: Bumped on any change a consumer could notice: a removed or renamed field, or a new meaning.
#: Added fields (``heads[].verdict``) keep the version: consumers ignore what they do not know.
SCHEMA_VERSION = 1

#: Largest groups listed per result, and members listed per group, in the JSON.
MAX_GROUPS = 10
MAX_MEMBERS = 50


def _number(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value)


def _result(result: DedupResult) -> dict[str, Any]:
    return {
        "eps": result.eps,
        "cosine": result.cosine,
        "method": result.method,
        "unique": result.unique,
        "utilization": result.utilization,
        "largest_group": result.largest_group,
        "largest_groups": [
            {"size": g.size, "members": list(g.members[:MAX_MEMBERS]),
             "members_truncated": len(g.members) > MAX_MEMBERS}
            for g in result.largest_groups(MAX_GROUPS)
        ],
    }


def _head(head: HeadAudit) -> dict[str, Any]:
    norms = head.prototypes.norms
    return {
        "name": head.name,
        "num_prototypes": head.num_prototypes,
        "dim": head.dim,
        "shared_with": list(head.prototypes.shared_with),
        "source_keys": list(head.prototypes.source_keys),
        "gain_all_ones": head.prototypes.gain_all_ones,
        "norms": {"min": _number(float(norms.min())), "max": _number(float(norms.max())),
                  "mean": _number(float(norms.mean()))},
        "results": [_result(r) for r in head.results],
        "verdict": None if head.verdict is None else {
            "label": head.verdict.label,
            "reason": head.verdict.reason,
            "evidence": dict(head.verdict.evidence),
        },
    }


def _checkpoint(checkpoint: CheckpointAudit) -> dict[str, Any]:
    return {
        "source": checkpoint.source,
        "path": checkpoint.path,
        "format": checkpoint.format,
        "network": checkpoint.network,
        "sha256": checkpoint.sha256,
        "note": checkpoint.note,
        "replaced_classes": list(checkpoint.replaced),
        "heads": [_head(h) for h in checkpoint.heads],
    }


def report_to_dict(report: AuditReport) -> dict[str, Any]:
    """A plain-JSON dict of ``report`` (schema version :data:`SCHEMA_VERSION`)."""
    gate = report.gate
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "collapse-probe", "version": report.tool_version},
        "method": report.method,
        "thresholds": [{"eps": t.eps, "cosine": t.cosine} for t in report.thresholds],
        "checkpoints": [_checkpoint(c) for c in report.checkpoints],
        "gate": None if gate is None else {
            "fail_under": gate.fail_under,
            "eps": gate.eps,
            "passed": gate.passed,
            "failures": [{"checkpoint": f.checkpoint, "head": f.head, "utilization": f.utilization}
                         for f in gate.failures],
        },
    }


def report_to_json(report: AuditReport, *, indent: int | None = 2) -> str:
    """``report`` as JSON text, ending in a newline."""
    return json.dumps(report_to_dict(report), indent=indent, allow_nan=False) + "\n"
