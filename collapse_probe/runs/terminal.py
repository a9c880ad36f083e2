"""Terminal rendering of a TrendReport: one row per checkpoint x head, one column per threshold."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..escape import terminal_markup
from .model import TrendReport

if TYPE_CHECKING:
    from rich.console import RenderableType

__all__ = ["render_trend"]


def render_trend(report: TrendReport, *,
                 title: str = "unique prototypes over training, per threshold") -> RenderableType:
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    # The title is a line of its own: a table title would wrap at the (narrow) table's width.
    heading = Text.assemble(title, (f"  ({report.method}, {report.network})", "dim"))
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True, show_edge=False)
    table.add_column("epoch", justify="right", no_wrap=True)
    table.add_column("checkpoint", no_wrap=True)
    table.add_column("head", no_wrap=True)
    table.add_column("K", justify="right", no_wrap=True)
    for threshold in report.thresholds:
        table.add_column(f"eps {threshold.eps:g}", justify="right", no_wrap=True)
    for entry in report.entries:
        epoch = "?" if entry.epoch is None else str(entry.epoch)
        if entry.epoch_source in ("name", "folder"):
            epoch += f" ({entry.epoch_source})"
        name = terminal_markup(entry.path.replace("\\", "/").rsplit("/", 1)[-1])
        for i, head in enumerate(entry.heads):
            cells = []
            for threshold in report.thresholds:
                unique = head.unique_at(threshold.eps)
                cells.append("" if unique is None
                             else f"{unique} {100 * unique / head.num_prototypes:.3g}%")
            table.add_row(epoch if i == 0 else "", name if i == 0 else "", terminal_markup(head.name),
                          str(head.num_prototypes), *cells,
                          end_section=len(entry.heads) > 1 and i == len(entry.heads) - 1)
    return Group(heading, table)
