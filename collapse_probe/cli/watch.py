"""``collapse-probe watch``: follow a training folder, audit each checkpoint once it is complete."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from .common import run_command, stdout_console
from .options import (Cosine, Eps, Format, Key, Method, MethodOption, Network, NetworkOption, Trust,
                      read_options)

__all__ = ["register", "JSONL_NAME"]

#: The trend file (one audited checkpoint per line) ``watch`` appends to inside ``--out``.
JSONL_NAME = "trend.jsonl"


def watch_command(
    folder: Path = typer.Argument(..., metavar="DIR", help="The training output folder to follow."),
    interval: float = typer.Option(60.0, "--interval", metavar="SECONDS", help="Seconds between polls."),
    recursive: bool = typer.Option(False, "--recursive", "-r",
                                   help="Also watch subfolders (DINOv2: eval/training_<step>/)."),
    settle: float = typer.Option(0.0, "--settle", metavar="SECONDS",
                                 help="Extra seconds a file must stay unchanged before it is read."),
    out: Path = typer.Option(Path("collapse-probe-trend"), "--out",
                             help="Folder for trend.jsonl (appended) and, on exit, trend.png/csv/json."),
    eps: Eps = None,
    cosine: Cosine = None,
    method: MethodOption = Method.components,
    network: NetworkOption = Network.teacher,
    checkpoint_format: Format = None,
    key: Key = None,
    trust_checkpoint: Trust = False,
    max_polls: Optional[int] = typer.Option(None, "--max-polls", hidden=True,
                                            help="Stop after this many polls (for scripts and tests)."),
) -> None:
    """Follow a training output folder and audit each new checkpoint once it is completely written.

    A file is read when its size is unchanged across two polls and it loads; a half-written
    file is retried later. Stop with Ctrl-C: a summary is printed and the exit code is 0.
    """

    def body() -> int:
        from ..escape import terminal
        from ..runs import Watcher
        from .render import render_trend
        from .trend import check_trend_folder, write_trend_outputs, wrote_line

        check_trend_folder(out)
        console = stdout_console()

        announced: set[str] = set()

        def on_event(event) -> None:  # noqa: ANN001 - WatchEvent, imported lazily
            if event.kind == "new" and event.path not in announced:
                announced.add(event.path)
                console.print(f"found {terminal(event.path)}: waiting until it is completely "
                              "written", highlight=False, markup=False)
            if event.kind in ("audited", "failed"):
                label = "audited" if event.kind == "audited" else "FAILED"
                console.print(f"{label} {terminal(event.path)}: {terminal(event.message)}",
                              highlight=False, markup=False)
                sys.stdout.flush()

        read = read_options(checkpoint_format=checkpoint_format, network=network, key=key,
                            trust=trust_checkpoint)
        watcher = Watcher(folder, recursive=recursive, jsonl=out / JSONL_NAME, eps=eps or None,
                          cosine=cosine or None, method=method.value, read=read, interval=interval,
                          settle_s=settle, on_event=on_event)
        console.print(f"watching {folder} every {interval:g} s (Ctrl-C to stop); trend: "
                      f"{out / JSONL_NAME} (in {out.resolve()}; --out picks another folder)",
                      highlight=False)
        summary = watcher.run(max_polls=max_polls)
        console.print(f"{'interrupted' if summary.interrupted else 'stopped'} after "
                      f"{summary.polls} poll{'s' * (summary.polls != 1)}: {len(summary.audited)} "
                      f"checkpoint{'s' * (len(summary.audited) != 1)} audited, "
                      f"{len(summary.pending)} pending, {len(summary.failed)} failed.",
                      highlight=False)
        for path in summary.pending:
            console.print(f"pending (not complete or not readable yet): {terminal(path)}",
                          highlight=False, markup=False)
        for path, reason in summary.failed:
            console.print(f"failed: {terminal(path)}: {terminal(reason)}", highlight=False,
                          markup=False)
        if summary.report.entries:
            console.print(render_trend(summary.report))
            written = write_trend_outputs(summary.report, out)
            console.print(wrote_line(written, out), highlight=False, markup=False)
        return 0

    run_command(body)


def register(app: typer.Typer) -> None:
    app.command("watch")(watch_command)
