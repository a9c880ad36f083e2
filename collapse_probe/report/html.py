"""The HTML rendering of an AuditReport: one self-contained page.

Figures are embedded as base64 PNG ``data:`` URIs and the style sheet is inline, so the file opens
offline, can be mailed or attached to a CI run, and loads nothing from anywhere.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from ..escape import html as escape  # names from files: HTML-escaped, controls shown
from typing import TYPE_CHECKING

from .figures import PALETTE, ReportFigure, as_report_figures, checkpoint_label, figure_bytes
from ..auditing.records import AuditReport, CheckpointAudit, HeadAudit
from .summary import groups_sentence, headline_result, method_sentence
from ..auditing.verdicts import VERDICT_NOTE

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["render_html", "VERDICT_COLOURS"]

#: Badge colour of each verdict (from the figures' palette).
VERDICT_COLOURS: dict[str, str] = {"healthy": PALETTE[2], "partial-collapse": PALETTE[1],
                                   "collapsed": PALETTE[3], "untrained": PALETTE[4]}

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1100px; padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; margin-top: 2.2rem; }
table { border-collapse: collapse; margin: 0.8rem 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: 0.3rem 0.6rem; text-align: right; }
th { background: #f4f4f4; } td.text, th.text { text-align: left; }
.badge { display: inline-block; padding: 0.05rem 0.5rem; border-radius: 0.7rem; color: #fff;
         font-weight: 600; font-size: 0.9em; }
.note { background: #fff8e1; border-left: 4px solid #E69F00; padding: 0.5rem 0.8rem; }
.hint { color: #555; font-size: 0.92em; }
.gate-pass { color: #009E73; font-weight: 600; } .gate-fail { color: #D55E00; font-weight: 600; }
.figures { display: grid; grid-template-columns: 1fr; gap: 1.2rem; }
figure { margin: 0; } figure img { width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; }
code { background: #f4f4f4; padding: 0 0.2rem; }
"""


def _badge(label: str) -> str:
    colour = VERDICT_COLOURS.get(label, "#777")
    return f'<span class="badge" style="background:{colour}">{escape(label)}</span>'


def _figure(figure: ReportFigure, png: Mapping[str, bytes]) -> str:
    data = png.get(figure.name)
    if data is None:
        data = figure_bytes(figure.figure, "png")
    encoded = base64.b64encode(data).decode("ascii")
    return (f'<figure id="fig-{escape(figure.name)}"><img alt="{escape(figure.title)}" '
            f'src="data:image/png;base64,{encoded}"><figcaption>{escape(figure.title)}</figcaption></figure>')


def _figures(figures: Sequence[ReportFigure], png: Mapping[str, bytes]) -> str:
    if not figures:
        return ""
    return '<div class="figures">' + "".join(_figure(f, png) for f in figures) + "</div>"


