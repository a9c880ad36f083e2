"""The one gate rule, shared by ``audit --fail-under`` and the ``gate`` command.

A head with a utilization floor fails when its utilization at the gate's threshold is below the
floor, and passes otherwise; a head without a floor is not gated. A gate passes when nothing
failed and at least one head passed: a gate that checked nothing fails closed.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["STATUSES", "head_status", "gate_passes"]

#: ``passed`` / ``failed``: a gated head (or, in the ``gate`` command, a checkpoint-level
#: problem, which is ``failed``); ``not-gated``: a head with no floor.
STATUSES: tuple[str, ...] = ("passed", "failed", "not-gated")


def head_status(utilization: float, floor: float | None) -> str:
    """``failed`` when ``utilization`` (U / K in [0, 1]) is below ``floor``, ``passed`` when it
    reaches it, ``not-gated`` when there is no floor (None)."""
    if floor is None:
        return "not-gated"
    return "failed" if utilization < floor else "passed"


def gate_passes(statuses: Iterable[str]) -> bool:
    """Whether a gate with these head statuses passes: no ``failed`` and at least one ``passed``."""
    seen = set(statuses)
    return "failed" not in seen and "passed" in seen
