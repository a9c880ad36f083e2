"""The report's figures: pure functions that return matplotlib Figures.

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot, no global state, never
shown): save them with ``fig.savefig(path)`` (the Agg renderer for PNG), or display them in a
notebook. matplotlib is imported inside the functions. One palette (Okabe-Ito, colour-blind safe,
from :mod:`collapse_probe.style`) is used throughout: series colours in :data:`PALETTE`,
everything "other" in :data:`OTHER`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..types import DedupResult
from ..auditing.neighbours import NeighbourSimilarity, nearest_neighbour_similarity, random_nn_pdf
from ..auditing.records import AuditReport, HeadAudit
from ..style import OTHER, PALETTE, REFERENCE, log_ticks
from .summary import headline_result

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["PALETTE", "OTHER", "REFERENCE", "ReportFigure", "utilization_vs_eps",
           "group_sizes_by_rank", "nn_similarity_histogram", "pca_map", "norm_distribution",
           "report_figures", "checkpoint_label", "figure_bytes", "as_report_figures", "MAX_SCATTER_POINTS", "LABELLED_GROUPS"]

#: The PCA map draws at most this many prototypes (a seeded sample beyond; members of the
#: labelled groups are always drawn).
MAX_SCATTER_POINTS = 20000
#: The PCA map colours and labels this many largest groups.
LABELLED_GROUPS = 8


@dataclass(frozen=True, eq=False)
class ReportFigure:
    """One figure of a report.

    Attributes:
        name: file stem (``utilization_vs_eps``, ``<checkpoint>_<head>_pca``, ...).
        title: a short human title.
        figure: the matplotlib Figure.
        checkpoint: index into ``report.checkpoints``; None for report-wide figures.
        head: the head's name; None for report-wide figures.
    """

    name: str
    title: str
    figure: Figure
    checkpoint: int | None = None
    head: str | None = None


def _figure(width: float = 7.5, height: float = 4.6) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _style(ax: Axes) -> None:
    ax.grid(True, which="major", color="#E4E4E4", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _series(i: int) -> dict[str, object]:
    """Colour, hollow marker and line style of series ``i``: overlapping series stay visible."""
    markers = ("o", "s", "^", "D", "v", "P", "X", "*")
    styles = ("-", "--", "-.", ":")
    return {"color": PALETTE[i % len(PALETTE)], "marker": markers[i % len(markers)],
            "linestyle": styles[(i // len(PALETTE)) % len(styles)], "markerfacecolor": "none",
            "markeredgewidth": 1.5}


def _finish(fig: Figure, heading: str, **legend: object) -> None:
    """Figure title on top, legend below the axes (never over the data or the title)."""
    from ..escape import plot_text

    # Headings and labels carry names from files: never parsed as mathtext.
    fig.suptitle(plot_text(heading), x=0.01, ha="left", fontsize="large")
    handles = [handle for ax in fig.axes for handle in ax.get_legend_handles_labels()[0]]
    labels = [label for ax in fig.axes for label in ax.get_legend_handles_labels()[1]]
    if labels:
        longest = max(len(line) for label in labels for line in label.split("\n"))
        columns = 3 if longest <= 28 else 2 if longest <= 48 else 1
        fig.legend(handles, ["\n".join(plot_text(line) for line in label.split("\n"))
                             for label in labels],
                   loc="outside lower center", frameon=False, fontsize="small",
                   ncols=min(columns, len(labels)), **legend)


def _short(source: str) -> str:
    name = Path(source).name if ("/" in source or "\\" in source) else source
    return name or source


def checkpoint_label(report: AuditReport, index: int) -> str:
    """A short name for checkpoint ``index``: its file name, numbered when names repeat."""
    names = [_short(c.source).strip("<>") for c in report.checkpoints]
    name = names[index]
    return f"{name} #{index + 1}" if names.count(name) > 1 else name


def utilization_vs_eps(report: AuditReport, *, labels: Sequence[str] | None = None) -> Figure:
    """Unique fraction against the duplicate threshold, one line per head of every checkpoint.

    x: eps (log scale); y: utilization in % of K (log scale, labelled at 1-2-5 steps so 45 %
    reads). With a gate, its floor and threshold are drawn as dotted lines. ``labels``: one
    legend name per checkpoint (e.g. the method) instead of its file name.
    """
    if labels is not None and len(labels) != len(report.checkpoints):
        from ..validation import fail

        raise fail("labels", expected=f"one per checkpoint ({len(report.checkpoints)})",
                   got=f"{len(labels)}")
    from matplotlib.ticker import FixedLocator, NullLocator

    fig = _figure(8.0, 4.8)
    ax = fig.add_subplot()
    _style(ax)
    many = len(report.checkpoints) > 1 or labels is not None
    lowest, i = 100.0, 0
    for c, checkpoint in enumerate(report.checkpoints):
        for head in checkpoint.heads:
            eps = [r.eps for r in head.results]
            util = [100.0 * r.utilization for r in head.results]
            lowest = min(lowest, *util)
            name = labels[c] if labels is not None else checkpoint_label(report, c)
            label = f"{name} / {head.name}" if many else head.name
            label += f" (K={head.num_prototypes})"
            ax.plot(eps, util, markersize=7, linewidth=1.6, label=label, **_series(i))
            i += 1
    gate = report.gate
    if gate is not None:
        ax.axhline(100.0 * max(gate.fail_under, 1e-9), color=REFERENCE, linestyle=":", linewidth=1.2,
                   label=f"gate floor {100 * gate.fail_under:g} % at eps {gate.eps:g}")
        ax.axvline(gate.eps, color=REFERENCE, linestyle=":", linewidth=1.0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks = [t.eps for t in report.thresholds]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    bottom = 10.0 ** np.floor(np.log10(max(lowest, 1e-4)) - 1e-9)
    ax.set_ylim(bottom, 150.0)
    # 1-2-5 steps while they stay few; over many decades only 1 and 3 per decade
    log_ticks(ax.yaxis, bottom, 100.0, suffix=" %", steps=(1, 2, 5) if bottom >= 0.1 else (1, 3))
    if ticks:
        ax.set_xlim(min(ticks) / 1.3, max(ticks) * 1.3)
    ax.set_xlabel("duplicate threshold eps (distance between unit prototypes; cos > 1 - eps²/2)")
    ax.set_ylabel("unique prototypes (% of K)")
    _finish(fig, f"Unique prototypes vs duplicate threshold ({report.method})")
    return fig


def group_sizes_by_rank(head: HeadAudit) -> Figure:
    """Group sizes sorted largest first, against their rank, log-log: one line per threshold.

    A collapsed head shows a few huge groups and a long tail of small ones; a healthy head a flat
    line at size 1.
    """
    fig = _figure()
    ax = fig.add_subplot()
    _style(ax)
    # Thresholds that give the very same sizes share one line (and one legend entry).
    lines: list[tuple[np.ndarray, list[float]]] = []
    for result in head.results:
        sizes = np.sort(result.group_sizes)[::-1]
        if lines and np.array_equal(lines[-1][0], sizes):
            lines[-1][1].append(result.eps)
        else:
            lines.append((sizes, [result.eps]))
    largest = max(int(sizes[0]) for sizes, _ in lines)
    for i, (sizes, eps) in enumerate(lines):
        style = _series(i)
        if sizes.size > 30:
            style["marker"] = None
        ranks = np.arange(1, sizes.size + 1)
        label = "eps " + ", ".join(f"{e:g}" for e in eps)
        ax.plot(ranks, sizes, drawstyle="steps-post", linewidth=1.8, markersize=5,
                label=f"{label}: {sizes.size} group{'s' * (sizes.size != 1)}, largest {int(sizes[0])}",
                **style)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(0.8, head.num_prototypes * 1.25)
    ax.set_ylim(0.8, largest * 1.6)
    log_ticks(ax.xaxis, 1, head.num_prototypes, steps=(1,) if head.num_prototypes > 1000 else (1, 2, 5))
    # Small groups (a flat head): every whole size is labelled, so a group of 3 can be read.
    log_ticks(ax.yaxis, 1, max(largest, 2), steps=tuple(range(1, 10)) if largest < 10 else (1, 2, 5))
    ax.set_xlabel("group rank (1 = largest group)")
    ax.set_ylabel("group size (prototypes)")
    _finish(fig, f"Duplicate group sizes by rank: {head.name} (K={head.num_prototypes})")
    return fig


def nn_similarity_histogram(head: HeadAudit, *, neighbours: NeighbourSimilarity | None = None,
                            bins: int = 60) -> Figure:
    """Histogram of each prototype's cosine similarity to its nearest other prototype.

    The dashed curve is the exact law for K random unit vectors in D dimensions (an untrained
    head, see :func:`~collapse_probe.auditing.neighbours.random_nn_cdf`); dotted lines mark the
    duplicate thresholds. Up to K = 16384 every prototype is searched exactly (faiss
    ``IndexFlatIP``, k = 2); beyond, a seeded sample of anchors against all K (said in the title).
    y is logarithmic: duplicates pile up at 1 by the thousand.
    """
    neighbours = neighbours or head.neighbours or nearest_neighbour_similarity(head.prototypes)
    sims = neighbours.similarities
    num, dim = head.num_prototypes, head.dim
    fig = _figure()
    ax = fig.add_subplot()
    _style(ax)
    lo = float(sims.min())
    grid = np.linspace(-1.0, 1.0, 4001)
    reference = random_nn_pdf(grid, num_prototypes=num, dim=dim) if dim >= 2 else np.zeros_like(grid)
    if reference.max() > 0:
        mass = np.cumsum(reference) / reference.sum()
        lo = min(lo, float(grid[np.searchsorted(mass, 1e-4)]))
    lo = max(-1.0, lo - 0.02)
    edges = np.linspace(lo, 1.0 + 1e-9, bins + 1)
    counts, _ = np.histogram(sims, bins=edges)
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=PALETTE[0],
           edgecolor="white", linewidth=0.3, label=f"prototypes ({sims.size} searched)")
    if reference.max() > 0:
        inside = grid >= lo
        expected = reference[inside] * sims.size * (edges[1] - edges[0])
        ax.plot(grid[inside], expected, color=REFERENCE, linestyle="--", linewidth=1.4,
                label="random unit vectors, same K and D\n(an untrained head)")
    if head.results:
        # One threshold (the verdict's): the sweep's lines would all crowd into the last bin.
        result = headline_result(head)
        above = int(np.count_nonzero(sims > result.cosine))
        ax.axvline(result.cosine, color=PALETTE[3], linestyle=":", linewidth=1.4,
                   label=f"duplicate threshold eps {result.eps:g} (cos > {result.cosine:.6g}):\n"
                         f"{above} of {sims.size} searched have a duplicate")
    ax.set_yscale("log")
    ax.set_ylim(0.7, max(float(counts.max()), 1.0) * 2.0)
    top = max(float(counts.max()), 2.0)
    log_ticks(ax.yaxis, 1, top, steps=(1,) if top > 1000 else (1, 2, 5) if top <= 100 else (1, 3))
    ax.set_xlim(lo, 1.005)
    ax.set_xlabel("cosine similarity to the nearest other prototype")
    ax.set_ylabel("prototypes per bin")
    sampled = "" if neighbours.exact else (
        f"; {neighbours.num_anchors} of {num} sampled (seed {neighbours.seed})")
    _finish(fig, f"Nearest-neighbour similarity: {head.name} (K={num}, D={dim}{sampled})")
    return fig


def pca_map(head: HeadAudit, result: DedupResult | None = None, *, seed: int = 0) -> Figure:
    """2-D PCA of the prototype directions, coloured by duplicate group.

    The :data:`LABELLED_GROUPS` largest groups with at least two members get a colour, a ring
    whose area grows with the group's size and a label; every other prototype is grey. A group
    of exact duplicates is one point on the map: the ring shows how many sit there.

    Args:
        head: the head.
        result: the grouping to colour by; default the result at the verdict's eps (0.025).
        seed: seed of the point sample when K exceeds :data:`MAX_SCATTER_POINTS`.
    """
    result = result or headline_result(head)
    vectors = np.asarray(head.prototypes.vectors, dtype=np.float64)
    centred = vectors - vectors.mean(axis=0)
    # Principal axes from the D x D covariance: cheap for any K.
    cov = centred.T @ centred / max(1, centred.shape[0] - 1)
    values, axes = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1][:2]
    if order.size < 2:
        order = np.array([order[0], order[0]])
    coords = centred @ axes[:, order]
    explained = values[order] / max(values.sum(), 1e-300)

    groups = [g for g in result.largest_groups(LABELLED_GROUPS) if g.size > 1]
    highlighted = np.zeros(head.num_prototypes, dtype=bool)
    for group in groups:
        highlighted[list(group.members)] = True
    rest = np.flatnonzero(~highlighted)
    if rest.size > MAX_SCATTER_POINTS:
        rest = np.sort(np.random.default_rng(seed).choice(rest, MAX_SCATTER_POINTS, replace=False))

    fig = _figure(8.0, 6.0)
    ax = fig.add_subplot()
    _style(ax)
    if rest.size:
        ax.scatter(coords[rest, 0], coords[rest, 1], s=6, color=OTHER, linewidths=0, rasterized=True,
                   label="other prototypes" if groups else "prototypes (no duplicates at this eps)")
    biggest = groups[0].size if groups else 1
    for i, group in enumerate(groups):
        members = np.asarray(group.members)
        colour = PALETTE[i % len(PALETTE)]
        centre = coords[members].mean(axis=0)
        ax.scatter(coords[members, 0], coords[members, 1], s=10, color=colour, linewidths=0,
                   rasterized=True)
        ax.scatter([centre[0]], [centre[1]], s=60 + 900 * group.size / biggest, facecolors="none",
                   edgecolors=colour, linewidths=1.6, label=f"group {i + 1}: {group.size} prototypes")
        ax.annotate(f"{i + 1}", centre, xytext=(6, 6), textcoords="offset points", color=colour,
                    fontsize=10, fontweight="bold")
    ax.set_xlabel(f"PC 1 ({100 * explained[0]:.1f} % of variance)")
    ax.set_ylabel(f"PC 2 ({100 * explained[1]:.1f} % of variance)")
    ax.set_aspect("equal", adjustable="datalim")
    drawn = rest.size + int(highlighted.sum())
    sample = "" if drawn >= head.num_prototypes else f", {drawn} of {head.num_prototypes} drawn"
    _finish(fig, f"Prototype map (PCA): {head.name}, {result.unique} group{'s' * (result.unique != 1)} "
                 f"at eps {result.eps:g}"
                 f"{sample}", title="largest groups" if groups else None, markerscale=0.5)
    return fig


def norm_distribution(head: HeadAudit, *, bins: int = 50) -> Figure:
    """Histogram of the prototypes' row norms (after weight norm).

    For DINO-vMF heads the norm is the vMF concentration (up to the temperature); heads with weight
    norm and g fixed at 1 have every norm at 1, shown as a single bar with a note (norms equal to
    4 significant digits count as equal).
    """
    norms = np.asarray(head.prototypes.norms, dtype=np.float64)
    fig = _figure()
    ax = fig.add_subplot()
    _style(ax)
    lo, hi, mean = float(norms.min()), float(norms.max()), float(norms.mean())
    # Norms equal to 4 significant digits are one bar: float rounding is not a distribution.
    flat = hi - lo <= 1e-4 * max(abs(hi), 1e-12)
    if flat:
        scale = max(abs(mean), 1e-3)
        edges = np.array([mean - 0.01 * scale, mean + 0.01 * scale])  # one narrow bar
    else:
        edges = np.linspace(lo, hi, bins + 1)
    ax.hist(norms, bins=edges, color=PALETTE[2], edgecolor="white", linewidth=0.3,
            label=f"prototypes (min {lo:.4g}, max {hi:.4g})")
    ax.axvline(mean, color=REFERENCE, linestyle="--", linewidth=1.2, label=f"mean {mean:.4g}")
    if flat:
        spread = "" if hi == lo else f" (all within {hi - lo:.1g})"
        ax.text(0.02, 0.95, f"every norm is {mean:.4g}{spread}", transform=ax.transAxes, va="top",
                fontsize="small", color=REFERENCE)
    if flat:
        ax.set_xlim(mean - 0.1 * scale, mean + 0.1 * scale)
    ax.set_xlabel("row norm ||w_k|| after weight norm (DINO-vMF: concentration)")
    ax.set_ylabel("prototypes per bin")
    _finish(fig, f"Prototype norms: {head.name} (K={head.num_prototypes})")
    return fig


def as_report_figures(figures: Sequence[ReportFigure] | Mapping[str, Figure]) -> tuple[ReportFigure, ...]:
    """Accept ReportFigures, or a plain ``{name: Figure}`` mapping (shown report-wide, titled by
    each figure's suptitle or its name)."""
    if isinstance(figures, Mapping):
        return tuple(ReportFigure(name, (fig.get_suptitle() or name), fig)
                     for name, fig in figures.items())
    return tuple(figures)


def figure_bytes(figure: Figure, fmt: str = "png", *, dpi: int = 110) -> bytes:
    """``figure`` rendered as PNG or SVG bytes, reproducibly (no timestamps, fixed SVG ids)."""
    import io

    import matplotlib

    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "collapse-probe", "svg.fonttype": "path"}):
        figure.savefig(buffer, format=fmt, dpi=dpi, metadata=metadata)
    return buffer.getvalue()


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "x"


