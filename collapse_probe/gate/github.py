"""GitHub Actions outputs: ``::error`` annotations and a Markdown job summary.

Workflow commands are written to stdout; their data must have ``%``, CR and LF escaped, and
their properties ``:`` and ``,`` as well (a utilization like ``0.50 %`` would otherwise be cut).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .. import escape as _escape
from .run import GateOutcome

__all__ = ["in_github_actions", "escape_data", "escape_property", "github_annotations",
           "github_summary"]


def in_github_actions(environ: Mapping[str, str] | None = None) -> bool:
    """Whether we run inside GitHub Actions (``GITHUB_ACTIONS=true``)."""
    env = os.environ if environ is None else environ
    return env.get("GITHUB_ACTIONS", "").lower() == "true"


def escape_data(text: str) -> str:
    """A workflow command's message: ``%``, CR, LF encoded (see :mod:`collapse_probe.escape`)."""
    return _escape.workflow_data(text)


def escape_property(text: str) -> str:
    """A workflow command's property value: as data, plus ``:`` and ``,``."""
    return _escape.workflow_property(text)


def github_annotations(outcome: GateOutcome) -> list[str]:
    """One ``::error title=...::message`` line per failed check."""
    lines = []
    for check in outcome.failures:
        title = f"collapse-probe gate: {check.checkpoint}" + (f" / {check.head}" if check.head else "")
        lines.append(f"::error title={escape_property(title)}::{escape_data(check.message)}")
    return lines


def _cell(text: str) -> str:
    # The summary is rendered Markdown: names from files stay literal text.
    return _escape.markdown(text)


def github_summary(outcome: GateOutcome) -> str:
    """A Markdown section for ``$GITHUB_STEP_SUMMARY``: verdict line and a table of every check."""
    config = outcome.config
    verdict = "passed" if outcome.passed else "FAILED"
    icon = ":white_check_mark:" if outcome.passed else ":x:"
    lines = [
        f"### {icon} collapse-probe gate {verdict}",
        "",
        f"{len(outcome.checks)} check{'s' * (len(outcome.checks) != 1)}, "
        f"{len(outcome.failures)} failed; eps {config.eps:g} "
        f"(cos > {1 - config.eps ** 2 / 2:.7g}), method {config.method}, network {config.read.network}.",
        "",
        "| checkpoint | head | unique | K | utilization | floor | result |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for check in outcome.checks:
        utilization = "" if check.utilization is None else f"{100 * check.utilization:.2f} %"
        floor = "" if check.floor is None else f"{100 * check.floor:.2f} %"
        result = {"passed": "pass", "failed": "**FAIL**", "not-gated": "not gated"}[check.status]
        if check.status == "failed" and check.utilization is None:
            result += f": {_cell(check.message)}"
        lines.append(f"| {_cell(check.checkpoint)} | {_cell(check.head or '-')} | "
                     f"{'' if check.unique is None else check.unique} | "
                     f"{'' if check.num_prototypes is None else check.num_prototypes} | "
                     f"{utilization} | {floor} | {result} |")
    return "\n".join(lines) + "\n\n"
