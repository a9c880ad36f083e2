"""``collapse-probe inspect``: what a checkpoint holds (format, heads, shapes, forms), nothing else."""

from __future__ import annotations

import json
from typing import Optional

import typer

from .common import run_command, stdout_console
from .options import CacheDir, Format, Key, Network, NetworkOption, Trust, read_options

__all__ = ["register", "render_info"]


def inspect_command(
    source: str = typer.Argument(..., metavar="PATH_OR_NAME",
                                 help="A checkpoint file, a zoo name or a bundled example name."),
    format: Format = None,  # noqa: A002
    network: NetworkOption = Network.teacher,
    key: Key = None,
    trust_checkpoint: Trust = False,
    json_out: Optional[str] = typer.Option(None, "--json", metavar="FILE|-",
                                           help="Write the JSON to FILE, or - for stdout."),
    cache_dir: CacheDir = None,
) -> None:
    """Show the prototype heads a checkpoint holds: K, D, keys, weight-norm form, norm range."""

    def body() -> None:
        from ..checkpoints import inspect_checkpoint
        from ..sources import resolve_source
        from .common import atomic_write

        read = read_options(format=format, network=network, key=key, trust=trust_checkpoint,
                            cache_dir=cache_dir)
        path = resolve_source(source, cache_dir=read.cache_dir)
        info = inspect_checkpoint(path, read)
        if json_out == "-":  # stdout holds the JSON alone, so it stays parseable
            typer.echo(json.dumps(info.to_dict(), indent=2))
            return
        console = stdout_console()
        for renderable in render_info(info):
            console.print(renderable)
        if json_out is not None:
            atomic_write(json_out, json.dumps(info.to_dict(), indent=2) + "\n")

    run_command(body)


def render_info(info) -> list:  # noqa: ANN001 - CheckpointInfo; rich imported lazily
    """Rich renderables for a CheckpointInfo: a title line, the heads table, what else is there."""
    from rich.table import Table
    from rich.text import Text

    from ..escape import terminal, terminal_markup as esc

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


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect_command)
