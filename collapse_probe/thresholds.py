"""Duplicate thresholds, in both spellings.

Two unit vectors a, b are duplicates when ``||a - b|| < eps``, equivalently when
``cos(a, b) > t`` with ``t = 1 - eps**2 / 2`` (strict in both). Every result carries both
numbers, so nobody has to convert by hand.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from .validation import fail

__all__ = ["Threshold", "DEFAULT_EPS", "GATE_EPS", "EPS_TOLERANCE", "eps_to_cosine", "cosine_to_eps",
           "resolve_thresholds", "eps_index"]

#: The default sweep of distance thresholds (the follow-up paper's values plus 0.05).
DEFAULT_EPS: tuple[float, ...] = (0.025, 0.05, 0.1, 0.25, 0.5)
#: The default threshold of the CI gate: the paper's main value.
GATE_EPS: float = 0.025
#: Two thresholds this close (in eps) are the same threshold.
EPS_TOLERANCE = 1e-12


def eps_to_cosine(eps: float) -> float:
    """Cosine threshold for a Euclidean distance ``eps`` between unit vectors."""
    return 1.0 - eps * eps / 2.0


def cosine_to_eps(cosine: float) -> float:
    """Euclidean distance threshold for a cosine threshold between unit vectors."""
    return math.sqrt(max(0.0, 2.0 - 2.0 * cosine))


@dataclass(frozen=True, order=True)
class Threshold:
    """One duplicate threshold. ``eps`` is a distance on the unit sphere in (0, 2]; ``cosine`` = 1 - eps^2/2."""

    eps: float
    cosine: float

    @classmethod
    def from_eps(cls, eps: float) -> Threshold:
        eps = float(eps)
        if not (math.isfinite(eps) and 0.0 < eps <= 2.0):
            raise fail("eps", expected="a distance in (0, 2] between unit vectors", got=repr(eps),
                       hint="Typical values: 0.025, 0.1, 0.25, 0.5.")
        return cls(eps=eps, cosine=eps_to_cosine(eps))

    @classmethod
    def from_cosine(cls, cosine: float) -> Threshold:
        cosine = float(cosine)
        if not (math.isfinite(cosine) and -1.0 <= cosine < 1.0):
            raise fail("cosine", expected="a similarity in [-1, 1)", got=repr(cosine),
                       hint="Typical values: 0.9996875 (eps 0.025), 0.995 (eps 0.1).")
        return cls(eps=cosine_to_eps(cosine), cosine=cosine)


def resolve_thresholds(
    eps: float | Iterable[float] | None = None,
    cosine: float | Iterable[float] | None = None,
) -> tuple[Threshold, ...]:
    """Merge distance and cosine thresholds into one sorted tuple (ascending eps, no repeats).

    With neither given, returns the default sweep :data:`DEFAULT_EPS`.
    """
    eps_values = _as_tuple(eps)
    cosine_values = _as_tuple(cosine)
    if not eps_values and not cosine_values:
        eps_values = DEFAULT_EPS
    thresholds = {Threshold.from_eps(e) for e in eps_values}
    thresholds |= {Threshold.from_cosine(c) for c in cosine_values}
    return tuple(sorted(thresholds))


def eps_index(values: Iterable[float], eps: float) -> int | None:
    """Position of the first of ``values`` that is the threshold ``eps``, None when none is.

    Thresholds match to within :data:`EPS_TOLERANCE`: an eps given as a cosine and converted
    back may differ from the typed value in its last bits.
    """
    for i, value in enumerate(values):
        if abs(value - eps) <= EPS_TOLERANCE:
            return i
    return None


def _as_tuple(value: float | Iterable[float] | None) -> tuple[float, ...]:
    if value is None:
        return ()
    if isinstance(value, (int, float)):
        return (float(value),)
    return tuple(float(v) for v in value)
