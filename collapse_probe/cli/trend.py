"""``collapse-probe trend``: audit a run's checkpoints in epoch order; table, plot, CSV, JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ..errors import OutputError
from .common import atomic_write, run_command, status_line, stdout_console
from .options import (Cosine, Eps, Format, Key, Method, MethodOption, Network, NetworkOption,
                      Quiet, Trust, read_options)

__all__ = ["register", "write_trend_outputs", "TREND_FILES"]

#: The files ``trend`` (and ``watch`` when it stops) write into ``--out``.
TREND_FILES: tuple[str, ...] = ("trend.png", "trend.csv", "trend.json")


def check_trend_folder(out: Path) -> None:
    """Refuse an ``--out`` that is a file, before anything is computed."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"cannot write into {out}: it is a file, not a folder; choose a folder "
                          "for trend.png, trend.csv and trend.json.")


def write_trend_outputs(report: Any, out: Path) -> list[Path]:
    """Write the plot, CSV and JSON of ``report`` into ``out`` (atomically); return their paths."""
    from ..runs import trend_figure, trend_to_csv, trend_to_json

    from ..output import open_output

    out = Path(out)
    png, csv_path, json_path = (out / name for name in TREND_FILES)
    check_trend_folder(out)
    figure = trend_figure(report)
    with open_output(png) as handle:
        figure.savefig(handle, format="png", dpi=120)
    atomic_write(csv_path, trend_to_csv(report))
    atomic_write(json_path, trend_to_json(report))
    return [png, csv_path, json_path]


def wrote_line(written: list[Path], out: Path) -> str:
    """What was written and where: the default folder is relative to the working directory."""
    from ..escape import terminal

    # Paths may carry names from files: shown as text, without control sequences.
    return terminal(f"wrote {', '.join(str(p) for p in written)} (in {out.resolve()}; "
                    "--out picks another folder)")


def trend_command(
    inputs: list[str] = typer.Argument(..., metavar="DIR_OR_FILES...",
                                       help="A training output folder and/or checkpoint files."),
    out: Path = typer.Option(Path("collapse-probe-trend"), "--out",
                             help="Folder for trend.png, trend.csv and trend.json."),
    eps: Eps = None,
    cosine: Cosine = None,
    method: MethodOption = Method.components,
    network: NetworkOption = Network.teacher,
    checkpoint_format: Format = None,
    key: Key = None,
    trust_checkpoint: Trust = False,
    quiet: Quiet = False,
) -> None:
    """Audit the checkpoints of a training run in epoch order and plot utilization over epochs.

    Order: the checkpoint's `epoch` entry, else the number in its name (checkpoint0040.pth);
    checkpoint.pth (the latest state) last on ties; files without an epoch in the given order.
    """

    def body() -> int:
        from ..output import refuse_overwriting_inputs
        from ..runs import trend
        from ..runs.ordering import expand_inputs

        check_trend_folder(out)
        refuse_overwriting_inputs([(f"--out {out}: its", out / name) for name in TREND_FILES],
                                  [("the checkpoint", p) for p in expand_inputs(inputs)])
        from .render import render_trend

        with status_line(quiet, "auditing") as progress:
            report = trend(inputs, eps=eps or None, cosine=cosine or None, method=method.value,
                           read=read_options(checkpoint_format=checkpoint_format, network=network,
                                             key=key, trust=trust_checkpoint),
                           progress=progress)
        console = stdout_console()
        console.print(render_trend(report))
        written = write_trend_outputs(report, out)
        console.print(wrote_line(written, out), highlight=False, markup=False)
        return 0

    run_command(body)


def register(app: typer.Typer) -> None:
    app.command("trend")(trend_command)
