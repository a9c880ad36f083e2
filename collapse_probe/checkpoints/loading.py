"""Safe ``torch.load``: a restricted unpickler that runs nothing; placeholders for unknown classes."""

from __future__ import annotations

import argparse
import io
import logging
import pathlib
import pickle
import struct
import tokenize
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointChangedError, CheckpointError, UnsafeCheckpointError, option
from .files import sniff
from .unpickle import RestrictedPickle

__all__ = ["load_state", "load_object", "read_object", "Loaded", "live_files", "SAFE_GLOBALS"]

log = logging.getLogger(__name__)

#: Classes training scripts pickle next to the weights: DINO/iBOT/EsViT save ``args`` as an
#: ``argparse.Namespace``; runs launched through submitit may hold ``pathlib`` paths in it.
#: (The restricted unpickler in :mod:`.unpickle` also rebuilds numpy scalars, OmegaConf
#: configs and the collections containers; this tuple is what ``trust`` callers may rely on.)
SAFE_GLOBALS: tuple[type, ...] = (argparse.Namespace, pathlib.PosixPath, pathlib.WindowsPath,
                                  pathlib.PurePosixPath, pathlib.PureWindowsPath, pathlib.Path,
                                  pathlib.PurePath)

# Globals that mean "a slice of a distributed tensor": one FSDP rank's shard.
_SHARD_MARKERS = ("sharded_tensor", "ShardedTensor", "DTensor", "_shard")

# Set while reading files a training run may rewrite at any moment (``watch``): no memory
# mapping then, since a mapped file truncated under the reader kills it with SIGBUS.
_LIVE: ContextVar[bool] = ContextVar("collapse_probe_live_files", default=False)

_Signature = tuple[int, int, int]  # (inode, size in bytes, mtime in ns)


@contextmanager
def live_files() -> Iterator[None]:
    """Within this block, checkpoints are read into memory instead of memory-mapped.

    For files a running job may truncate and rewrite in place (DINO's ``checkpoint.pth``):
    reading a mapped page past the new end of file raises SIGBUS, which no handler can turn
    into an error. Reads with ``read()`` only ever see a short or inconsistent file, which the
    loader reports as :class:`CheckpointChangedError` or a damaged file.
    """
    token = _LIVE.set(True)
    try:
        yield
    finally:
        _LIVE.reset(token)


@dataclass(frozen=True)
class Loaded:
    """What :func:`read_object` read.

    Attributes:
        path: the file.
        obj: the top-level object (dict, tensor, ndarray or ``NpzFile``).
        replaced: ``module.qualname`` of each pickled class that was not loaded (an inert
            placeholder stands in its place); empty for files of plain data.
        records: zip checkpoints: storage data pointer -> zip record name, to check the CRC of
            just the records a caller uses (:meth:`check_records`).
    """

    path: Path
    obj: Any
    replaced: tuple[str, ...] = ()
    records: Mapping[int, str] = field(default_factory=dict)

    def check_records(self, tensors: Iterable[Any], *, what: str) -> None:
        """Verify the CRC-32 of the zip records holding ``tensors`` (a no-op for other files).

        A memory-mapped read never checks the archive's CRCs: bit rot in a head would be
        audited as if it were the trained weights.

        Raises:
            CheckpointError: a record's bytes do not match its CRC (names ``what``).
        """
        names = set()
        for tensor in tensors:
            try:
                pointer = tensor.untyped_storage().data_ptr()
            except (AttributeError, RuntimeError):
                continue
            if pointer in self.records:
                names.add(self.records[pointer])
        if not names:
            return
        try:
            with zipfile.ZipFile(self.path) as archive:
                by_suffix = {name.split("/", 1)[-1]: name for name in archive.namelist()}
                for name in sorted(names):
                    member = by_suffix.get(name)
                    if member is None:
                        continue
                    with archive.open(member) as handle:
                        while handle.read(1 << 24):
                            pass
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise CheckpointError(
                f"{self.path}: the bytes of {what} fail their checksum ({exc}): the file is "
                "damaged. Download or save it again.") from None


def load_state(path: Path | str, *, trust: bool = False) -> dict:
    """Load a whole checkpoint dict safely (memory-mapped, no code run).

    Args:
        path: a PyTorch checkpoint file (zip or legacy format).
        trust: load with full pickle. Only for files from a source you trust: unpickling can
            run arbitrary code.

    Returns:
        The checkpoint's top-level dict. Tensors of zip-format files are memory-mapped, so only
        what is touched is read from disk. Classes outside the allow-list are inert
        :class:`~collapse_probe.checkpoints.unpickle.Placeholder` objects.

    Raises:
        CheckpointError: the file is not a readable checkpoint dict (message names the problem).
    """
    path = Path(path)
    state = load_object(path, trust=trust)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a checkpoint dict.")
    return state


def load_object(path: Path | str, *, trust: bool = False) -> Any:
    """Whatever the file holds: a dict, a tensor (``.pt``), or a NumPy array / ``NpzFile``."""
    return read_object(path, trust=trust).obj


