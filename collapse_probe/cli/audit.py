"""``collapse-probe audit``: unique prototypes per checkpoint and head, with a CI gate."""

from __future__ import annotations

from typing import Optional

import typer

from .common import (atomic_write, refuse_overwriting_sources, run_command, status_line,
                     stderr_console, stdout_console)
from .options import (CacheDir, CollapsedMaxUnique, Cosine, Eps, Example, FailUnder, Format,
                      GateEps, HealthyFloor, Key, Method, MethodOption, Network, NetworkOption,
                      Quiet, Sources, Trust, checkpoint_names, verdict_policy, read_options)

__all__ = ["register", "Method", "Network"]


def audit_command(
    sources: Sources = None,
    example: Example = False,
    eps: Eps = None,
    cosine: Cosine = None,
    method: MethodOption = Method.components,
    network: NetworkOption = Network.teacher,
    checkpoint_format: Format = None,
    key: Key = None,
    json_out: Optional[str] = typer.Option(None, "--json", metavar="FILE|-",
                                           help="Write the JSON report to FILE, or - for stdout."),
    fail_under: FailUnder = None,
    gate_eps: GateEps = 0.025,
    healthy_floor: HealthyFloor = 0.5,
    collapsed_max_unique: CollapsedMaxUnique = 10,
    trust_checkpoint: Trust = False,
    cache_dir: CacheDir = None,
    quiet: Quiet = False,
) -> None:
    """Count unique prototypes in every head of every checkpoint, at every threshold."""

    def body() -> int:
        from ..auditing import audit
        from ..report.json import report_to_json
        from .render import render_audit

        names = checkpoint_names(sources, example, hint="Try `collapse-probe audit --example` "
                                 "or `collapse-probe zoo list`.")
        policy = verdict_policy(healthy_floor=healthy_floor,
                                collapsed_max_unique=collapsed_max_unique, gate_eps=gate_eps)
        read = read_options(checkpoint_format=checkpoint_format, network=network, key=key,
                            trust=trust_checkpoint, cache_dir=cache_dir)
        refuse_overwriting_sources({"--json": json_out}, names, cache_dir=cache_dir)
        with status_line(quiet, "auditing") as progress:
            report = audit(names, eps=eps or None, cosine=cosine or None, method=method.value,
                           read=read, fail_under=fail_under, gate_eps=gate_eps, progress=progress,
                           verdict_policy=policy)
        # With JSON on stdout the tables go to stderr, so stdout stays parseable.
        console = stderr_console() if json_out == "-" else stdout_console()
        for renderable in render_audit(report):
            console.print(renderable)
        if json_out is not None:
            atomic_write(json_out, report_to_json(report))
        return 1 if report.gate is not None and not report.gate.passed else 0

    run_command(body)


def register(app: typer.Typer) -> None:
    app.command("audit")(audit_command)
