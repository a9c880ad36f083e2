"""Safe ``torch.load``: weights only, an explicit allow-list, refusal with a reason otherwise."""

from __future__ import annotations

import argparse
import logging
import pathlib
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, UnsafeCheckpointError
from .sniff import sniff

__all__ = ["load_state", "load_object", "SAFE_GLOBALS"]

log = logging.getLogger(__name__)

#: Classes training scripts pickle next to the weights: DINO/iBOT/EsViT save ``args`` as an
#: ``argparse.Namespace``; runs launched through submitit may hold ``pathlib`` paths in it.
SAFE_GLOBALS: tuple[type, ...] = (argparse.Namespace, pathlib.PosixPath, pathlib.WindowsPath,
                                  pathlib.PurePosixPath, pathlib.PureWindowsPath, pathlib.Path,
                                  pathlib.PurePath)
_SAFE_NAMES = frozenset(f"{cls.__module__}.{cls.__qualname__}" for cls in SAFE_GLOBALS)

# Globals that mean "a slice of a distributed tensor": one FSDP rank's shard.
_SHARD_MARKERS = ("sharded_tensor", "ShardedTensor", "DTensor", "_shard")
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")


def load_state(path: Path | str, *, trust: bool = False) -> dict:
    """Load a whole checkpoint dict safely (memory-mapped, weights only).

    Args:
        path: a PyTorch checkpoint file (zip or legacy format).
        trust: load with full pickle. Only for files from a source you trust: unpickling can
            run arbitrary code.

    Returns:
        The checkpoint's top-level dict. Tensors of zip-format files are memory-mapped, so only
        what is touched is read from disk.

    Raises:
        CheckpointError: the file is not a readable checkpoint dict (message names the problem).
        UnsafeCheckpointError: the file needs classes outside the allow-list and ``trust`` is False.
    """
    path = Path(path)
    state = load_object(path, trust=trust)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a checkpoint dict.")
    return state


def load_object(path: Path | str, *, trust: bool = False) -> Any:
    """Whatever the file holds: a dict, a tensor (``.pt``), or a NumPy array / ``NpzFile``."""
    path = Path(path)
    kind = sniff(path)
    if kind == "npy":
        return _numpy_load(path, mmap_mode="r")
    if kind == "npz":
        return _numpy_load(path)
    if kind == "torch-zip":
        try:
            return _torch_load(path, mmap=True, trust=trust)
        except _MmapFailed:
            # Memory-mapping only saves memory: a file it cannot map is read the ordinary way.
            log.info("%s: memory-mapping failed, reading it whole", path)
    return _torch_load(path, mmap=False, trust=trust)


class _MmapFailed(Exception):
    """``torch.load(mmap=True)`` failed where a plain load may not."""


def _numpy_load(path: Path, **kwargs: Any) -> Any:
    try:
        return np.load(path, allow_pickle=False, **kwargs)
    except ValueError as exc:
        if "pickle" in str(exc) or "Python objects" in str(exc):
            raise CheckpointError(f"{path} holds Python objects, which are not read without "
                                  "unpickling: save a plain numeric array.") from None
        raise _damaged(path, exc) from None
    except (OSError, EOFError) as exc:
        raise _damaged(path, exc) from None


def _torch_load(path: Path, *, mmap: bool, trust: bool) -> Any:
    import torch

    try:
        if trust:
            log.warning("loading %s with full pickle (trusted by the caller)", path)
            return torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        if trust or "Weights only load failed" not in str(exc):
            raise _damaged(path, exc) from None
        raise _unsafe(path, exc) from None
    except (ModuleNotFoundError, AttributeError) as exc:
        raise CheckpointError(f"{path} was pickled with a class that cannot be imported here "
                              f"({exc}): install the package that defines it.") from None
    except RuntimeError as exc:
        if mmap:
            raise _MmapFailed from exc
        raise _damaged(path, exc) from None
    except (EOFError, OSError, ValueError, KeyError, TypeError) as exc:
        raise _damaged(path, exc) from None


def _unsafe(path: Path, exc: BaseException) -> CheckpointError:
    import torch

    needed: list[str] = []
    try:  # zip files only; legacy ones raise here
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception as inner:  # noqa: BLE001 - only used to word the message
        log.debug("could not list globals of %s: %s", path, inner)
    if not needed:  # legacy files: the unpickler names the first offending global
        needed = _UNSUPPORTED_GLOBAL.findall(str(exc))
    needed = sorted({name for name in needed if name not in _SAFE_NAMES})
    if any(marker in name for name in needed for marker in _SHARD_MARKERS):
        return CheckpointError(
            f"{path} holds sharded tensors ({', '.join(needed[:3])}): it is one rank's FSDP "
            "shard. Audit the consolidated `teacher_checkpoint.pth` instead.")
    listed = ", ".join(needed) if needed else "unknown classes"
    return UnsafeCheckpointError(
        f"{path} needs pickled classes outside the safe allow-list ({listed}); refusing to "
        "unpickle them. Pass --trust-checkpoint (trust=True) to load it with full pickle, only "
        "if you trust the file's source.")


def _damaged(path: Path, exc: BaseException) -> CheckpointError:
    detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
    return CheckpointError(f"{path} cannot be read: it is truncated or damaged ({detail}). "
                           "Download or save it again.")
