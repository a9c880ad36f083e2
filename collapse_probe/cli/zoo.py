"""``collapse-probe zoo list|fetch``: the public checkpoints with prototype heads."""

from __future__ import annotations

from typing import Optional

import typer

from .common import progress_bar, run_command, stdout_console
from .options import CacheDir

__all__ = ["register"]

zoo_app = typer.Typer(name="zoo", help="Public checkpoints with prototype heads: list and download.",
                      no_args_is_help=True, add_completion=False)


@zoo_app.command("list")
def list_command(cache_dir: CacheDir = None) -> None:
    """List the known checkpoints: family, architecture, K, size, the paper's unique count,
    how a download is verified, cached?

    verified: sha256 (full checksum and size recorded), size (size and a checksum prefix), or
    structure (no published checksum: only that the file is a complete PyTorch checkpoint).
    """

    def body() -> None:
        from rich.table import Table

        from ..zoo import ZOO, cached_path

        table = Table(show_edge=False, header_style="bold")
        for column, justify in (("name", "left"), ("family", "left"), ("arch", "left"),
                                ("dataset", "left"), ("K", "right"), ("size", "right"),
                                ("paper unique", "right"), ("verified", "left"),
                                ("cached", "left")):
            table.add_column(column, justify=justify, no_wrap=column == "name")  # type: ignore[arg-type]
        for entry in ZOO.values():
            size = "-" if entry.size_bytes is None else f"{entry.size_bytes / 1e6:.0f} MB"
            unique = "-" if entry.paper_unique is None else str(entry.paper_unique)
            cached = "yes" if cached_path(entry.name, cache_dir=cache_dir) else (
                "needs --url" if entry.url is None else "no")
            table.add_row(entry.name, entry.family, entry.arch, entry.dataset,
                          str(entry.num_prototypes), size, unique, entry.verification, cached)
        stdout_console().print(table)

    run_command(body)


@zoo_app.command("fetch")
def fetch_command(
    name: str = typer.Argument(..., help="A zoo name (see `collapse-probe zoo list`)."),
    url: Optional[str] = typer.Option(None, "--url", help="Download from this URL instead "
                                      "(EsViT's signed URLs, mirrors)."),
    cache_dir: CacheDir = None,
) -> None:
    """Download a checkpoint into the cache (once), verify it, and print its path."""

    def body() -> None:
        from ..zoo import fetch

        with progress_bar(f"fetching {name}", quiet=False) as update:
            path = fetch(name, cache_dir=cache_dir, url=url, progress=update)
        typer.echo(str(path))

    run_command(body)


def register(app: typer.Typer) -> None:
    app.add_typer(zoo_app, name="zoo")
