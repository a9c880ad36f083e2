"""The Markdown rendering of an AuditReport (deterministic: the same report gives the same text)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ..escape import markdown as _escape
from ..escape import markdown_code as _code
from .figures import ReportFigure, as_report_figures, checkpoint_label
from ..auditing.records import AuditReport, CheckpointAudit, HeadAudit
from .summary import groups_sentence, headline_result, method_sentence
from ..auditing.verdicts import VERDICT_NOTE

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["render_markdown"]


def _cell(text: str) -> str:
    # Names come from files: one line of literal text, never HTML, links or table syntax.
    return _escape(text)


def _summary(report: AuditReport) -> list[str]:
    lines = ["| checkpoint | head | K | D | eps | unique | utilization | verdict |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for c, checkpoint in enumerate(report.checkpoints):
        for head in checkpoint.heads:
            result = headline_result(head)
            verdict = f"**{head.verdict.label}**" if head.verdict is not None else ""
            lines.append(f"| {_cell(checkpoint_label(report, c))} | {_cell(head.name)} | "
                         f"{head.num_prototypes} | {head.dim} | {result.eps:g} | {result.unique} | "
                         f"{100 * result.utilization:.2f} % | {verdict} |")
    return lines


def _gate(report: AuditReport) -> list[str]:
    gate = report.gate
    if gate is None:
        return []
    if gate.passed:
        return ["", f"**Gate passed**: every head reaches {100 * gate.fail_under:g} % unique at "
                f"eps {gate.eps:g}."]
    lines = ["", f"**Gate failed**: below {100 * gate.fail_under:g} % unique at eps {gate.eps:g}:", ""]
    lines += [f"- {_cell(f.checkpoint)} / {_cell(f.head)}: {100 * f.utilization:.2f} %"
              for f in gate.failures]
    return lines


def _figures(figures: Sequence[ReportFigure]) -> list[str]:
    lines: list[str] = []
    for figure in figures:
        lines += ["", f"![{_cell(figure.title)}]({figure.name}.png)"]
    return lines


def _head(head: HeadAudit, figures: Sequence[ReportFigure]) -> list[str]:
    extra = f" (shared with {_cell(', '.join(head.prototypes.shared_with))})" if head.prototypes.shared_with else ""
    lines = ["", f"### Head {_code(head.name)}{extra}", "",
             f"K = {head.num_prototypes} prototypes of dimension D = {head.dim}."]
    if head.verdict is not None:
        lines += ["", f"**Verdict: {head.verdict.label}** (a hint). {head.verdict.reason}"]
    lines += ["", "| eps | cosine > | unique | utilization | largest group |",
              "|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.eps:g} | {r.cosine:.7g} | {r.unique} | {100 * r.utilization:.2f} % | "
              f"{r.largest_group} |" for r in head.results]
    lines += ["", groups_sentence(head)]
    norms = head.prototypes.norms
    lines += ["", f"Row norms: min {float(norms.min()):.4g}, mean {float(norms.mean()):.4g}, "
              f"max {float(norms.max()):.4g}."]
    return lines + _figures(figures)


def _checkpoint(report: AuditReport, index: int, checkpoint: CheckpointAudit,
                figures: Sequence[ReportFigure]) -> list[str]:
    lines = ["", f"## {_cell(checkpoint_label(report, index))}", ""]
    facts = [f"source {_code(checkpoint.source)}", f"format {_cell(checkpoint.format)}"]
    if checkpoint.network:
        facts.append(f"network {_cell(checkpoint.network)}")
    if checkpoint.sha256:
        facts.append(f"sha256 `{checkpoint.sha256[:16]}...`")
    lines.append(", ".join(facts) + ".")
    if checkpoint.note:
        lines += ["", f"> **Note:** {checkpoint.note}"]
    for head in checkpoint.heads:
        lines += _head(head, [f for f in figures if f.checkpoint == index and f.head == head.name])
    return lines


def render_markdown(report: AuditReport,
                    figures: Sequence[ReportFigure] | Mapping[str, Figure] = ()) -> str:
    """The report as Markdown, ending in a newline.

    Args:
        report: the audit.
        figures: figures to link (as ``<name>.png`` beside the Markdown file; writing the files
            is the caller's job, see :func:`~collapse_probe.report.writer.write_report`): ReportFigures
            or a ``{name: Figure}`` mapping.
    """
    figures = as_report_figures(figures)
    lines = ["# Prototype collapse report", "",
             f"collapse-probe {report.tool_version}. {method_sentence(report)}", "",
             "## Summary", ""]
    lines += _summary(report)
    if any(h.verdict is not None for c in report.checkpoints for h in c.heads):
        lines += ["", f"> {VERDICT_NOTE}"]
    lines += _gate(report)
    lines += _figures([f for f in figures if f.checkpoint is None])
    for index, checkpoint in enumerate(report.checkpoints):
        lines += _checkpoint(report, index, checkpoint, figures)
    return "\n".join(lines) + "\n"
