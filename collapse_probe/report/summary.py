"""Small facts every renderer states the same way: the headline threshold and the method."""

from __future__ import annotations

from ..thresholds import GATE_EPS
from ..types import DedupResult, result_at
from ..auditing.records import AuditReport, HeadAudit

__all__ = ["headline_result", "method_sentence", "groups_sentence", "LISTED_GROUPS"]

#: Largest groups listed per head.
LISTED_GROUPS = 10


def headline_result(head: HeadAudit) -> DedupResult:
    """The result a summary or figure shows: at the verdict's eps, else the gate's (0.025), else
    the smallest; always one of the shown ``head.results``."""
    wanted = [GATE_EPS]
    if head.verdict is not None and "eps" in head.verdict.evidence:
        wanted.insert(0, float(head.verdict.evidence["eps"]))
    for eps in wanted:
        found = result_at(head.results, eps)
        if found is not None:
            return found
    return head.results[0]


def method_sentence(report: AuditReport) -> str:
    """One sentence: how duplicates were defined and grouped, at which thresholds."""
    grouping = ("connected components of 'closer than eps' (single linkage)"
                if report.method == "components" else "a greedy eps-net in index order")
    eps = ", ".join(f"{t.eps:g}" for t in report.thresholds)
    return (f"Two prototypes are duplicates when ||a - b|| < eps on unit vectors "
            f"(cos > 1 - eps^2/2); groups are {grouping}; eps = {eps}.")


def groups_sentence(head: HeadAudit) -> str:
    """The largest duplicate groups at the headline threshold, in one sentence."""
    result = headline_result(head)
    if result.largest_group == 1:
        return f"No duplicates at eps {result.eps:g}: every prototype is its own group."
    sizes = [str(g.size) for g in result.largest_groups(LISTED_GROUPS) if g.size > 1]
    return f"Largest groups at eps {result.eps:g} (sizes): {', '.join(sizes)}."
