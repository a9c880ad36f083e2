"""``collapse-probe audit``: unique prototypes per checkpoint and head, with a CI gate."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from .common import atomic_write, run_command, stderr_console, stdout_console

__all__ = ["register"]


class Method(str, Enum):
    components = "components"
    greedy = "greedy"


class Network(str, Enum):
    teacher = "teacher"
    student = "student"


def audit_command(
    sources: Optional[list[str]] = typer.Argument(
        None, metavar="PATH_OR_ZOO_NAME...",
        help="Checkpoint files, zoo names (see `zoo list`) or bundled example names."),
    example: bool = typer.Option(False, "--example",
                                 help="Audit the bundled example checkpoints (no download)."),
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
    json_out: Optional[str] = typer.Option(None, "--json", metavar="FILE|-",
                                           help="Write the JSON report to FILE, or - for stdout."),
    fail_under: Optional[float] = typer.Option(
        None, "--fail-under", metavar="FRACTION",
        help="Exit 1 unless every head's utilization at --gate-eps reaches FRACTION."),
    gate_eps: float = typer.Option(0.025, "--gate-eps", help="Distance threshold of the gate."),
    trust_checkpoint: bool = typer.Option(
        False, "--trust-checkpoint",
        help="Allow arbitrary pickled code in the file. Only for files from a source you trust."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", envvar="COLLAPSE_PROBE_CACHE",
                                             help="Where zoo downloads and examples are kept."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress messages."),
) -> None:
    """Count unique prototypes in every head of every checkpoint, at every threshold."""

    def body() -> int:
        from ..audit import audit
        from ..examples import EXAMPLE_NAMES
        from ..report.json import report_to_json
        from ..report.terminal import render_audit
        from ..validation import fail

        names = list(sources or [])
        if example:
            names += [n for n in EXAMPLE_NAMES if n not in names]
        if not names:
            raise fail("checkpoint", expected="at least one path or zoo name", got="none",
                       hint="Try `collapse-probe audit --example` or `collapse-probe zoo list`.")
        err = stderr_console()
        show_progress = not quiet and err.is_terminal
        status = err.status("auditing") if show_progress else None
        if status is not None:
            status.start()
        try:
            report = audit(names, eps=eps or None, cosine=cosine or None, method=method.value,
                           network=network.value, format=format, key=key, trust=trust_checkpoint,
                           fail_under=fail_under, gate_eps=gate_eps, cache_dir=cache_dir,
                           progress=(status.update if status is not None else None))
        finally:
            if status is not None:
                status.stop()
        # With JSON on stdout the tables go to stderr, so stdout stays parseable.
        console = err if json_out == "-" else stdout_console()
        for renderable in render_audit(report):
            console.print(renderable)
        if json_out is not None:
            atomic_write(json_out, report_to_json(report))
        return 1 if report.gate is not None and not report.gate.passed else 0

    code = run_command(body)
    sys.stdout.flush()
    raise typer.Exit(code=code)


def register(app: typer.Typer) -> None:
    app.command("audit")(audit_command)
