"""``collapse-probe gate``: the CI gate configured in pyproject.toml ``[tool.collapse-probe]``."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from .common import atomic_write, run_command, status_line, stdout_console

__all__ = ["register"]


def gate_command(
    config: Optional[Path] = typer.Option(
        None, "--config", metavar="FILE",
        help="A pyproject.toml (its \\[tool.collapse-probe] table) or a standalone TOML file. "
        "Default: ./pyproject.toml."),
    junit_xml: Optional[Path] = typer.Option(
        None, "--junit-xml", metavar="FILE",
        help="Also write a JUnit XML file: one testcase per checkpoint x head."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress messages."),
) -> None:
    """Fail a CI job when any head's unique-prototype fraction is below its floor.

    Exit 0: every gated head passed; 1: a head is below its floor, or a checkpoint is missing,
    unreadable, a glob matched nothing, or a configured head exists in no checkpoint;
    2: the configuration is invalid. Under GitHub Actions (GITHUB_ACTIONS=true) failures are
    also printed as ::error annotations and a table is appended to $GITHUB_STEP_SUMMARY.
    """

    def body() -> int:
        from ..escape import terminal_markup
        from ..gate import (gate_to_junit, github_annotations, github_summary, in_github_actions,
                            load_gate_config, run_gate)

        from ..gate.run import checkpoint_files
        from ..output import refuse_overwriting_inputs

        gate_config = load_gate_config(config)
        refuse_overwriting_inputs(
            {"--junit-xml": junit_xml},
            [("the configuration", gate_config.source or None)]
            + [("the checkpoint", p) for p in checkpoint_files(gate_config)])
        started = time.perf_counter()
        with status_line(quiet, "gate") as progress:
            outcome = run_gate(gate_config, progress=progress)
        elapsed = time.perf_counter() - started

        console = stdout_console()
        marks = {"passed": "[green]PASS[/green]", "failed": "[bold red]FAIL[/bold red]",
                 "not-gated": "[dim]----[/dim]"}
        for check in outcome.checks:
            where = check.checkpoint + (f" / {check.head}" if check.head else "")
            # Names from files: shown as text on one line (under GitHub Actions a line of
            # their own would run as a workflow command).
            console.print(f"{marks[check.status]} {terminal_markup(where)}: "
                          f"{terminal_markup(check.message)}", highlight=False, markup=True)
        if outcome.passed:
            count = len(outcome.checks)
            console.print(f"[bold green]gate passed[/bold green]: {count} check{'s' * (count != 1)}, "
                          f"eps {gate_config.eps:g}", highlight=False)
        else:
            reason = (f"{len(outcome.failures)} of {len(outcome.checks)} "
                      f"check{'s' * (len(outcome.checks) != 1)} failed"
                      if outcome.failures else "no gated head was measured")
            console.print(f"[bold red]gate FAILED[/bold red]: {reason}", highlight=False)
        if junit_xml is not None:
            atomic_write(junit_xml, gate_to_junit(outcome, time_s=elapsed))
        if in_github_actions():
            sys.stdout.flush()
            for line in github_annotations(outcome):
                typer.echo(line)
            summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
            if summary_file:
                try:
                    with Path(summary_file).open("a", encoding="utf-8") as handle:
                        handle.write(github_summary(outcome))
                except OSError as exc:  # the verdict stands; only the summary is lost
                    typer.echo(f"warning: cannot append to GITHUB_STEP_SUMMARY {summary_file}: "
                               f"{exc.strerror or exc}", err=True)
        return outcome.exit_code

    run_command(body)


def register(app: typer.Typer) -> None:
    app.command("gate")(gate_command)
