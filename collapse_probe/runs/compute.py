"""``trend``: audit every checkpoint of a training run, in epoch order."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from .._version import __version__
from ..checkpoints.loading import live_files
from ..errors import (CheckpointChangedError, CheckpointError, NoPrototypesError,
                      UnsafeCheckpointError)
from ..options import ReadOptions
from ..thresholds import resolve_thresholds
from ..types import METHODS
from ..validation import fail
from .model import TrendEntry, TrendHead, TrendReport
from .ordering import (RunCheckpoint, expand_inputs, is_latest_name, locate, order_checkpoints,
                       read_epoch)

if TYPE_CHECKING:
    from ..auditing import AuditReport

__all__ = ["trend", "audit_entry", "may_be_rewritten", "reading"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")


def audit_entry(
    checkpoint: RunCheckpoint,
    *,
    eps: tuple[float, ...],
    method: str,
    read: ReadOptions | None = None,
    retry: bool = True,
) -> TrendEntry:
    """Audit one checkpoint of a run at thresholds ``eps`` and keep only the numbers.

    The prototypes themselves (K x D per head) are dropped, so a long run fits in memory.
    A file that changes while it is read is read again once it is stable (``retry``; up to
    three reads), else :class:`~collapse_probe.errors.CheckpointChangedError` is raised.
    """
    from ..auditing import audit

    def audit_once() -> tuple[os.stat_result, AuditReport]:
        try:
            stat = checkpoint.path.stat()
            return stat, audit(checkpoint.path, eps=eps, method=method, read=read)
        except OSError as exc:  # removed or replaced between listing and reading
            raise CheckpointError(f"{checkpoint.path} cannot be read: {exc.strerror or exc}.") from None

    stat, report = _read_settled(checkpoint.path, audit_once, retry=retry)
    heads = tuple(
        TrendHead(name=head.name, num_prototypes=head.num_prototypes,
                  eps=tuple(r.eps for r in head.results), unique=tuple(r.unique for r in head.results))
        for c in report.checkpoints for head in c.heads
    )
    return TrendEntry(path=str(checkpoint.path), epoch=checkpoint.epoch,
                      epoch_source=checkpoint.epoch_source, heads=heads,
                      size_bytes=stat.st_size, mtime_ns=stat.st_mtime_ns)


#: Reads of one checkpoint before a file that keeps changing is reported as unreadable.
_ATTEMPTS = 3
#: A file modified this recently (seconds) may still be rewritten by a running job.
RECENT_S = 600.0


def may_be_rewritten(path: Path | str) -> bool:
    """Whether a running job may truncate and rewrite ``path`` while it is read: a name the
    training scripts overwrite (``checkpoint.pth``, ``last.ckpt``) or a recent modification."""
    path = Path(path)
    if is_latest_name(path):
        return True
    try:
        return time.time() - path.stat().st_mtime < RECENT_S
    except OSError:
        return True


def reading(path: Path | str) -> AbstractContextManager[None]:
    """:func:`~collapse_probe.checkpoints.loading.live_files` for files that may be rewritten
    (read into memory, never mapped), a no-op (memory-mapped reads) for settled ones."""
    return live_files() if may_be_rewritten(path) else nullcontext()


def _read_settled(path: Path, read: Callable[[], _T], *, retry: bool = True) -> _T:
    """``read()`` (under :func:`reading`), again once the file is stable when a job was writing
    it: it changed during the read, or it read as damaged and was still changing afterwards
    (a ``checkpoint.pth`` caught half-written between two of ``torch.save``'s writes)."""
    for attempt in range(_ATTEMPTS):
        last = not retry or attempt == _ATTEMPTS - 1
        try:
            with reading(path):
                return read()
        except CheckpointChangedError:
            if last:
                raise
            log.info("%s changed while being read: reading it again once it is stable", path)
            _wait_until_stable(path)
        except (UnsafeCheckpointError, NoPrototypesError):
            raise  # the file was read: what it holds will not change by waiting
        except CheckpointError:
            if last or not may_be_rewritten(path) or not _wait_until_stable(path):
                raise
            log.info("%s was still being written: reading it again now that it is stable", path)
    raise AssertionError("unreachable")  # pragma: no cover


def _wait_until_stable(path: Path, *, quiet_s: float = 1.0, limit_s: float = 30.0) -> bool:
    """Wait until ``path`` stays unchanged for ``quiet_s``; whether it changed meanwhile."""
    def signature() -> tuple[int, int, int] | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        return (stat.st_ino, stat.st_size, stat.st_mtime_ns)

    deadline = time.monotonic() + limit_s
    first = last = signature()
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = signature()
        if now == last:
            return now != first
        last = now
    return True


def trend(
    paths: Path | str | Iterable[Path | str],
    *,
    eps: float | Iterable[float] | None = None,
    cosine: float | Iterable[float] | None = None,
    method: str = "components",
    read: ReadOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> TrendReport:
    """Audit the checkpoints of one run in epoch order.

    Args:
        paths: checkpoint files and/or training output folders (a folder stands for its
            ``*.pth`` / ``*.pt`` / ``*.pth.tar`` / ``*.ckpt`` files).
        eps, cosine: thresholds, as for :func:`collapse_probe.auditing` (default sweep when neither).
        method, read: as for :func:`collapse_probe.auditing`.
        progress: called with a short status line before each checkpoint is audited.

    Returns:
        TrendReport, entries ordered by epoch (the checkpoint's ``epoch`` entry, else the
        number in its name; ``checkpoint.pth`` last on ties; unknown epochs in given order).

    Raises:
        CheckpointError / InputError: a file cannot be read or holds no prototypes.
    """
    if method not in METHODS:
        raise fail("method", expected=" or ".join(repr(m) for m in METHODS), got=repr(method))
    thresholds = resolve_thresholds(eps, cosine)
    read = read or ReadOptions()
    eps_values = tuple(t.eps for t in thresholds)
    items = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    files = expand_inputs(items)
    located = []
    for f in files:
        located.append(locate(f, epoch_entry=_read_settled(
            f, lambda f=f: read_epoch(f, trust=read.trust))))
    entries = []
    for checkpoint in order_checkpoints(located):
        if progress is not None:
            progress(f"auditing {checkpoint.path}")
        log.info("trend: auditing %s (epoch %s)", checkpoint.path, checkpoint.epoch)
        entries.append(audit_entry(checkpoint, eps=eps_values, method=method, read=read))
    return TrendReport(entries=tuple(entries), thresholds=thresholds, method=method,
                       network=read.network, tool_version=__version__)
