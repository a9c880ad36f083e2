"""Put the checkpoints of one training run in epoch order.

DINO-family training scripts write ``checkpoint.pth`` every epoch (the latest state) and
``checkpoint0040.pth`` every ``saveckp_freq`` epochs; their dict holds ``epoch``, the number
of *completed* epochs (DINO saves ``epoch + 1``, so ``checkpoint0040.pth`` holds 41). The
epoch of a file is that entry when present, else the number in its name, else the number
ending its folder's name (DINOv2's ``eval/training_<step>/teacher_checkpoint.pth``), else unknown.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError
from ..validation import fail

__all__ = ["RunCheckpoint", "CHECKPOINT_SUFFIXES", "LATEST_STEMS", "epoch_from_name", "epoch_from_folder",
           "is_latest_name", "checkpoint_files", "read_epoch", "read_args", "locate", "order_checkpoints",
           "expand_inputs"]

log = logging.getLogger(__name__)

#: File endings a training folder's checkpoints have.
CHECKPOINT_SUFFIXES: tuple[str, ...] = (".pth", ".pt", ".pth.tar", ".ckpt")
#: Names (without ending) of the file a training script overwrites with its latest state.
LATEST_STEMS: frozenset[str] = frozenset({"checkpoint", "last", "latest"})

_EPOCH_WORD = re.compile(r"epoch[=_\-]?(\d+)", re.IGNORECASE)
_TRAILING_DIGITS = re.compile(r"(\d+)$")
_STEP_FOLDER = re.compile(r"(?:training|step|iter|iteration|epoch|checkpoint|ckpt)[_\-=]?(\d+)",
                          re.IGNORECASE)


def _stem(name: str) -> str:
    for suffix in sorted(CHECKPOINT_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def epoch_from_name(path: Path | str) -> int | None:
    """The epoch in a file name: ``epoch=12`` / ``epoch_12`` anywhere, else trailing digits
    (``checkpoint0040.pth`` -> 40); None when the name has neither."""
    stem = _stem(Path(path).name)
    match = _EPOCH_WORD.search(stem) or _TRAILING_DIGITS.search(stem)
    return int(match.group(1)) if match else None


def epoch_from_folder(path: Path | str) -> int | None:
    """The step in the file's folder name when it is a step folder (``training_12499``, as in
    DINOv2's ``eval/training_12499/teacher_checkpoint.pth``; also ``step_``, ``iter_``,
    ``epoch_``, ``checkpoint_`` + digits); None otherwise (a folder ``run1`` is not a step)."""
    match = _STEP_FOLDER.fullmatch(Path(path).parent.name)
    return int(match.group(1)) if match else None


def is_latest_name(path: Path | str) -> bool:
    """Whether the name is one a training script keeps overwriting (``checkpoint.pth``, ``last.ckpt``)."""
    return _stem(Path(path).name).lower() in LATEST_STEMS


def _is_checkpoint_name(name: str) -> bool:
    return not name.startswith(".") and any(name.endswith(s) for s in CHECKPOINT_SUFFIXES)


def checkpoint_files(folder: Path | str, *, recursive: bool = False) -> list[Path]:
    """The checkpoint files inside ``folder``, by path; hidden and temporary files skipped.

    ``recursive``: also in its subfolders (hidden ones skipped), e.g. DINOv2's
    ``eval/training_<step>/teacher_checkpoint.pth``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise fail("folder", expected="a training output folder", got=repr(str(folder)))
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in candidates
                  if _is_checkpoint_name(p.name) and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def read_epoch(path: Path | str, *, trust: bool = False) -> int | None:
    """The ``epoch`` entry of a checkpoint dict, or None when it has none (or not a number).

    Raises:
        CheckpointError: the file cannot be read (e.g. it is still being written).
    """
    from ..checkpoints.loading import load_object

    state = load_object(path, trust=trust)
    value = state.get("epoch") if isinstance(state, dict) else None
    if hasattr(value, "item"):  # a 0-d tensor or NumPy scalar
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value)


@dataclass(frozen=True)
class RunCheckpoint:
    """One checkpoint of a run, placed in order.

    Attributes:
        path: the file.
        epoch: its epoch (None when unknown).
        epoch_source: where the epoch came from: ``checkpoint`` (its ``epoch`` entry),
            ``name`` (digits in the file name), ``folder`` (digits ending the folder's name, a
            step count for DINOv2's ``eval/training_<step>/``) or ``none``.
        latest: whether the name marks the run's latest state (``checkpoint.pth``).
    """

    path: Path
    epoch: int | None
    epoch_source: str
    latest: bool


def locate(path: Path | str, *, epoch_entry: int | None) -> RunCheckpoint:
    """Describe one file given its ``epoch`` entry (None when the dict has none)."""
    path = Path(path)
    if epoch_entry is not None:
        epoch, source = epoch_entry, "checkpoint"
    elif (epoch := epoch_from_name(path)) is not None:
        source = "name"
    elif not is_latest_name(path) and (epoch := epoch_from_folder(path)) is not None:
        source = "folder"
    else:
        epoch, source = None, "none"
    return RunCheckpoint(path=path, epoch=epoch, epoch_source=source, latest=is_latest_name(path))


def order_checkpoints(checkpoints: Sequence[RunCheckpoint]) -> tuple[RunCheckpoint, ...]:
    """Sort a run's checkpoints: by epoch; on a tie the latest-state file comes last.

    Files without an epoch keep their given order after those with one, and a latest-state
    file without an epoch comes at the very end (it is the newest state of the run).
    """
    def key(item: tuple[int, RunCheckpoint]) -> tuple[int, int, int, int]:
        index, c = item
        if c.epoch is not None:
            return (0, c.epoch, int(c.latest), index)
        return (2 if c.latest else 1, 0, 0, index)

    ordered = tuple(c for _, c in sorted(enumerate(checkpoints), key=key))
    unknown = [str(c.path) for c in ordered if c.epoch is None and not c.latest]
    if unknown and len(unknown) < len(ordered):
        log.warning("no epoch for %s: kept in the given order after the others", ", ".join(unknown))
    return ordered


def expand_inputs(inputs: Iterable[Path | str]) -> list[Path]:
    """Folders become their checkpoint files; files are kept as given. Each file appears once."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = checkpoint_files(path)
            if not found:
                raise CheckpointError(f"{path} holds no checkpoint files "
                                      f"({', '.join('*' + s for s in CHECKPOINT_SUFFIXES)}).")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise CheckpointError(f"{path} does not exist.")
    seen: set[Path] = set()
    unique = []
    for f in files:
        resolved = f.resolve()
        if resolved not in seen:
            seen.add(resolved)
            unique.append(f)
    if not unique:
        raise fail("checkpoints", expected="at least one file or folder", got="none")
    return unique


def read_args(path: Path | str, *, trust: bool = False) -> dict[str, object]:
    """The training arguments a checkpoint stores under ``args`` (``argparse.Namespace`` or a
    dict), as a dict; empty when it has none.

    Raises:
        CheckpointError: the file cannot be read.
    """
    from ..checkpoints.loading import load_object

    from ..checkpoints.unpickle import Placeholder

    state = load_object(path, trust=trust)
    args = state.get("args") if isinstance(state, dict) else None
    if isinstance(args, Placeholder):  # an args class that was not loaded: its pickled state
        args = args.state if isinstance(args.state, dict) else None
    if isinstance(args, dict):
        return dict(args)
    if args is not None and hasattr(args, "__dict__"):
        return dict(vars(args))
    return {}
