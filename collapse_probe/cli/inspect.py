"""``collapse-probe inspect``: what a checkpoint holds (format, heads, shapes, forms), nothing else."""

from __future__ import annotations

import json
from typing import Optional

import typer

from .common import run_command, stdout_console
from .render import render_info
from .options import CacheDir, Format, Key, Network, NetworkOption, Trust, read_options

__all__ = ["register"]


def inspect_command(
    source: str = typer.Argument(..., metavar="PATH_OR_NAME",
                                 help="A checkpoint file, a zoo name or a bundled example name."),
    checkpoint_format: Format = None,
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

        read = read_options(checkpoint_format=checkpoint_format, network=network, key=key,
                            trust=trust_checkpoint, cache_dir=cache_dir)
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


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect_command)
