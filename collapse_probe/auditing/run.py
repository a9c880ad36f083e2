"""``audit``: load every head of every checkpoint, deduplicate at every threshold, apply the gate."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from .._version import __version__
from ..dedup import sweep
from ..options import ReadOptions
from ..thresholds import GATE_EPS, Threshold, eps_index, resolve_thresholds
from ..types import METHODS, PrototypeSet
from ..validation import describe, fail
from .gate import gate_passes, head_status
from .neighbours import nearest_neighbour_similarity
from .records import AuditReport, CheckpointAudit, GateFailure, GateResult, HeadAudit
from .verdicts import VerdictPolicy, judge_head

__all__ = ["audit", "Source"]

log = logging.getLogger(__name__)

#: What ``audit`` accepts per checkpoint: a path, a zoo or example name, a raw (K, D) array, or
#: prototype sets already loaded.
Source = str | Path | np.ndarray | PrototypeSet | Sequence[PrototypeSet]


def audit(
    sources: Source | Iterable[Source],
    *,
    eps: float | Iterable[float] | None = None,
    cosine: float | Iterable[float] | None = None,
    method: str = "components",
    read: ReadOptions | None = None,
    fail_under: float | None = None,
    gate_eps: float = GATE_EPS,
    progress: Callable[[str], None] | None = None,
    verdict_policy: VerdictPolicy | None = None,
) -> AuditReport:
    """Audit one or more checkpoints.

    Args:
        sources: checkpoint paths, zoo names, bundled example names, (K, D) arrays or
            PrototypeSets; one or a list.
        eps, cosine: thresholds (see :func:`collapse_probe.sweep`); default sweep when neither.
        method: ``components`` or ``greedy``.
        read: how to read files: format, network, key, trust, cache folder
            (:class:`~collapse_probe.options.ReadOptions`; default: detect the layout, read the
            teacher, load no code).
        fail_under: utilization floor in [0, 1] every head must reach at ``gate_eps``; None: no gate.
        gate_eps: the gate's distance threshold (its result is added to the sweep if missing).
        progress: called with short status lines while checkpoints are read and searched.
        verdict_policy: thresholds of each head's one-word verdict (defaults when None).

    Returns:
        AuditReport. A source that cannot be read raises (typed error): the gate fails closed.
    """
    if method not in METHODS:
        raise fail("method", expected=" or ".join(repr(m) for m in METHODS), got=repr(method))
    if fail_under is not None and not 0.0 <= float(fail_under) <= 1.0:
        raise fail("fail_under", expected="a utilization fraction in [0, 1]", got=repr(fail_under),
                   hint="For 5 % write 0.05.")
    thresholds = resolve_thresholds(eps, cosine)
    if fail_under is not None:
        gate_threshold = Threshold.from_eps(gate_eps)
        if eps_index((t.eps for t in thresholds), gate_threshold.eps) is None:
            thresholds = tuple(sorted((*thresholds, gate_threshold)))
    eps_values = [t.eps for t in thresholds]
    read = read or ReadOptions()
    policy = verdict_policy or VerdictPolicy()
    # Every threshold the audit needs, in the one sweep per head: the shown ones (with the
    # gate's) and the verdict's, kept apart when it is not shown. The verdicts only read.
    extra_eps = [] if eps_index(eps_values, policy.eps) is not None else [policy.eps]

    audits = []
    for source in _as_source_list(sources):
        if progress is not None:
            progress(f"reading {_label(source)}")
        checkpoint = _load(source, read, progress)
        heads = []
        for head in checkpoint.heads:
            what = f"deduplicating {checkpoint.source} / {head.name} (K={head.num_prototypes})"
            if progress is not None:
                progress(what)
            swept = sweep(head, eps=[*eps_values, *extra_eps], method=method,
                          progress=None if progress is None else _percent(progress, what))
            shown = tuple(r for r in swept if eps_index(eps_values, r.eps) is not None)
            extra = tuple(r for r in swept if eps_index(eps_values, r.eps) is None)
            neighbours = nearest_neighbour_similarity(head, seed=policy.seed)
            verdict = judge_head(head, swept, policy=policy, neighbours=neighbours, method=method)
            heads.append(HeadAudit(prototypes=head, results=shown, verdict=verdict,
                                   neighbours=neighbours, extra_results=extra))
        audits.append(CheckpointAudit(source=checkpoint.source, path=checkpoint.path,
                                      format=checkpoint.format, network=checkpoint.network,
                                      sha256=checkpoint.sha256, heads=tuple(heads),
                                      note=checkpoint.note, replaced=checkpoint.replaced))
    gate = None if fail_under is None else _gate(audits, float(fail_under), gate_eps)
    return AuditReport(checkpoints=tuple(audits), thresholds=thresholds, method=method,
                       gate=gate, tool_version=__version__)


def _as_source_list(sources: Source | Iterable[Source]) -> list[Source]:
    if isinstance(sources, (str, Path, np.ndarray, PrototypeSet)):
        return [sources]
    items = list(sources)
    if items and all(isinstance(s, PrototypeSet) for s in items):
        return [tuple(items)]  # one checkpoint's heads
    if not items:
        raise fail("sources", expected="at least one checkpoint", got="nothing")
    return items


def _label(source: Source) -> str:
    return str(source) if isinstance(source, (str, Path)) else describe(source)


class _Loaded:
    """The parts of a loaded source the audit needs."""

    def __init__(self, *, source: str, path: str, format: str, network: str, sha256: str,
                 heads: tuple[PrototypeSet, ...], note: str = "",
                 replaced: tuple[str, ...] = ()) -> None:
        self.source, self.path, self.format, self.network = source, path, format, network
        self.sha256, self.heads, self.note, self.replaced = sha256, heads, note, replaced


def _load(source: Source, read: ReadOptions, progress: Callable[[str], None] | None) -> _Loaded:
    if isinstance(source, np.ndarray):
        return _Loaded(source="<array>", path="", format="array", network="", sha256="",
                       heads=(PrototypeSet.from_array(source),))
    if isinstance(source, PrototypeSet):
        source = (source,)
    if isinstance(source, tuple) and all(isinstance(s, PrototypeSet) for s in source):
        return _Loaded(source="<prototypes>", path="", format="array", network="", sha256="",
                       heads=source)
    if not isinstance(source, (str, Path)):
        raise fail("source", expected="a path, a zoo or example name, or a (K, D) array",
                   got=describe(source))

    from ..checkpoints import read_checkpoint
    from ..examples import EXAMPLES
    from ..sources import resolve_source

    downloading = None if progress is None else _downloading(progress, str(source))
    path = resolve_source(str(source), cache_dir=read.cache_dir, progress=downloading)
    checkpoint = read_checkpoint(path, read)
    example = EXAMPLES.get(str(source))
    note = example.description if example is not None else ""
    return _Loaded(source=str(source), path=str(path), format=checkpoint.format,
                   network=checkpoint.network, sha256=checkpoint.sha256, heads=checkpoint.heads,
                   note=note, replaced=checkpoint.replaced)


def _downloading(progress: Callable[[str], None], name: str) -> Callable[[int, int | None], None]:
    """Turn a download's ``(bytes, total)`` callback into status lines."""

    def report(done: int, total: int | None) -> None:
        of = f" of {total / 2**20:.0f}" if total else ""
        progress(f"downloading {name}: {done / 2**20:.0f}{of} MiB")

    return report


def _percent(progress: Callable[[str], None], what: str) -> Callable[[int, int], None]:
    """Turn the engine's ``(done, total)`` callback into status lines."""

    def report(done: int, total: int) -> None:
        progress(f"{what}: {100 * done // max(total, 1)} %")

    return report


def _gate(audits: list[CheckpointAudit], fail_under: float, gate_eps: float) -> GateResult:
    """Every head held to ``fail_under`` at ``gate_eps`` by the one gate rule (:mod:`.gate`)."""
    statuses, failures = [], []
    for checkpoint in audits:
        for head in checkpoint.heads:
            utilization = head.result_at(gate_eps).utilization
            status = head_status(utilization, fail_under)
            statuses.append(status)
            if status == "failed":
                failures.append(GateFailure(checkpoint=checkpoint.source, head=head.name,
                                            utilization=utilization))
    return GateResult(fail_under=fail_under, eps=gate_eps, passed=gate_passes(statuses),
                      failures=tuple(failures))
