"""``collapse-probe report``: an audit written as a folder of HTML, Markdown, JSON, CSV and figures."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import refuse_overwriting_sources, run_command, status_line, stdout_console
from .options import (CacheDir, CollapsedMaxUnique, Cosine, Eps, Example, FailUnder, Format,
                      GateEps, HealthyFloor, Key, Method, MethodOption, Network, NetworkOption,
                      Quiet, Sources, Space, Trust, checkpoint_names,
                      verdict_policy, read_options)

__all__ = ["register"]


def report_command(
    sources: Sources = None,
    out: Path = typer.Option(..., "--out", metavar="DIR",
                             help="Report folder: report.html, report.md, report.json, heads.csv "
                             "and every figure as PNG and SVG. Created if missing; files of the "
                             "same names in it are replaced, nothing else."),
    example: Example = False,
    eps: Eps = None,
    cosine: Cosine = None,
    method: MethodOption = Method.components,
    network: NetworkOption = Network.teacher,
    checkpoint_format: Format = None,
    key: Key = None,
    fail_under: FailUnder = None,
    gate_eps: GateEps = 0.025,
    healthy_floor: HealthyFloor = 0.5,
    collapsed_max_unique: CollapsedMaxUnique = 10,
    trust_checkpoint: Trust = False,
    cache_dir: CacheDir = None,
    features: Optional[Path] = typer.Option(
        None, "--features", metavar="FILE",
        help="(N, d) .npy features: adds data-side usage of each checkpoint's first head "
        "(figures and usage.json)."),
    space: Space = typer.Option(
        Space.backbone, "--space",
        help="Feature space of --features: backbone (through the head MLP) or bottleneck."),
    quiet: Quiet = False,
) -> None:
    """Audit checkpoints and write a self-contained report folder (HTML opens offline).

    Exit 0: written (and the gate, if any, passed); 1: written, but the gate failed;
    2: a usage or input error, and nothing written.
    """

    def body() -> int:
        from ..auditing import audit
        from ..escape import terminal
        from ..report.writer import write_report
        from ..validation import fail

        names = checkpoint_names(sources, example,
                                 hint="Try `collapse-probe report --example --out report`.")
        if out.exists() and not out.is_dir():
            raise fail("--out", expected="a folder", got=f"the file {out}",
                       hint="Choose a new or existing folder.")
        policy = verdict_policy(healthy_floor=healthy_floor,
                                collapsed_max_unique=collapsed_max_unique, gate_eps=gate_eps)
        # The report's own file names: none of them may be a checkpoint or the features.
        read = read_options(checkpoint_format=checkpoint_format, network=network, key=key,
                            trust=trust_checkpoint, cache_dir=cache_dir)
        names_written = ("report.html", "report.md", "report.json", "heads.csv", "usage.json")
        refuse_overwriting_sources([(f"--out {out}: its", out / name) for name in names_written],
                                   names, cache_dir=cache_dir, inputs=[("--features", features)])
        with status_line(quiet, "auditing") as progress:
            report = audit(names, eps=eps or None, cosine=cosine or None, method=method.value,
                           read=read, fail_under=fail_under, gate_eps=gate_eps, progress=progress,
                           verdict_policy=policy)
            figures = extra = None
            if features is not None:
                from ..report.figures import report_figures
                from ..report.usage import measure_usage, usage_json, usage_report_figures

                if progress is not None:
                    progress("measuring data-side usage")
                usages = measure_usage(report, features, space=space.value, eps=gate_eps,
                                       trust=trust_checkpoint)
                figures = report_figures(report) + usage_report_figures(report, usages)
                extra = {"usage.json": usage_json(report, usages).encode("utf-8")}
            if progress is not None:
                progress("writing the report")
            paths = write_report(report, out, figures=figures, extra_files=extra)
        console = stdout_console()
        for checkpoint in report.checkpoints:
            for head in checkpoint.heads:
                if head.verdict is not None:
                    console.print(f"{terminal(checkpoint.source)} / {terminal(head.name)}: "
                                  f"{head.verdict.label}",
                                  highlight=False, markup=False)
        console.print(f"wrote {len(paths)} files to {terminal(out)} "
                      f"(open {terminal(out / 'report.html')})",
                      highlight=False, markup=False)
        gate = report.gate
        if gate is not None:
            console.print(f"gate {'PASSED' if gate.passed else 'FAILED'}", highlight=False,
                          markup=False)
        return 1 if gate is not None and not gate.passed else 0

    run_command(body)


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)
