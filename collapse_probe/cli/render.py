"""What the commands show on the terminal, as rich renderables: an audit (one table per
checkpoint), a trend, a checkpoint's heads (``inspect``) and a usage report. rich is imported
inside the functions, so the CLI starts fast."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..escape import terminal, terminal_markup

if TYPE_CHECKING:
    from rich.console import RenderableType

    from ..auditing import AuditReport, CheckpointAudit
    from ..runs import TrendReport

__all__ = ["render_audit", "render_trend", "render_info", "render_usage", "render_finetune",
           "sparkline", "VERDICT_STYLES"]

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
        from ..auditing.verdicts import VERDICT_NOTE

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


def render_info(info) -> list:  # noqa: ANN001 - CheckpointInfo; rich imported lazily
    """Rich renderables for a CheckpointInfo: a title line, the heads table, what else is there."""
    from rich.table import Table
    from rich.text import Text

    esc = terminal_markup

    network = terminal(info.network or "-")
    title = Text.assemble((terminal(info.path), "bold"),
                          f"  format {terminal(info.format)}, network {network}, ",
                          _size(info.size_bytes))
    table = Table(show_edge=False, header_style="bold")
    for column, justify in (("head", "left"), ("K", "right"), ("D", "right"), ("form", "left"),
                            ("g all ones", "left"), ("norm range", "left"), ("shared with", "left"),
                            ("source keys", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for head in info.heads:
        gain = "-" if head.gain_all_ones is None else ("yes" if head.gain_all_ones else "no")
        table.add_row(esc(head.name), str(head.num_prototypes), str(head.dim), esc(head.form), gain,
                      f"{head.norm_min:.4g} .. {head.norm_max:.4g}",
                      esc(", ".join(head.shared_with) or "-"), esc(", ".join(head.source_keys)))
    lines: list = [title, table]
    if info.extras:
        extras = ", ".join(f"{n} {tuple(s)}" for n, s in info.extras.items())
        lines.append(Text("extras: " + terminal(extras)))
    if info.other_keys:
        lines.append(Text("other keys: " + terminal(", ".join(info.other_keys))))
    lines.extend(Text(f"note: {terminal(note)}") for note in info.notes)
    if info.replaced:
        lines.append(Text("not loaded (pickled classes replaced by inert placeholders; the heads do "
                          "not use them): " + terminal(", ".join(info.replaced))))
    return lines


def _size(num_bytes: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if num_bytes < 1000 or unit == "GB":
            return f"{num_bytes:.0f} {unit}" if unit == "B" else f"{num_bytes:.1f} {unit}"
        num_bytes /= 1000  # type: ignore[assignment]
    return ""


def _fmt_share(value: float) -> str:
    return f"{value:.2%}"


def render_usage(report: Any, *, checkpoint: str) -> list[Any]:
    """Rich renderables for a UsageReport: a proxy banner when relevant, a summary, top groups."""
    from rich.table import Table
    from rich.text import Text

    out: list[Any] = []
    if report.is_proxy:
        out.append(Text(
            f"PROXY, not a measurement: no --features given, so this is softmax(center / "
            f"{report.temperature:g}) of the checkpoint's teacher-logit running mean. "
            "Pass --features FILE for real usage.", style="bold yellow"))

    # escaped: file and head names may contain [brackets], which rich would read as markup
    title = terminal_markup(f"{'center proxy' if report.is_proxy else 'data usage'}: {checkpoint}, "
                            f"head {report.head}")
    summary = Table(title=title, show_header=False, title_justify="left")
    summary.add_column("statistic")
    summary.add_column("value", justify="right")
    summary.add_row("prototypes K", f"{report.num_prototypes}")
    if not report.is_proxy:
        summary.add_row(f"samples N ({report.space or 'embeddings'} space)", f"{report.num_samples}")
        summary.add_row("used (argmax of >= 1 sample)", f"{report.used} ({_fmt_share(report.used_fraction)})")
    summary.add_row(f"unique at eps {report.eps:g} ({report.method})",
                    f"{report.unique} ({_fmt_share(report.unique / report.num_prototypes)})")
    if not report.is_proxy:
        summary.add_row("used duplicate groups", f"{report.merged_used}")
    summary.add_row("usage entropy (nats)", f"{report.entropy:.4f}")
    summary.add_row("perplexity exp(H)", f"{report.perplexity:.1f}")
    summary.add_row("merged entropy (nats)", f"{report.merged_entropy:.4f}")
    summary.add_row("merged perplexity", f"{report.merged_perplexity:.1f}")
    largest = report.largest_group
    summary.add_row("largest duplicate group: size, share",
                    f"{largest.size}, {_fmt_share(largest.share)}")
    out.append(summary)
    if report.top_groups:
        top = Table(title="most-used duplicate groups", title_justify="left")
        for name, justify in (("rank", "right"), ("group", "right"), ("size", "right"),
                              ("share", "right"), ("members (sample)", "left")):
            top.add_column(name, justify=justify)
        for rank, group in enumerate(report.top_groups, 1):
            members = ", ".join(str(m) for m in group.members)
            if group.size > len(group.members):
                members += ", ..."
            top.add_row(str(rank), str(group.label), str(group.size), _fmt_share(group.share), members)
        out.append(top)
    return out


_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 60) -> str:
    """Values (NaN skipped) as a one-line bar chart of at most ``width`` characters."""
    finite = [v for v in values if v == v]
    if not finite:
        return ""
    step = max(1, -(-len(finite) // width))
    points = [sum(finite[i:i + step]) / len(finite[i:i + step]) for i in range(0, len(finite), step)]
    low, high = min(points), max(points)
    span = (high - low) or 1.0
    return "".join(_BARS[min(len(_BARS) - 1, int((p - low) / span * len(_BARS)))] for p in points)


def render_finetune(result: Any) -> list[Any]:
    """Rich renderables for a FinetuneResult: unique prototypes before and after for each network
    and threshold, the loss curves as sparklines, and what was written with which settings."""
    from rich.table import Table
    from rich.text import Text

    k = result.num_prototypes
    table = Table(title=f"{terminal_markup(result.format)} {terminal_markup(result.head)}: "
                  f"unique prototypes (of K = {k})")
    table.add_column("network")
    table.add_column("eps", justify="right")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    for network in result.unique_before:
        label = network if network in result.networks else f"{network} (not in the file)"
        for eps, before in result.unique_before[network].items():
            after = result.unique_after[network][eps]
            table.add_row(label, f"{eps:g}", f"{before} ({before / k:.1%})", f"{after} ({after / k:.1%})")
    out: list[Any] = [table]
    loss = result.loss
    out.append(Text(f"loss   {sparkline(list(loss[:, 0]))}  {loss[0, 0]:.4f} -> {loss[-1, 0]:.4f}"))
    koleo = [v for v in loss[:, 2] if v == v]
    if koleo:
        out.append(Text(f"koleo  {sparkline(list(loss[:, 2]))}  {koleo[0]:.4f} -> {koleo[-1]:.4f}"))
    settings = result.settings
    anchors = settings.get("koleo_anchors")
    search = "exact" if anchors is None else f"{anchors} sampled anchors"
    teacher = "" if settings.get("teacher") is None else (
        f", teacher {settings['teacher']}" + (f" (momentum from {settings['teacher_momentum']:g})"
                                              if settings["teacher"] == "ema" else ""))
    out.append(Text(f"wrote {terminal(result.out)} ({len(result.written_keys)} head tensors changed, "
                    f"koleo weight {settings['koleo_weight']:g}, {settings['steps']} steps, KoLeo "
                    f"{search} ({settings.get('koleo_anchors_choice', 'set')}){teacher})"))
    return out
