"""``collapse-probe log``: read a DINO / iBOT log.txt and flag a loss plateau at ln(K)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import run_command, stdout_console

__all__ = ["register"]


def log_command(
    log_file: Path = typer.Argument(..., metavar="LOG",
                                    help="The run's log.txt (JSON lines), or its output folder."),
    num_prototypes: Optional[int] = typer.Option(
        None, "--num-prototypes", "-k", metavar="K",
        help="K, the number of prototypes. Default: args.out_dim of a checkpoint beside the log."),
    num_patch_prototypes: Optional[int] = typer.Option(
        None, "--num-patch-prototypes", metavar="K",
        help="iBOT patch-head K. Default: args.patch_out_dim, else K."),
    tolerance: float = typer.Option(0.05, "--tolerance", metavar="NATS",
                                    help="A loss this close to ln(K) counts as at ln(K)."),
    window: int = typer.Option(5, "--window", metavar="EPOCHS",
                               help="Epochs at the end of the log that must all be at ln(K)."),
    rows: int = typer.Option(20, "--rows", help="Show the last ROWS epochs (0: all)."),
) -> None:
    """Flag full collapse in a training log: the loss stuck at ln(K).

    A diagnostic: the exit code is 0 whatever the verdict (2 for unreadable input). Partial
    collapse does not show in the loss; audit the checkpoints (trend, watch) for that.
    """

    def body() -> int:
        from rich.table import Table
        from rich.text import Text

        from ..errors import InputError
        from ..runs import detect_plateau, prototypes_from_run, read_training_log

        log_path = log_file / "log.txt" if log_file.is_dir() else log_file
        training_log = read_training_log(log_path)
        k, patch_k, k_source = num_prototypes, num_patch_prototypes, "--num-prototypes"
        if k is None:
            problems: list[str] = []
            found = prototypes_from_run(log_path.parent, problems=problems)
            if found is None and problems:
                raise InputError(f"K unknown: the checkpoint beside {log_path} could not be read "
                                 f"({problems[0]}); pass --num-prototypes K.")
            if found is None:
                raise InputError(f"K unknown: no checkpoint beside {log_path} records args.out_dim; "
                                 "pass --num-prototypes K.")
            k, found_patch = found
            patch_k = patch_k if patch_k is not None else found_patch
            k_source = "args.out_dim of a checkpoint beside the log"
        verdict = detect_plateau(training_log, num_prototypes=k, num_patch_prototypes=patch_k,
                                 tolerance=tolerance, window=window)

        console = stdout_console()
        names = [c.loss for c in verdict.checks]
        shown = [e for e in training_log.entries if all(n in e.losses for n in names)]
        hidden = 0
        if rows > 0 and len(shown) > rows:
            hidden, shown = len(shown) - rows, shown[-rows:]
        from ..escape import terminal, terminal_markup

        logged = len(training_log.entries)
        console.print(f"{terminal(log_path)}: {training_log.kind} log, {logged} "
                      f"epoch{'s' * (logged != 1)}, K = {k} from {terminal(k_source)}",
                      highlight=False, markup=False)
        table = Table()
        table.add_column("epoch", justify="right")
        for check in verdict.checks:
            table.add_column(terminal_markup(check.loss), justify="right")
            table.add_column(f"- ln({check.num_prototypes})", justify="right")
        for entry in shown:
            cells = []
            for check in verdict.checks:
                loss = entry.losses[check.loss]
                cells += [f"{loss:.4f}", f"{loss - check.level:+.4f}"]
            table.add_row(str(entry.epoch), *cells)
        if hidden:
            console.print(f"({hidden} earlier epoch{'s' * (hidden != 1)} not shown; --rows 0 shows all)",
                          highlight=False)
        console.print(table)
        style = "bold red" if verdict.collapsed else ("yellow" if not verdict.enough_epochs else "green")
        console.print(Text(f"verdict: {verdict.message}", style=style))
        return 0

    run_command(body)


def register(app: typer.Typer) -> None:
    app.command("log")(log_command)
