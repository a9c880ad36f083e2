"""The terminal rendering of an AuditReport: one rich table per checkpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..escape import terminal, terminal_markup
from ..auditing.records import AuditReport, CheckpointAudit
from ..auditing.verdicts import VERDICT_NOTE

if TYPE_CHECKING:
    from rich.console import RenderableType

__all__ = ["render_audit", "VERDICT_STYLES"]

#: rich styles of the verdict labels.
VERDICT_STYLES: dict[str, str] = {"healthy": "bold green", "partial-collapse": "bold yellow",
                                  "collapsed": "bold red", "untrained": "bold magenta"}


def _checkpoint_table(checkpoint: CheckpointAudit) -> RenderableType:
    """The checkpoint's table; on a terminal too narrow for it (80 columns), the same table
    without the verdict column, whose labels are repeated in the sentences printed below it."""
    wide, narrow = _table(checkpoint, verdict=True), _table(checkpoint, verdict=False)
    # Width of the full table with every cell on one line: cells, 1 space either side, borders
    # (the narrow table's cells are plain text; the verdict column is as wide as its longest label).
    needed = sum(max(len(c.header), *(len(str(v)) for v in c.cells)) + 3 for c in narrow.columns)
    needed += len("partial-collapse") + 3 + 1

    class _Fitted:
        def __rich_console__(self, console, options):  # noqa: ANN001, ANN204
            yield wide if needed <= options.max_width else narrow

    return _Fitted()


def _table(checkpoint: CheckpointAudit, *, verdict: bool):  # noqa: ANN202 - rich imported lazily
    from rich.table import Table

    # Names come from files: shown as text, never read as markup or control sequences.
    title = f"{terminal_markup(checkpoint.source)}  [dim]({terminal_markup(checkpoint.format)}"
    title += f", {terminal_markup(checkpoint.network)})[/dim]" if checkpoint.network else ")[/dim]"
    table = Table(title=title, title_justify="left", show_lines=False)
    columns = [("head", "left"), ("K", "right"), ("D", "right"), ("eps", "right"),
               ("cosine >", "right"), ("unique", "right"), ("utilization", "right"),
               ("largest", "right")] + ([("verdict", "left")] if verdict else [])
    for column, justify in columns:
        # Numbers and the verdict never wrap or truncate (a cosine cut to 0.99… says nothing).
        wide = {"min_width": len("partial-collapse"), "no_wrap": True} if column == "verdict" else \
            {"no_wrap": True} if justify == "right" else {}
        table.add_column(column, justify=justify, **wide)
    for head in checkpoint.heads:
        name = terminal_markup(head.name)
        if head.prototypes.shared_with:
            name += f" (shared with {terminal_markup(', '.join(head.prototypes.shared_with))})"
        label = ""
        if head.verdict is not None:
            label = f"[{VERDICT_STYLES[head.verdict.label]}]{head.verdict.label}[/]"
        for i, result in enumerate(head.results):
            cells = [name if i == 0 else "", f"{head.num_prototypes}" if i == 0 else "",
                     f"{head.dim}" if i == 0 else "", f"{result.eps:g}",
                     f"{result.cosine:.7g}", f"{result.unique}",
                     f"{100 * result.utilization:.2f} %", f"{result.largest_group}"]
            table.add_row(*cells, *([label if i == 0 else ""] if verdict else []),
                          end_section=i == len(head.results) - 1)
    return table


def render_audit(report: AuditReport) -> list[RenderableType]:
    """Renderables for ``rich.console.Console.print``: a table per checkpoint, then the gate."""
    from rich.text import Text

    out: list[RenderableType] = []
    for checkpoint in report.checkpoints:
        if checkpoint.note:
            out.append(Text(f"Note: {terminal(checkpoint.note)}", style="bold yellow"))
        out.append(_checkpoint_table(checkpoint))
        for head in checkpoint.heads:
            if head.verdict is not None:
                out.append(Text.assemble((f"{terminal(head.name)}: ", "bold"),
                                         (head.verdict.label, VERDICT_STYLES[head.verdict.label]),
                                         f" - {terminal(head.verdict.reason)}"))
    if any(h.verdict is not None for c in report.checkpoints for h in c.heads):
        out.append(Text(VERDICT_NOTE, style="dim"))
    out.append(Text(f"method: {report.method} (duplicates when ||a - b|| < eps, i.e. cos > 1 - eps^2/2)",
                    style="dim"))
    gate = report.gate
    if gate is not None:
        if gate.passed:
            out.append(Text(f"gate PASSED: every head >= {100 * gate.fail_under:.2f} % unique at "
                            f"eps {gate.eps:g}", style="bold green"))
        else:
            for failure in gate.failures:
                out.append(Text(f"gate FAILED: {terminal(failure.checkpoint)} / {terminal(failure.head)}: "
                                f"{100 * failure.utilization:.2f} % < {100 * gate.fail_under:.2f} % "
                                f"unique at eps {gate.eps:g}", style="bold red"))
    return out
