"""The trend figure: utilization over the run, one line per head x threshold."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .model import TrendReport

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["trend_figure"]

_LINE_STYLES = ("-", "--", ":", "-.")
_MARKERS = ("o", "s", "^", "D", "v", "P")


def trend_figure(report: TrendReport, *, log_scale: bool | None = None) -> Figure:
    """Utilization (percent unique) against epoch, one line per head x eps.

    Colour and marker encode the threshold, line style the head. Series often coincide (a head
    with no near-copies has the same count at eps 0.025 and 0.1), so the tighter threshold is
    drawn on top, thinner and with a smaller marker, over the looser one's wider line and larger
    hollow marker: both stay visible. ``log_scale`` defaults to a log y axis when the values
    span more than two decades (collapsed heads sit at 1-2 %).
    Built on ``matplotlib.figure.Figure`` directly: no pyplot state, no display needed.
    """
    from matplotlib.figure import Figure

    from ..escape import plot_text

    figure = Figure(figsize=(7.5, 4.5), layout="constrained")
    axes = figure.add_subplot()
    x = report.x_values()
    from ..style import PALETTE

    colours = [PALETTE[i % len(PALETTE)] for i in range(len(report.thresholds))]
    count = len(report.thresholds)
    positive = []
    for h, head in enumerate(report.heads):
        for t, threshold in enumerate(report.thresholds):
            y = 100.0 * report.series(head, threshold.eps)
            if np.all(np.isnan(y)):
                continue
            positive.extend(v for v in y if np.isfinite(v) and v > 0)
            axes.plot(x, y, marker=_MARKERS[t % len(_MARKERS)], markersize=min(12.0, 4.5 + 2.5 * t),
                      markerfacecolor="none", markeredgewidth=1.5, linewidth=1.4 + 1.8 * t,
                      color=colours[t], linestyle=_LINE_STYLES[h % len(_LINE_STYLES)],
                      zorder=3 + count - t, label=plot_text(f"{head}, eps {threshold.eps:g}"))
    if log_scale is None:
        log_scale = bool(positive) and max(positive) / min(positive) > 100.0
    if log_scale:
        axes.set_yscale("log")
    axes.set_xlabel(report.x_label)
    axes.set_ylabel("unique prototypes (% of K)")
    axes.set_title(f"Prototype utilization over training ({report.method}, {report.network})")
    axes.grid(True, alpha=0.3)
    if not report.by_epoch and report.entries:
        axes.set_xticks(x, [plot_text(_short(e.path)) for e in report.entries], rotation=30,
                        ha="right")
    if axes.lines:
        axes.legend(fontsize="small", ncols=2 if len(axes.lines) > 6 else 1)
    return figure


def _short(path: str) -> str:
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    return name if len(name) <= 24 else name[:21] + "..."
