"""Figures of a :class:`UsageReport`: pure functions returning matplotlib Figures.

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot state, no window,
rendered by Agg when saved), so they are safe in servers, tests and report renderers. The caller
saves them (``fig.savefig(path)``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..style import OTHER, PALETTE, REFERENCE, log_ticks
from .report import UsageReport

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["usage_figures", "usage_by_rank_figure", "used_vs_unique_figure"]


def _what(report: UsageReport) -> str:
    return "proxy mass, softmax(center / T)" if report.is_proxy else "share of samples"


def _details(report: UsageReport) -> str:
    source = f"center proxy, T = {report.temperature:g}" if report.is_proxy else f"N = {report.num_samples:,} samples"
    return f"head {report.head!r}, K = {report.num_prototypes:,}, {source}"


def _head(fig: Figure, ax: object, report: UsageReport, heading: str) -> None:
    """The heading as the figure's suptitle (what report renderers list), details as the axes title."""
    proxy = " (center proxy)" if report.is_proxy else ""
    from ..escape import plot_text

    fig.suptitle(plot_text(f"{heading}: {report.head}{proxy}"), x=0.01, ha="left", fontsize="large")
    ax.set_title(plot_text(_details(report)), fontsize=9, loc="left")  # type: ignore[attr-defined]


def usage_by_rank_figure(report: UsageReport) -> Figure:
    """Log-log share of the data (or proxy mass) by rank: per prototype and per duplicate group.

    A head that uses its prototypes evenly is a flat line at 1/K; duplicates that split mass keep
    the per-prototype curve flatter than the per-group curve.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 4.8), layout="constrained")
    ax = fig.add_subplot()
    mass = np.sort(np.asarray(report.mass, dtype=np.float64))[::-1]
    per_proto = mass[mass > 0]
    # The group curve is drawn dashed over a wider per-prototype line: without duplicates the
    # two coincide and both must stay visible.
    ax.plot(np.arange(1, per_proto.size + 1), per_proto, drawstyle="steps-post", color=PALETTE[0],
            linewidth=3.2, label=f"per prototype ({per_proto.size:,} with mass > 0)")
    groups = np.sort(np.asarray(report.group_mass, dtype=np.float64))[::-1]
    groups = groups[groups > 0]
    ax.plot(np.arange(1, groups.size + 1), groups, drawstyle="steps-post", color=PALETTE[3],
            linewidth=1.5, linestyle="--",
            label=f"per duplicate group at eps {report.eps:g} ({groups.size:,} group{'s' * (groups.size != 1)})")
    ax.axhline(1.0 / report.num_prototypes, color=REFERENCE, linestyle=":", linewidth=1.2,
               label=f"uniform over K (1/{report.num_prototypes:,})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    lowest = min(float(per_proto.min()) if per_proto.size else 1.0, 1.0 / report.num_prototypes)
    log_ticks(ax.xaxis, 1, max(per_proto.size, 2), steps=(1, 2, 5))
    log_ticks(ax.yaxis, lowest, max(float(mass.max()), lowest),
               steps=(1, 3) if lowest < 1e-4 else (1, 2, 5))
    ax.set_xlabel("rank (1 = most used; log scale)")
    ax.set_ylabel(f"{_what(report)} (log scale)")
    _head(fig, ax, report, "Usage by rank")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    return fig


def used_vs_unique_figure(report: UsageReport) -> Figure:
    """Bars: K, unique at eps, used, used groups, perplexity, merged perplexity (log scale)."""
    from matplotlib.figure import Figure

    bars: list[tuple[str, float | None, str]] = [
        ("prototypes\nK", report.num_prototypes, OTHER),
        (f"unique at\neps {report.eps:g}", report.unique, PALETTE[0]),
        ("used\n(by data)", report.used, PALETTE[2]),
        ("used dup.\ngroups", report.merged_used, PALETTE[2]),
        ("perplexity\nexp(H)", report.perplexity, PALETTE[1]),
        ("merged\nperplexity", report.merged_perplexity, PALETTE[3]),
    ]
    fig = Figure(figsize=(7.5, 5.4), layout="constrained")
    ax = fig.add_subplot()
    positions = np.arange(len(bars))
    for x, (label, value, color) in zip(positions, bars):
        if value is None:
            ax.text(x, 1.0, "n/a\n(proxy)", ha="center", va="bottom", fontsize=8, color="#555555")
            continue
        ax.bar(x, value, color=color, width=0.7)
        ax.text(x, value * 1.08, f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}",
                ha="center", va="bottom", fontsize=8)
    ax.set_xticks(positions, [b[0] for b in bars], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylim(0.8, report.num_prototypes * 4.0)
    log_ticks(ax.yaxis, 1, report.num_prototypes * 4.0,
               steps=(1,) if report.num_prototypes > 1e4 else (1, 2, 5))
    ax.set_ylabel("number of prototypes or groups (log scale)")
    _head(fig, ax, report, "Prototypes available, unique, used, effective")
    from matplotlib.patches import Patch

    kind = "proxy" if report.is_proxy else "data"
    ax.legend(handles=[Patch(color=OTHER, label="head size"),
                       Patch(color=PALETTE[0], label="weight space: duplicate groups"),
                       Patch(color=PALETTE[2], label="data: counts"),
                       Patch(color=PALETTE[1], label=f"{kind}: effective number"),
                       Patch(color=PALETTE[3], label=f"{kind}: effective number, duplicates merged")],
              loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=8, frameon=False)
    ax.grid(True, axis="y", which="major", alpha=0.3)
    return fig


def usage_figures(report: UsageReport) -> dict[str, Figure]:
    """All usage figures of a report, by name: ``usage_by_rank`` and ``used_vs_unique``."""
    return {"usage_by_rank": usage_by_rank_figure(report),
            "used_vs_unique": used_vs_unique_figure(report)}