def read_object(path: Path | str, *, trust: bool = False) -> Loaded:
    """Read a checkpoint or array file without running any code from it.

    Args:
        path: a PyTorch checkpoint (zip or legacy format), ``.npy`` or ``.npz`` file.
        trust: unpickle with full pickle (runs whatever the file says: trusted files only).

    Returns:
        :class:`Loaded`: the object and the names of the classes replaced by placeholders.

    Raises:
        CheckpointError: the file cannot be read (message names the problem);
        CheckpointChangedError: it changed while it was read (a job is writing it).
    """
    path = Path(path)
    kind = sniff(path)
    before = _signature(path)
    live = _LIVE.get()
    if kind == "npy":
        loaded = Loaded(path, _numpy_load(path, mmap_mode=None if live else "r"))
    elif kind == "npz":
        loaded = Loaded(path, _numpy_load(path))
    elif kind == "torch-zip" and not live:
        try:
            loaded = _torch_load(path, mmap=True, trust=trust)
        except _MmapFailed:
            # Memory-mapping only saves memory: a file it cannot map is read the ordinary way.
            log.info("%s: memory-mapping failed, reading it whole", path)
            loaded = _torch_load(path, mmap=False, trust=trust)
    else:
        loaded = _torch_load(path, mmap=False, trust=trust)
    if _signature(path) != before:
        raise CheckpointChangedError(
            f"{path} changed while it was being read (a job is writing it): read it again "
            "once it is complete.")
    return loaded


def _signature(path: Path) -> _Signature | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


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
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, TypeError, SyntaxError,
            tokenize.TokenError, OverflowError, MemoryError) as exc:
        raise _damaged(path, exc) from None


def _torch_load(path: Path, *, mmap: bool, trust: bool) -> Loaded:
    # torch's rebuild functions warn about its own internals (TypedStorage, deprecated quantized
    # constructors) while reading old or unusual tensors: noise on top of the one-line answer.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"torch(\.|$)")
        return _load_with_torch(path, mmap=mmap, trust=trust)


def _load_with_torch(path: Path, *, mmap: bool, trust: bool) -> Loaded:
    import torch

    try:
        if trust:
            log.warning("loading %s with full pickle (%s): any code the file holds runs now, with "
                        "your permissions", path, option("trust", True))
            source: Any = path if mmap or zipfile.is_zipfile(path) else _in_memory(path)
            return Loaded(path, torch.load(source, map_location="cpu", weights_only=False,
                                           mmap=mmap))
        restricted = RestrictedPickle()
        before = restricted.snapshot()
        try:
            if mmap:
                obj = torch.load(path, map_location="cpu", weights_only=False,
                                 pickle_module=restricted, mmap=True)
            else:
                # Zip files are read record by record with plain reads (no mapping). Legacy
                # files go in as bytes: a file object without a descriptor makes torch skip
                # its tar-format reader, which extracts members to disk.
                source = path if zipfile.is_zipfile(path) else _in_memory(path)
                obj = torch.load(source, map_location="cpu", weights_only=False,
                                 pickle_module=restricted, mmap=False)
        finally:
            tampered = restricted.restore(before)
        if tampered:
            raise UnsafeCheckpointError(
                f"{path} tries to change the attributes of {', '.join(tampered)} while it is "
                "unpickled (put back): it is not a plain checkpoint; refusing it.")
    except CheckpointError:
        raise
    except (ModuleNotFoundError, AttributeError) as exc:
        if not trust:  # the restricted unpickler imports nothing: a damaged structure
            raise _damaged(path, exc) from None
        raise CheckpointError(f"{path} was pickled with a class that cannot be imported here "
                              f"({exc}): install the package that defines it.") from None
    except pickle.UnpicklingError as exc:
        raise _damaged(path, exc) from None
    except RuntimeError as exc:
        if "explicit pickle_module" in str(exc):  # TORCH_FORCE_WEIGHTS_ONLY_LOAD=1
            raise CheckpointError(
                f"{path} cannot be read while TORCH_FORCE_WEIGHTS_ONLY_LOAD is set (it disables "
                "the restricted reader): unset it for collapse-probe.") from None
        if mmap:
            raise _MmapFailed from exc
        raise _damaged(path, exc) from None
    except (EOFError, OSError, ValueError, KeyError, TypeError, IndexError,
            struct.error, zipfile.BadZipFile, UnicodeDecodeError, OverflowError,
            MemoryError, RecursionError, ImportError) as exc:
        if mmap and isinstance(exc, (OSError, ValueError)):
            raise _MmapFailed from exc
        raise _damaged(path, exc) from None
    replaced = tuple(sorted(restricted.replaced))
    if any(marker in name for name in replaced for marker in _SHARD_MARKERS):
        raise CheckpointError(
            f"{path} holds sharded tensors ({', '.join(replaced[:3])}): it is one rank's FSDP "
            "shard. Audit the consolidated `teacher_checkpoint.pth` instead.")
    if replaced:
        log.info("%s: %d pickled class(es) were not loaded (inert placeholders stand in "
                 "for them): %s", path, len(replaced), ", ".join(replaced))
    # Legacy files have no zip records to check.
    records = dict(restricted.records) if zipfile.is_zipfile(path) else {}
    return Loaded(path, obj, replaced, records)


def _in_memory(path: Path) -> io.BytesIO:
    """The file's bytes in memory, so that later writes to the file cannot reach the reader."""
    try:
        with open(path, "rb") as handle:
            return io.BytesIO(handle.read())
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read: {exc.strerror or exc}.") from None


def unsafe_message(path: Path, replaced: Iterable[str], *, what: str) -> UnsafeCheckpointError:
    """The refusal for a file whose ``what`` (e.g. its prototypes) depends on replaced classes."""
    listed = ", ".join(sorted(replaced)) or "unknown classes"
    return UnsafeCheckpointError(
        f"{path}: {what} depend on pickled classes that were not loaded ({listed}); "
        f"refusing to run them. Pass {option('trust', True)} to unpickle the file fully, only if "
        "you trust its source: that runs any code it holds.")


def _damaged(path: Path, exc: BaseException) -> CheckpointError:
    detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
    return CheckpointError(f"{path} cannot be read: it is truncated or damaged ({detail}). "
                           "Download or save it again.")
