"""The CSV rendering of an AuditReport: one row per checkpoint x head x threshold."""

from __future__ import annotations

import csv
import io

from ..escape import csv_cell
from ..auditing.records import AuditReport

__all__ = ["CSV_COLUMNS", "render_csv"]

#: The columns, in order. ``verdict`` repeats on every row of its head ("" when not judged).
CSV_COLUMNS: tuple[str, ...] = (
    "checkpoint", "path", "format", "network", "sha256", "head", "num_prototypes", "dim",
    "method", "eps", "cosine", "unique", "utilization", "largest_group", "verdict",
)


def _number(value: float) -> str:
    # repr keeps every digit; the same float always prints the same way.
    return repr(float(value))


def render_csv(report: AuditReport) -> str:
    """The report as CSV text (header row, ``\\n`` line ends, RFC 4180 quoting)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for checkpoint in report.checkpoints:
        for head in checkpoint.heads:
            verdict = head.verdict.label if head.verdict is not None else ""
            for result in head.results:
                # Text cells from files never start a spreadsheet formula (= + - @).
                writer.writerow([
                    csv_cell(checkpoint.source), csv_cell(checkpoint.path),
                    csv_cell(checkpoint.format), csv_cell(checkpoint.network),
                    checkpoint.sha256, csv_cell(head.name), head.num_prototypes, head.dim,
                    result.method,
                    _number(result.eps), _number(result.cosine), result.unique,
                    _number(result.utilization), result.largest_group, verdict,
                ])
    return buffer.getvalue()
