"""Read a DINO / iBOT ``log.txt`` and flag a loss plateau at ln(K).

DINO and iBOT write one JSON object per epoch to ``<output_dir>/log.txt``: DINO
``{"train_loss": ..., "train_lr": ..., "train_wd": ..., "epoch": 0}``, iBOT additionally
``train_cls`` and ``train_patch`` (its ``train_loss`` is their sum). When teacher and student
outputs are both uniform over the K prototypes, the cross-entropy between them is exactly
ln(K) (11.09 for K = 65536): a loss that stays there is the signature of full collapse.
Partial collapse (duplicated prototypes) does not show in the loss; audit the checkpoints for that.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CollapseProbeError, InputError, option
from ..validation import fail

__all__ = ["LogEntry", "TrainingLog", "PlateauCheck", "PlateauVerdict", "read_training_log",
           "detect_plateau", "prototypes_from_run", "DEFAULT_TOLERANCE", "DEFAULT_WINDOW"]

log = logging.getLogger(__name__)

#: A loss within this many nats of ln(K) counts as "at ln(K)".
DEFAULT_TOLERANCE = 0.05
#: Epochs the loss must stay at ln(K), at the end of the log, to call it a plateau.
DEFAULT_WINDOW = 5


@dataclass(frozen=True)
class LogEntry:
    """One epoch of a training log: its number and its ``train_*`` losses (nats)."""

    epoch: int
    losses: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingLog:
    """A parsed ``log.txt``: entries in file order and how many lines were skipped."""

    path: str
    entries: tuple[LogEntry, ...]
    skipped_lines: int = 0

    @property
    def kind(self) -> str:
        """``ibot`` when the log has separate [CLS] and patch losses, else ``dino``."""
        if self.entries and all({"train_cls", "train_patch"} <= set(e.losses) for e in self.entries):
            return "ibot"
        return "dino"

    @property
    def loss_names(self) -> tuple[str, ...]:
        """The losses every entry has, ``train_loss`` first."""
        if not self.entries:
            return ()
        common = set.intersection(*(set(e.losses) for e in self.entries))
        return tuple(sorted(common, key=lambda n: (n != "train_loss", n)))


@dataclass(frozen=True)
class PlateauCheck:
    """One loss series against its ln(K) level.

    Attributes:
        loss: the series (``train_loss``, ``train_cls`` or ``train_patch``).
        num_prototypes: K of the head that loss is computed over.
        level: ln(K) in nats.
        tolerance: nats either side of ``level`` that count as "at ln(K)".
        window: epochs at the end of the log that must all be at ln(K).
        trailing_epochs: how many of the last epochs are at ln(K) in a row.
        last_loss: the loss of the last epoch.
        at_plateau: ``trailing_epochs >= window``.
    """

    loss: str
    num_prototypes: int
    level: float
    tolerance: float
    window: int
    trailing_epochs: int
    last_loss: float
    at_plateau: bool


@dataclass(frozen=True)
class PlateauVerdict:
    """The log's verdict: ``collapsed`` when any checked loss sits at ln(K); ``message`` says why."""

    checks: tuple[PlateauCheck, ...]
    num_epochs: int
    collapsed: bool
    enough_epochs: bool
    message: str