def _summary(report: AuditReport) -> str:
    rows = []
    for c, checkpoint in enumerate(report.checkpoints):
        for head in checkpoint.heads:
            result = headline_result(head)
            verdict = _badge(head.verdict.label) if head.verdict is not None else ""
            rows.append(f'<tr><td class="text">{escape(checkpoint_label(report, c))}</td>'
                        f'<td class="text">{escape(head.name)}</td><td>{head.num_prototypes}</td>'
                        f"<td>{head.dim}</td><td>{result.eps:g}</td><td>{result.unique}</td>"
                        f"<td>{100 * result.utilization:.2f} %</td>"
                        f'<td class="text">{verdict}</td></tr>')
    return ('<table><thead><tr><th class="text">checkpoint</th><th class="text">head</th><th>K</th>'
            "<th>D</th><th>eps</th><th>unique</th><th>utilization</th>"
            '<th class="text">verdict</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table>")


def _gate(report: AuditReport) -> str:
    gate = report.gate
    if gate is None:
        return ""
    if gate.passed:
        return (f'<p class="gate-pass">Gate passed: every head reaches {100 * gate.fail_under:g} % '
                f"unique at eps {gate.eps:g}.</p>")
    items = "".join(f"<li>{escape(f.checkpoint)} / {escape(f.head)}: {100 * f.utilization:.2f} %</li>"
                    for f in gate.failures)
    return (f'<p class="gate-fail">Gate failed: below {100 * gate.fail_under:g} % unique at eps '
            f"{gate.eps:g}:</p><ul>{items}</ul>")


def _head(head: HeadAudit, figures: Sequence[ReportFigure], png: Mapping[str, bytes]) -> str:
    shared = (f" (shared with {escape(', '.join(head.prototypes.shared_with))})"
              if head.prototypes.shared_with else "")
    parts = [f"<h3>Head <code>{escape(head.name)}</code>{shared}</h3>",
             f"<p>K = {head.num_prototypes} prototypes of dimension D = {head.dim}.</p>"]
    if head.verdict is not None:
        parts.append(f"<p>Verdict: {_badge(head.verdict.label)} <span class=\"hint\">(a hint)</span> "
                     f"{escape(head.verdict.reason)}</p>")
    rows = "".join(f"<tr><td>{r.eps:g}</td><td>{r.cosine:.7g}</td><td>{r.unique}</td>"
                   f"<td>{100 * r.utilization:.2f} %</td><td>{r.largest_group}</td></tr>"
                   for r in head.results)
    parts.append("<table><thead><tr><th>eps</th><th>cosine &gt;</th><th>unique</th>"
                 f"<th>utilization</th><th>largest group</th></tr></thead><tbody>{rows}</tbody></table>")
    parts.append(f"<p>{escape(groups_sentence(head))}</p>")
    norms = head.prototypes.norms
    parts.append(f'<p class="hint">Row norms: min {float(norms.min()):.4g}, mean '
                 f"{float(norms.mean()):.4g}, max {float(norms.max()):.4g}.</p>")
    parts.append(_figures(figures, png))
    return "".join(parts)


def _checkpoint(report: AuditReport, index: int, checkpoint: CheckpointAudit,
                figures: Sequence[ReportFigure], png: Mapping[str, bytes]) -> str:
    facts = [f"source <code>{escape(checkpoint.source)}</code>", f"format {escape(checkpoint.format)}"]
    if checkpoint.network:
        facts.append(f"network {escape(checkpoint.network)}")
    if checkpoint.sha256:
        facts.append(f"sha256 <code>{escape(checkpoint.sha256)}</code>")
    parts = [f"<section><h2>{escape(checkpoint_label(report, index))}</h2><p>{', '.join(facts)}.</p>"]
    if checkpoint.note:
        parts.append(f'<p class="note"><strong>Note:</strong> {escape(checkpoint.note)}</p>')
    for head in checkpoint.heads:
        mine = [f for f in figures if f.checkpoint == index and f.head == head.name]
        parts.append(_head(head, mine, png))
    parts.append("</section>")
    return "".join(parts)


def render_html(report: AuditReport,
                figures: Sequence[ReportFigure] | Mapping[str, Figure] = (), *,
                png: Mapping[str, bytes] | None = None) -> str:
    """The report as one self-contained HTML page.

    Args:
        report: the audit.
        figures: figures to embed (PNG, base64): ReportFigures (report-wide ones go under the
            summary, the others under their head), or a ``{name: Figure}`` mapping (report-wide).
        png: already rendered PNG bytes by figure name (rendered here when missing).
    """
    png = png or {}
    figures = as_report_figures(figures)
    has_verdicts = any(h.verdict is not None for c in report.checkpoints for h in c.heads)
    body = ["<h1>Prototype collapse report</h1>",
            f'<p class="hint">collapse-probe {escape(report.tool_version)}. '
            f"{escape(method_sentence(report))}</p>",
            "<h2>Summary</h2>", _summary(report)]
    if has_verdicts:
        body.append(f'<p class="hint">{escape(VERDICT_NOTE)}</p>')
    body.append(_gate(report))
    wide = _figures([f for f in figures if f.checkpoint is None], png)
    body.append(wide.replace('class="figures"', 'class="figures wide"', 1))
    body += [_checkpoint(report, i, c, figures, png) for i, c in enumerate(report.checkpoints)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<title>Prototype collapse report</title>"
            f"<style>{_STYLE}</style></head><body>\n" + "\n".join(p for p in body if p)
            + "\n</body></html>\n")
