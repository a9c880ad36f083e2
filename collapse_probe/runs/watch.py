"""Follow a training output folder and audit each checkpoint once it is completely written.

A training script writes checkpoints in place (``torch.save`` straight to ``checkpoint.pth``),
so a file can be seen half-written, or truncated and rewritten while it is read. Files are read
into memory here, never memory-mapped (a mapped file that shrinks under the reader kills the
process with SIGBUS), and a read during which the file's inode, size or modification time
changed is discarded and retried. A file is audited only when its size and modification time
are the same on two consecutive polls (and, optionally, for ``settle_s`` seconds) *and* it
loads; otherwise it is retried on a later poll. ``checkpoint.pth`` is rewritten every epoch:
each new version is audited once.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .._version import __version__
from ..checkpoints.loading import live_files
from ..errors import CheckpointChangedError, CollapseProbeError, UnsafeCheckpointError
from ..options import ReadOptions
from ..thresholds import Threshold, resolve_thresholds
from ..types import METHODS
from ..validation import fail
from .compute import audit_entry
from .model import TrendEntry, TrendReport
from .ordering import RunCheckpoint, checkpoint_files, locate, order_checkpoints, read_epoch
from .records import append_jsonl, read_jsonl

__all__ = ["Watcher", "WatchEvent", "WatchSummary", "EVENT_KINDS"]

log = logging.getLogger(__name__)

#: ``new``: first sight or still changing; ``unreadable``: stable but does not load yet (retry);
#: ``audited``: appended to the trend; ``failed``: loads but cannot be audited, or is refused
#: as unsafe to unpickle (not retried until the file changes).
EVENT_KINDS: tuple[str, ...] = ("new", "unreadable", "audited", "failed")

_Signature = tuple[int, int]  # (size in bytes, mtime in ns)


@dataclass(frozen=True)
class WatchEvent:
    """What one poll did with one file."""

    path: str
    kind: str
    message: str
    entry: TrendEntry | None = None


@dataclass(frozen=True)
class WatchSummary:
    """The state of a watch when it stops.

    Attributes:
        polls: polls done.
        audited: checkpoints audited by this watcher (in audit order).
        pending: files seen but not audited yet (still being written, or unreadable).
        failed: files that load but could not be audited, with the reason.
        report: the whole trend so far (earlier records in ``jsonl`` included), in run order.
        interrupted: whether the watch ended with Ctrl-C.
    """

    polls: int
    audited: tuple[TrendEntry, ...]
    pending: tuple[str, ...]
    failed: tuple[tuple[str, str], ...]
    report: TrendReport
    interrupted: bool = False


class Watcher:
    """Audit new checkpoints in ``folder`` as they appear; append them to a JSON lines file.

    Args:
        folder: the training output folder (its direct checkpoint files are watched).
        recursive: watch the checkpoint files of its subfolders too (DINOv2's ``eval/``).
        jsonl: the trend file to append to; earlier records there are kept and not re-audited.
            None: keep the trend in memory only.
        eps, cosine, method, read: as for :func:`collapse_probe.auditing`.
        interval: seconds between polls in :meth:`run`.
        settle_s: extra seconds a file must stay unchanged before it is read (0: two polls suffice).
        clock: monotonic time source in seconds; sleep: how to wait (both injectable for tests).
        on_event: called with every :class:`WatchEvent`.
    """

    def __init__(
        self,
        folder: Path | str,
        *,
        recursive: bool = False,
        jsonl: Path | str | None = None,
        eps: float | Iterable[float] | None = None,
        cosine: float | Iterable[float] | None = None,
        method: str = "components",
        read: ReadOptions | None = None,
        interval: float = 60.0,
        settle_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        on_event: Callable[[WatchEvent], None] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.recursive = recursive
        if not self.folder.is_dir():
            raise fail("folder", expected="an existing training output folder",
                       got=repr(str(self.folder)), hint="Start the watch once training has created it.")
        if method not in METHODS:
            raise fail("method", expected=" or ".join(repr(m) for m in METHODS), got=repr(method))
        if not interval > 0:
            raise fail("interval", expected="seconds > 0", got=repr(interval))
        if not settle_s >= 0:
            raise fail("settle_s", expected="seconds >= 0", got=repr(settle_s))
        self.thresholds = resolve_thresholds(eps, cosine)
        self.jsonl = None if jsonl is None else Path(jsonl)
        self.method, self.read = method, read or ReadOptions()
        self.interval, self.settle_s = float(interval), float(settle_s)
        self.clock, self.sleep, self.on_event = clock, sleep, on_event
        self.polls = 0
        self._entries: list[TrendEntry] = []
        self._audited: list[TrendEntry] = []
        self._done: dict[Path, _Signature] = {}
        self._seen: dict[Path, tuple[_Signature, float]] = {}
        self._failed: dict[Path, tuple[_Signature, str]] = {}
        if self.jsonl is not None and self.jsonl.exists():
            for entry in read_jsonl(self.jsonl).entries:
                self._entries.append(entry)
                self._done[Path(entry.path).resolve()] = (entry.size_bytes, entry.mtime_ns)

    def poll(self) -> list[WatchEvent]:
        """Look at the folder once; audit every file that is complete. Returns what happened."""
        self.polls += 1
        now = self.clock()
        events = []
        try:
            files = checkpoint_files(self.folder, recursive=self.recursive)
        except (CollapseProbeError, OSError) as exc:  # the folder was removed or locked
            log.warning("watch: cannot list %s this round: %s", self.folder, exc)
            files = []
        for path in files:
            event = self._visit(path, now)
            if event is not None:
                events.append(event)
                if self.on_event is not None:
                    self.on_event(event)
        return events

    def run(self, *, max_polls: int | None = None, stop: Callable[[], bool] | None = None) -> WatchSummary:
        """Poll every ``interval`` seconds until ``max_polls`` polls, ``stop()`` is true, or Ctrl-C."""
        interrupted = False
        try:
            done = 0
            while max_polls is None or done < max_polls:
                if stop is not None and stop():
                    break
                self.poll()
                done += 1
                if (max_polls is None or done < max_polls) and not (stop is not None and stop()):
                    self.sleep(self.interval)
        except KeyboardInterrupt:
            interrupted = True
            log.info("watch interrupted after %d polls", self.polls)
        return self.summary(interrupted=interrupted)

    def summary(self, *, interrupted: bool = False) -> WatchSummary:
        pending = tuple(str(p) for p in sorted(self._seen) if p.exists())
        failed = tuple((str(p), reason) for p, (_, reason) in sorted(self._failed.items()))
        return WatchSummary(polls=self.polls, audited=tuple(self._audited), pending=pending,
                            failed=failed, report=self.report(), interrupted=interrupted)

    def report(self) -> TrendReport:
        """Everything recorded so far, in run order."""
        run = [RunCheckpoint(path=Path(e.path), epoch=e.epoch, epoch_source=e.epoch_source,
                             latest=locate(e.path, epoch_entry=e.epoch).latest)
               for e in self._entries]
        by_id = {id(c): e for c, e in zip(run, self._entries)}
        ordered = tuple(by_id[id(c)] for c in order_checkpoints(run))
        eps_seen = {e for entry in ordered for h in entry.heads for e in h.eps}
        thresholds = tuple(sorted({*self.thresholds, *(Threshold.from_eps(e) for e in eps_seen)}))
        return TrendReport(entries=ordered, thresholds=thresholds, method=self.method,
                           network=self.read.network, tool_version=__version__)

    def _visit(self, path: Path, now: float) -> WatchEvent | None:
        try:
            resolved = path.resolve()
            stat = path.stat()
        except FileNotFoundError:  # removed between listing and stat
            self._seen.pop(path.absolute(), None)
            return None
        except (OSError, RuntimeError) as exc:  # permissions, a symlink loop
            return WatchEvent(str(path), "unreadable", f"unreadable this round ({exc})")
        with live_files():  # a training job may truncate and rewrite it while we read
            return self._read(path, resolved, stat, now)

    def _changed(self, path: Path, resolved: Path, now: float) -> WatchEvent:
        """The file changed during the read: its new state starts settling now."""
        current = _signature(path)
        if current is None:
            self._seen.pop(resolved, None)
        else:
            self._seen[resolved] = (current, now)
        return _changed_event(path)

    def _read(self, path: Path, resolved: Path, stat: os.stat_result, now: float) -> WatchEvent | None:
        signature = (stat.st_size, stat.st_mtime_ns)
        if self._done.get(resolved) == signature:
            return None
        failed = self._failed.get(resolved)
        if failed is not None and failed[0] == signature:
            return None
        previous = self._seen.get(resolved)
        if previous is None or previous[0] != signature:
            self._seen[resolved] = (signature, now)
            return WatchEvent(str(path), "new", f"{stat.st_size} bytes, waiting for it to settle")
        if now - previous[1] < self.settle_s:
            return None
        try:
            epoch = read_epoch(path, trust=self.read.trust)
        except UnsafeCheckpointError as exc:  # complete, but refused: retrying will not help
            self._failed[resolved] = (signature, str(exc))
            self._seen.pop(resolved, None)
            return WatchEvent(str(path), "failed", str(exc))
        except CheckpointChangedError:
            return self._changed(path, resolved, now)
        except CollapseProbeError as exc:
            log.info("watch: %s not readable yet: %s", path, exc)
            return WatchEvent(str(path), "unreadable", f"not readable yet, will retry ({exc})")
        try:
            entry = audit_entry(locate(path, epoch_entry=epoch), eps=tuple(t.eps for t in self.thresholds),
                                method=self.method, read=self.read, retry=False)
        except CollapseProbeError as exc:
            if isinstance(exc, CheckpointChangedError) or _signature(path) != signature:
                return self._changed(path, resolved, now)  # rewritten while we read it
            self._failed[resolved] = (signature, str(exc))
            self._seen.pop(resolved, None)
            return WatchEvent(str(path), "failed", str(exc))
        if (entry.size_bytes, entry.mtime_ns) != signature or _signature(path) != signature:
            return self._changed(path, resolved, now)
        self._seen.pop(resolved, None)
        self._failed.pop(resolved, None)
        self._done[resolved] = signature
        self._entries.append(entry)
        self._audited.append(entry)
        if self.jsonl is not None:
            append_jsonl(self.jsonl, entry, method=self.method, network=self.read.network)
        return WatchEvent(str(path), "audited", _describe(entry), entry)


def _changed_event(path: Path) -> WatchEvent:
    return WatchEvent(str(path), "new", "changed while being read, will retry")


def _signature(path: Path) -> _Signature | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_size, stat.st_mtime_ns)


def _describe(entry: TrendEntry) -> str:
    epoch = "epoch ?" if entry.epoch is None else f"epoch {entry.epoch}"
    parts = []
    for head in entry.heads:
        if head.eps:
            parts.append(f"{head.name} {head.unique[0]}/{head.num_prototypes} unique at eps {head.eps[0]:g}")
    return f"{epoch}: " + "; ".join(parts)