def report_figures(report: AuditReport, *, heads: Sequence[str] | None = None) -> tuple[ReportFigure, ...]:
    """Every figure of a report: the utilization sweep, then four figures per head.

    Args:
        report: the audit.
        heads: only these head names (all when None).

    Returns:
        ReportFigures with unique file stems: ``utilization_vs_eps`` and
        ``<checkpoint>_<head>_{group_sizes,nn_similarity,pca,norms}``.
    """
    out = [ReportFigure("utilization_vs_eps", "Unique prototypes vs duplicate threshold",
                        utilization_vs_eps(report))]
    seen: set[str] = set()
    for c, checkpoint in enumerate(report.checkpoints):
        for head in checkpoint.heads:
            if heads is not None and head.name not in heads:
                continue
            source = checkpoint_label(report, c)
            stem = _slug(f"{Path(source).stem if '/' not in checkpoint.source else source}_{head.name}")
            if stem in seen:
                stem = _slug(f"{c + 1}-{stem}")
            seen.add(stem)
            where = f"{source} / {head.name}"
            out += [
                ReportFigure(f"{stem}_group_sizes", f"Group sizes by rank: {where}",
                             group_sizes_by_rank(head), c, head.name),
                ReportFigure(f"{stem}_nn_similarity", f"Nearest-neighbour similarity: {where}",
                             nn_similarity_histogram(head), c, head.name),
                ReportFigure(f"{stem}_pca", f"Prototype map (PCA): {where}", pca_map(head), c,
                             head.name),
                ReportFigure(f"{stem}_norms", f"Prototype norms: {where}", norm_distribution(head),
                             c, head.name),
            ]
    return tuple(out)
