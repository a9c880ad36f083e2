"""``collapse-probe trend``: audit a run's checkpoints in epoch order; table, plot, CSV, JSON."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from .audit import Method, Network
from .common import atomic_path, atomic_write, run_command, stderr_console, stdout_console

__all__ = ["register", "write_trend_outputs", "TREND_FILES"]

#: The files ``trend`` (and ``watch`` when it stops) write into ``--out``.
TREND_FILES: tuple[str, ...] = ("trend.png", "trend.csv", "trend.json")


def write_trend_outputs(report: Any, out: Path) -> list[Path]:
    """Write the plot, CSV and JSON of ``report`` into ``out`` (atomically); return their paths."""
    from ..trend import trend_figure, trend_to_csv, trend_to_json

    out = Path(out)
    png, csv_path, json_path = (out / name for name in TREND_FILES)
    figure = trend_figure(report)
    with atomic_path(png) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    atomic_write(csv_path, trend_to_csv(report))
    atomic_write(json_path, trend_to_json(report))
    return [png, csv_path, json_path]


def trend_command(
    inputs: list[str] = typer.Argument(..., metavar="DIR_OR_FILES...",
                                       help="A training output folder and/or checkpoint files."),
    out: Path = typer.Option(Path("collapse-probe-trend"), "--out",
                             help="Folder for trend.png, trend.csv and trend.json."),
    eps: Optional[list[float]] = typer.Option(
        None, "--eps", help="Distance threshold on unit vectors (repeatable). "
        "Default sweep: 0.025 0.05 0.1 0.25 0.5."),
    cosine: Optional[list[float]] = typer.Option(
        None, "--cosine", help="Cosine threshold (repeatable); cos = 1 - eps^2/2."),
    method: Method = typer.Option(Method.components, "--method",
                                  help="components: single linkage at eps; greedy: eps-net in index order."),
    network: Network = typer.Option(Network.teacher, "--network", help="Which network's head to read."),
    format: Optional[str] = typer.Option(None, "--format", help="Checkpoint format; auto-detected by default."),  # noqa: A002
    key: Optional[str] = typer.Option(None, "--key", help="Explicit key path of the prototype tensor."),
    trust_checkpoint: bool = typer.Option(
        False, "--trust-checkpoint",
        help="Allow arbitrary pickled code in the files. Only for files from a source you trust."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress messages."),
) -> None:
    """Audit the checkpoints of a training run in epoch order and plot utilization over epochs.

    Order: the checkpoint's `epoch` entry, else the number in its name (checkpoint0040.pth);
    checkpoint.pth (the latest state) last on ties; files without an epoch in the given order.
    """

    def body() -> int:
        from ..trend import trend
        from ..trend.terminal import render_trend

        err = stderr_console()
        status = err.status("auditing") if (not quiet and err.is_terminal) else None
        if status is not None:
            status.start()
        try:
            report = trend(inputs, eps=eps or None, cosine=cosine or None, method=method.value,
                           network=network.value, format=format, key=key, trust=trust_checkpoint,
                           progress=(status.update if status is not None else None))
        finally:
            if status is not None:
                status.stop()
        console = stdout_console()
        console.print(render_trend(report))
        written = write_trend_outputs(report, out)
        console.print(f"wrote {', '.join(str(p) for p in written)}", highlight=False)
        return 0

    code = run_command(body)
    sys.stdout.flush()
    raise typer.Exit(code=code)


def register(app: typer.Typer) -> None:
    app.command("trend")(trend_command)
