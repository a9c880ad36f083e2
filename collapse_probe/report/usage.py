"""Data-side usage in a report: measure it for each audited checkpoint, turn it into figures."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..validation import fail
from .figures import ReportFigure, checkpoint_label
from ..auditing.records import AuditReport

if TYPE_CHECKING:
    import numpy as np

    from ..usage import UsageReport

__all__ = ["HeadUsage", "measure_usage", "usage_report_figures", "usage_json"]


@dataclass(frozen=True, eq=False)
class HeadUsage:
    """The usage of one audited head: ``checkpoint`` indexes ``report.checkpoints``."""

    checkpoint: int
    head: str
    usage: UsageReport


def measure_usage(
    report: AuditReport,
    features: str | Path | np.ndarray,
    *,
    space: str = "backbone",
    eps: float = 0.025,
    trust: bool = False,
) -> tuple[HeadUsage, ...]:
    """Usage of the first head of every audited checkpoint by the same (N, d) features.

    The first head is the one the method's main loss trains (DINO/iBOT [CLS], EsViT view-level,
    DINOv2 ``dino_head``). Checkpoints that are in-memory arrays have no file to rebuild a head
    from and need bottleneck features; they are refused in backbone space.
    """
    from ..options import ReadOptions
    from ..usage import usage_from_checkpoint

    out = []
    for index, checkpoint in enumerate(report.checkpoints):
        if not checkpoint.path:
            raise fail("features", expected="checkpoints read from files",
                       got=f"the in-memory input {checkpoint.source}",
                       hint="Use collapse_probe.data_usage for arrays.")
        head = checkpoint.heads[0]
        read = ReadOptions(format=checkpoint.format, network=checkpoint.network or "teacher",
                           trust=trust)
        usage = usage_from_checkpoint(checkpoint.path, features, space=space, head=head.name,
                                      eps=eps, method=report.method, read=read)
        out.append(HeadUsage(checkpoint=index, head=head.name, usage=usage))
    return tuple(out)


def usage_report_figures(report: AuditReport, usages: Sequence[HeadUsage]) -> tuple[ReportFigure, ...]:
    """The usage figures (usage by rank, used vs unique) of every measured head."""
    import re

    from ..usage import usage_figures

    out = []
    for item in usages:
        where = f"{checkpoint_label(report, item.checkpoint)} / {item.head}"
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{item.checkpoint + 1}-{item.head}").strip("-.")
        for name, figure in usage_figures(item.usage).items():
            title = f"{name.replace('_', ' ').capitalize()} (data): {where}"
            out.append(ReportFigure(f"{stem}_{name}", title, figure, item.checkpoint, item.head))
    return tuple(out)


def usage_json(report: AuditReport, usages: Sequence[HeadUsage]) -> str:
    """``usage.json``: one record per measured head (the distribution itself left out)."""
    records = [{"checkpoint": report.checkpoints[u.checkpoint].source, "head": u.head,
                "usage": u.usage.to_dict(include_distribution=False)} for u in usages]
    return json.dumps({"schema_version": 1, "usage": records}, indent=2, allow_nan=False) + "\n"
