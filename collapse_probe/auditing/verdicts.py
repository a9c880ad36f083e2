"""One-word verdicts per head: ``untrained``, ``collapsed``, ``partial-collapse`` or ``healthy``.

A verdict is a hint read off fixed, documented thresholds, not a diagnosis: every verdict carries
the sentence and the numbers behind it. The rules, checked in this order:

1. ``collapsed``: at most ``collapsed_max_unique`` (default 10) unique prototypes at ``eps``
   (default 0.025, the gate's threshold) and utilization below ``healthy_floor``: the head
   collapsed onto one or a handful of directions.
2. ``untrained``: the nearest-neighbour cosine similarities are indistinguishable from those of
   K uniform random unit vectors in D dimensions (what DINO-style heads are initialised to): the
   Kolmogorov-Smirnov distance between their empirical distribution and the exact law of the
   random case (:func:`~collapse_probe.auditing.neighbours.random_nn_cdf`) is at most
   ``untrained_max_ks`` (default 0.1) plus ``1.63 / sqrt(n)`` (the 1 % critical value of the KS
   test for n anchors, so small heads are not called trained on noise). Needs D >= 2.
3. ``partial-collapse``: utilization at ``eps`` below ``healthy_floor`` (default 0.5).
4. ``partial-collapse`` read off the rest of the sweep: at some swept threshold up to
   ``loose_eps`` (default 0.1, cosine 0.995) one group holds at least ``max_group_fraction``
   (default 0.25) of the prototypes, or, above ``eps``, utilization falls below
   ``healthy_floor``. Real heads merge gradually: copies that are still 0.03 apart count as
   distinct at eps 0.025 but are the same prototype for every practical purpose. The reason
   names the smallest threshold where the duplication appears; the gate's threshold is untouched.
5. ``healthy``: none of the above.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..thresholds import EPS_TOLERANCE, GATE_EPS, Threshold
from ..types import DedupResult, PrototypeSet, result_at
from ..validation import fail
from .neighbours import NeighbourSimilarity, nearest_neighbour_similarity, random_nn_cdf

__all__ = ["Verdict", "VerdictPolicy", "VERDICT_LABELS", "VERDICT_NOTE", "judge_head"]

#: Every label a verdict can have, from worst to best.
VERDICT_LABELS: tuple[str, ...] = ("collapsed", "untrained", "partial-collapse", "healthy")

#: Shown next to verdicts wherever they are rendered.
VERDICT_NOTE = ("Verdicts are hints read off fixed thresholds (see VerdictPolicy), not a diagnosis; "
                "check the numbers behind them.")

#: 1 % critical value of the two-sided one-sample KS test, times sqrt(n).
KS_CRITICAL_1PCT = 1.63


@dataclass(frozen=True)
class VerdictPolicy:
    """The thresholds the verdicts are read off (all overridable).

    Attributes:
        eps: distance threshold at which unique prototypes and utilization are read (the gate's).
        healthy_floor: utilization in [0, 1] at ``eps`` below which a head is ``partial-collapse``.
        collapsed_max_unique: at most this many unique prototypes at ``eps`` means ``collapsed``.
        untrained_max_ks: fixed part of the KS distance under which nearest-neighbour
            similarities count as those of random unit vectors (``untrained``).
        loose_eps: the loosest swept threshold the sweep rule reads (rule 4).
        max_group_fraction: a group holding at least this fraction of K at a threshold up to
            ``loose_eps`` means ``partial-collapse`` (1.0 switches the group rule off).
        seed: seed of the anchor sample for heads larger than the exact nearest-neighbour limit.
    """

    eps: float = GATE_EPS
    healthy_floor: float = 0.5
    collapsed_max_unique: int = 10
    untrained_max_ks: float = 0.1
    loose_eps: float = 0.1
    max_group_fraction: float = 0.25
    seed: int = 0

    def __post_init__(self) -> None:
        Threshold.from_eps(self.eps)  # validates
        if not 0.0 <= float(self.healthy_floor) <= 1.0:
            raise fail("healthy_floor", expected="a utilization fraction in [0, 1]",
                       got=repr(self.healthy_floor), hint="For 50 % write 0.5.")
        if int(self.collapsed_max_unique) != self.collapsed_max_unique or self.collapsed_max_unique < 1:
            raise fail("collapsed_max_unique", expected="a whole number >= 1",
                       got=repr(self.collapsed_max_unique))
        if not 0.0 <= float(self.untrained_max_ks) <= 1.0:
            raise fail("untrained_max_ks", expected="a KS distance in [0, 1]",
                       got=repr(self.untrained_max_ks))
        if not 0.0 < float(self.loose_eps) <= 2.0:
            raise fail("loose_eps", expected="a distance in (0, 2] between unit vectors",
                       got=repr(self.loose_eps), hint="The sweep rule's default is 0.1.")
        if not 0.0 < float(self.max_group_fraction) <= 1.0:
            raise fail("max_group_fraction", expected="a fraction of K in (0, 1]",
                       got=repr(self.max_group_fraction), hint="For a quarter write 0.25.")


@dataclass(frozen=True)
class Verdict:
    """A one-word verdict on one head.

    Attributes:
        label: one of :data:`VERDICT_LABELS`.
        reason: one sentence with the numbers that decided it.
        evidence: the numbers (plain JSON values): unique, utilization, num_prototypes, dim, eps,
            the policy's thresholds, and the nearest-neighbour comparison (``nn_ks``,
            ``nn_ks_allowed``, ``nn_median``, ``random_nn_median``, ``nn_anchors``, ``nn_exact``).
    """

    label: str
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.label not in VERDICT_LABELS:
            raise fail("label", expected=" or ".join(VERDICT_LABELS), got=repr(self.label))


def _result_at(prototypes: PrototypeSet, results: Sequence[DedupResult], eps: float,
               method: str) -> DedupResult:
    found = result_at(results, eps)
    if found is not None:
        return found
    from ..dedup import deduplicate

    return deduplicate(prototypes, eps=eps, method=method)


def _sweep_duplication(results: Sequence[DedupResult], main: DedupResult,
                       policy: VerdictPolicy) -> tuple[DedupResult, str] | None:
    """The smallest swept threshold up to ``policy.loose_eps`` that shows heavy duplication.

    Returns that result and a clause saying what it shows, or None when the sweep is clean.
    """
    num = main.num_prototypes
    swept = sorted({round(r.eps, 12): r for r in (*results, main)
                    if r.eps <= policy.loose_eps + EPS_TOLERANCE}.values(), key=lambda r: r.eps)
    for result in swept:
        largest = result.largest_group
        if largest >= policy.max_group_fraction * num and largest > 1:
            return result, (f"one group holds {largest} of {num} prototypes "
                            f"({100 * largest / num:.1f} %, at least "
                            f"{100 * policy.max_group_fraction:g} %)")
        if result.eps > main.eps and result.utilization < policy.healthy_floor:
            return result, (f"only {result.unique} of {num} are unique "
                            f"({100 * result.utilization:.2f} %, below the healthy floor)")
    return None


def _random_median(num_prototypes: int, dim: int) -> float:
    """Median of the random-case nearest-neighbour cosine, by bisection on its CDF."""
    lo, hi = -1.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2.0
        if float(random_nn_cdf(mid, num_prototypes=num_prototypes, dim=dim)) < 0.5:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def _ks_to_random(neighbours: NeighbourSimilarity) -> float:
    """Two-sided KS distance between the observed similarities and the random-vector law."""
    sims = np.sort(neighbours.similarities)
    n = sims.shape[0]
    cdf = random_nn_cdf(sims, num_prototypes=neighbours.num_prototypes, dim=neighbours.dim)
    steps = np.arange(1, n + 1) / n
    return float(max(np.max(steps - cdf), np.max(cdf - (steps - 1.0 / n))))


def _round(value: float, digits: int = 6) -> float | None:
    return round(float(value), digits) if math.isfinite(value) else None


def judge_head(
    prototypes: PrototypeSet,
    results: Sequence[DedupResult] = (),
    *,
    policy: VerdictPolicy | None = None,
    neighbours: NeighbourSimilarity | None = None,
    method: str = "components",
) -> Verdict:
    """The verdict on one head (rules in the module docstring).

    Args:
        prototypes: the head.
        results: its dedup results; the one at ``policy.eps`` is used, or computed when missing
            (:func:`~collapse_probe.auditing.audit` always passes it, so an audit only reads).
        policy: thresholds; the defaults when None.
        neighbours: precomputed nearest-neighbour similarities (computed when None).
        method: grouping method used when the result at ``policy.eps`` must be computed.
    """
    policy = policy or VerdictPolicy()
    result = _result_at(prototypes, results, policy.eps, results[0].method if results else method)
    num, dim = prototypes.num_prototypes, prototypes.dim
    unique, utilization = result.unique, result.utilization
    evidence: dict[str, Any] = {
        "eps": policy.eps, "unique": unique, "utilization": _round(utilization),
        "num_prototypes": num, "dim": dim, "healthy_floor": policy.healthy_floor,
        "collapsed_max_unique": policy.collapsed_max_unique,
    }
    counted = (f"{unique} of {num} prototypes unique ({100 * utilization:.2f} %) "
               f"at eps {policy.eps:g}")
    if unique <= policy.collapsed_max_unique and utilization < policy.healthy_floor:
        return Verdict("collapsed", f"Only {counted}: at most {policy.collapsed_max_unique} "
                       "means the head collapsed onto a handful of directions.", evidence)

    if dim >= 2:
        if neighbours is None:
            neighbours = nearest_neighbour_similarity(prototypes, seed=policy.seed)
        ks = _ks_to_random(neighbours)
        allowed = policy.untrained_max_ks + KS_CRITICAL_1PCT / math.sqrt(neighbours.num_anchors)
        median, random_median = float(np.median(neighbours.similarities)), _random_median(num, dim)
        evidence.update(nn_ks=_round(ks), nn_ks_allowed=_round(allowed), nn_median=_round(median),
                        random_nn_median=_round(random_median), nn_anchors=neighbours.num_anchors,
                        nn_exact=neighbours.exact, untrained_max_ks=policy.untrained_max_ks)
        if ks <= allowed:
            return Verdict("untrained", (
                f"Nearest-neighbour similarities match random unit vectors with K={num}, D={dim} "
                f"(KS distance {ks:.3f} <= {allowed:.3f}, median {median:.3f} vs {random_median:.3f}): "
                "the prototypes look like their initialisation."), evidence)
        versus_random = f"; nearest-neighbour similarities differ from random (KS {ks:.3f})"
    else:
        versus_random = "; D = 1, so the random-initialisation check does not apply"

    if utilization < policy.healthy_floor:
        return Verdict("partial-collapse", f"{counted}, below the healthy floor of "
                       f"{100 * policy.healthy_floor:g} %{versus_random}.", evidence)
    evidence.update(loose_eps=policy.loose_eps, max_group_fraction=policy.max_group_fraction)
    found = _sweep_duplication(results, result, policy)
    if found is not None:
        loose, what = found
        evidence.update(duplication_eps=loose.eps, duplication_unique=loose.unique,
                        duplication_largest_group=loose.largest_group)
        if loose.eps > policy.eps:
            why = (f"but at eps {loose.eps:g} (cosine > {loose.cosine:.6g}) {what}: near-copies "
                   f"that eps {policy.eps:g} still counts apart")
        else:
            why = f"but {what} at that threshold: one direction dominates the head"
        return Verdict("partial-collapse", f"{counted}, {why}{versus_random}.", evidence)
    return Verdict("healthy", f"{counted}, at or above the healthy floor of "
                   f"{100 * policy.healthy_floor:g} %{versus_random}.", evidence)