def read_training_log(path: Path | str) -> TrainingLog:
    """Parse a ``log.txt`` of JSON lines. Lines that are not JSON objects with an ``epoch`` and
    at least one numeric ``train_*`` loss are skipped (a line being written, an eval line).

    Raises:
        InputError: the file does not exist or has no usable line.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist or is not a file: pass the run's log.txt.")
    entries, skipped = [], 0
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"{path} cannot be read: {exc.strerror or exc}.") from None
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except (json.JSONDecodeError, RecursionError, ValueError):
            # Not JSON, nested too deeply to parse, or an integer beyond Python's digit limit.
            skipped += 1
            continue
        try:
            entry = _entry(data)
        except (OverflowError, ValueError):  # a number beyond float range
            entry = None
        if entry is None:
            skipped += 1
        else:
            entries.append(entry)
    if not entries:
        unusable = f" ({skipped} lines could not be used)" if skipped else ""
        raise InputError(f"{path} has no line with an `epoch` and a `train_loss`{unusable}: "
                         "expected the JSON-lines log.txt that DINO / iBOT write.")
    if skipped:
        log.info("%s: skipped %d lines without epoch and losses", path, skipped)
    return TrainingLog(path=str(path), entries=tuple(entries), skipped_lines=skipped)


def _entry(data: object) -> LogEntry | None:
    if not isinstance(data, dict):
        return None
    epoch = data.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, (int, float)) or not math.isfinite(epoch):
        return None
    losses = {k: float(v) for k, v in data.items()
              if isinstance(k, str) and k in ("train_loss", "train_cls", "train_patch")
              and isinstance(v, (int, float)) and not isinstance(v, bool)}
    if not all(math.isfinite(v) for v in losses.values()):
        return None
    if not losses:
        return None
    return LogEntry(epoch=int(epoch), losses=losses)


def detect_plateau(
    training_log: TrainingLog,
    *,
    num_prototypes: int,
    num_patch_prototypes: int | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    window: int = DEFAULT_WINDOW,
) -> PlateauVerdict:
    """Flag a loss that has stayed within ``tolerance`` of ln(K) for the last ``window`` epochs.

    DINO logs check ``train_loss`` against ln(``num_prototypes``); iBOT logs check ``train_cls``
    against ln(``num_prototypes``) and ``train_patch`` against ln(``num_patch_prototypes``)
    (default: the same K).
    """
    if isinstance(num_prototypes, bool) or not isinstance(num_prototypes, int) or num_prototypes < 2:
        raise fail("num_prototypes", expected="an integer K >= 2", got=repr(num_prototypes))
    patch_k = num_prototypes if num_patch_prototypes is None else num_patch_prototypes
    if isinstance(patch_k, bool) or not isinstance(patch_k, int) or patch_k < 2:
        raise fail("num_patch_prototypes", expected="an integer K >= 2", got=repr(num_patch_prototypes))
    if not (math.isfinite(tolerance) and tolerance > 0):
        raise fail("tolerance", expected="nats > 0", got=repr(tolerance))
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise fail("window", expected="a number of epochs >= 1", got=repr(window))

    if training_log.kind == "ibot":
        series = (("train_cls", num_prototypes), ("train_patch", patch_k))
    else:
        series = (("train_loss", num_prototypes),)
    entries = [e for e in training_log.entries if all(name in e.losses for name, _ in series)]
    if not entries:
        raise InputError(f"{training_log.path} has no epoch with {', '.join(n for n, _ in series)}.")
    checks = []
    for name, k in series:
        level = math.log(k)
        trailing = 0
        for entry in reversed(entries):
            if abs(entry.losses[name] - level) > tolerance:
                break
            trailing += 1
        checks.append(PlateauCheck(loss=name, num_prototypes=k, level=level, tolerance=tolerance,
                                   window=window, trailing_epochs=trailing,
                                   last_loss=entries[-1].losses[name], at_plateau=trailing >= window))
    enough = len(entries) >= window
    collapsed = any(c.at_plateau for c in checks)
    return PlateauVerdict(checks=tuple(checks), num_epochs=len(entries), collapsed=collapsed,
                          enough_epochs=enough, message=_message(checks, entries, enough))


def _message(checks: list[PlateauCheck], entries: list[LogEntry], enough: bool) -> str:
    plateaued = [c for c in checks if c.at_plateau]
    if plateaued:
        first = entries[-plateaued[0].trailing_epochs].epoch
        parts = [f"{c.loss} within {c.tolerance:g} of ln({c.num_prototypes}) = {c.level:.3f} for "
                 f"the last {c.trailing_epochs} epoch{'s' * (c.trailing_epochs != 1)}"
                 for c in plateaued]
        return ("FULL COLLAPSE: " + "; ".join(parts) + f" (since epoch {first}). The outputs are "
                "uniform over the prototypes; check the teacher temperature and centering.")
    if not enough:
        return (f"too few epochs to judge: {len(entries)} logged, a plateau needs "
                f"{checks[0].window} ({option('window')}).")
    parts = [f"{c.loss} {c.last_loss:.3f} vs ln({c.num_prototypes}) = {c.level:.3f}" for c in checks]
    return ("no loss plateau at ln(K): " + "; ".join(parts) + ". Partial collapse does not show "
            "in the loss: audit the checkpoints.")


def prototypes_from_run(folder: Path | str, *,
                        problems: list[str] | None = None) -> tuple[int, int | None] | None:
    """K (``args.out_dim``) and the patch K (``args.patch_out_dim``, iBOT) from a checkpoint in
    ``folder``: ``checkpoint.pth`` first, else the other checkpoint files by name. None when no
    readable checkpoint records them; ``problems`` (if given) receives why each file that could
    not be read was skipped, so a caller can say so instead of blaming ``args.out_dim``.
    """
    from .ordering import checkpoint_files, read_args

    folder = Path(folder)
    if not folder.is_dir():
        return None
    files = checkpoint_files(folder)
    files.sort(key=lambda p: (p.name != "checkpoint.pth", p.name))
    for path in files:
        try:
            args = read_args(path)
        except CollapseProbeError as exc:
            log.info("cannot read args of %s: %s", path, exc)
            if problems is not None:
                problems.append(str(exc))
            continue
        out_dim = _positive_int(args.get("out_dim"))
        if out_dim is not None:
            return out_dim, _positive_int(args.get("patch_out_dim"))
    return None


def _positive_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        return None
    return value
