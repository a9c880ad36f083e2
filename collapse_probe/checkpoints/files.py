"""What a file is, told from its bytes before anything is unpickled.

* Its kind, from its first and last bytes: the usual impostors get a message that names them (a
  missing path, a folder, an empty file, a Git LFS pointer, an HTML/XML page saved under a
  checkpoint's name, a zip archive cut short, an FSDP shard, a TorchScript archive, a FIFO or
  device, a file that cannot be opened).
* Whether a PyTorch file is complete (checked on every download, since most zoo entries have no
  published checksum). The zip format (``torch.save`` since 1.6): the central directory must be
  readable, hold a ``<archive>/data.pkl`` record, and every record it lists must lie inside the
  file; with ``crc`` every record is read back and its CRC-32 compared. The legacy format: five
  pickles (magic number, protocol, system info, the object, the storage keys) walked opcode by
  opcode with :mod:`pickletools` (which executes nothing), then one raw storage per key whose
  sizes must end exactly at the end of the file.
"""

from __future__ import annotations

import errno
import io
import os
import pickle
import pickletools
import re
import stat
import struct
import zipfile
from pathlib import Path

from ..errors import CheckpointChangedError, CheckpointError

__all__ = ["sniff", "KINDS", "FSDP_SHARD_NAME", "check_torch_file", "LEGACY_MAGIC"]


#: What :func:`sniff` can return: a PyTorch zip checkpoint, a legacy (pre-1.6) pickle
#: checkpoint, a NumPy ``.npy`` array, a NumPy ``.npz`` archive.
KINDS: tuple[str, ...] = ("torch-zip", "torch-legacy", "npy", "npz")

#: DINOv2 writes ``model_<iteration>.rank_<r>.pth`` per rank when it trains with FSDP.
FSDP_SHARD_NAME = re.compile(r"(^|[._-])rank_\d+([._-]|$)")

_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"
_NUMPY_MAGIC = b"\x93NUMPY"
_PICKLE_PROTO = 0x80
_LFS_PREFIX = b"version https://git-lfs"


def sniff(path: Path) -> str:
    """Classify ``path`` as one of :data:`KINDS`, or raise :class:`CheckpointError` naming the problem."""
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise CheckpointError(f"{path} is a broken symbolic link (it points to "
                                  f"{os.readlink(path)}, which does not exist).") from None
        raise CheckpointError(f"no such file: {path}") from None
    except OSError as exc:
        raise CheckpointError(os_problem(path, exc)) from None
    if stat.S_ISDIR(info.st_mode):
        raise CheckpointError(_directory_message(path))
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(f"{path} is {_special_kind(info.st_mode)}, not a regular file: "
                              "save or copy the checkpoint to a file and pass that.")
    if FSDP_SHARD_NAME.search(path.name):
        raise CheckpointError(
            f"{path} looks like one rank's FSDP shard (its name has `rank_N`): a shard holds a "
            "slice of each tensor. Audit the consolidated `teacher_checkpoint.pth` from the "
            "run's eval folder instead.")
    size = info.st_size
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError as exc:
        raise CheckpointError(os_problem(path, exc)) from None
    if size == 0:
        if head:  # /proc, /sys and similar report 0 bytes but produce data
            raise CheckpointError(f"{path} is a special file whose size the system does not "
                                  "report (e.g. under /proc), not a checkpoint.")
        raise CheckpointError(f"{path} is empty (0 bytes): the save or download did not complete.")
    if not head:  # truncated between stat and read: a job is rewriting it
        raise CheckpointChangedError(f"{path} was emptied while being read (a job is writing "
                                     "it): read it again once it is complete.")
    if head.startswith(_LFS_PREFIX):
        raise CheckpointError(
            f"{path} is a Git LFS pointer ({size} bytes), not the checkpoint: run `git lfs pull` "
            "in its repository or download the file itself.")
    if head.lstrip()[:1] == b"<":
        what = "an XML" if head.lstrip()[:5].lower() == b"<?xml" else "an HTML"
        raise CheckpointError(
            f"{path} is {what} page, not a checkpoint (an error or login page saved under the "
            "checkpoint's name): download the file again from its real URL.")
    if head.startswith(_NUMPY_MAGIC):
        return "npy"
    if head.startswith(_ZIP_MAGIC) or head.startswith(_EMPTY_ZIP_MAGIC):
        return _zip_kind(path, size)
    if head[0] == _PICKLE_PROTO:
        if _plain_pickle(head):
            raise CheckpointError(
                f"{path} is a plain Python pickle (pickle.dump), not a file written by "
                "torch.save, which is what torch.load and collapse-probe read (nothing in it was "
                "unpickled): save the state dict with torch.save and audit that.")
        return "torch-legacy"
    if _looks_like_text(head):
        raise CheckpointError(f"{path} is a text file, not a checkpoint (it starts with "
                              f"{head[:40].decode('utf-8', 'replace')!r}).")
    raise CheckpointError(f"{path} is neither a PyTorch checkpoint nor a NumPy file (it starts "
                          f"with bytes {head[:8].hex(' ')}).")


def _plain_pickle(head: bytes) -> bool:
    """Whether a file starting with a pickle's PROTO opcode does not start with torch's legacy
    magic number (its own first pickle): it names a global, or its first pickle ends holding
    something else. A first pickle cut short by ``head``'s end (a truncated file, or a long
    first value) is not judged here. The opcodes are only walked; nothing is unpickled but a
    complete pickle of plain values."""
    try:
        for opcode, _, position in pickletools.genops(io.BytesIO(head)):
            if opcode.name in _OBJECT_OPCODES:
                return True
            if opcode.name == "STOP":
                first = pickle.loads(head[:position + 1])
                return not (type(first) is int and first == LEGACY_MAGIC)
    except Exception:  # noqa: BLE001 - cut short or damaged: the loader says which
        return False
    return False


#: Opcodes that import, call or build objects: never in torch's magic-number pickle.
_OBJECT_OPCODES = frozenset({"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ",
                             "NEWOBJ_EX", "BUILD", "PERSID", "BINPERSID", "EXT1", "EXT2", "EXT4"})


def _zip_kind(path: Path, size: int) -> str:
    # Reading the central directory touches only the end of the file: cheap even for 1 GB.
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise CheckpointError(
            f"{path} is a truncated or damaged zip archive ({size} bytes, {exc}): the download "
            "or save was cut short; fetch or save it again.") from None
    if any(name.endswith("constants.pkl") for name in names):
        # torch.load hands these to torch.jit.load, which runs the archive's own code.
        raise CheckpointError(
            f"{path} is a TorchScript archive (torch.jit.save), not a checkpoint: loading it "
            "would run its code. Save the model's state_dict with torch.save and audit that.")
    if any(name.endswith("data.pkl") for name in names):
        return "torch-zip"
    if names and all(name.endswith(".npy") for name in names):
        return "npz"
    raise CheckpointError(f"{path} is a zip archive but neither a PyTorch checkpoint nor a NumPy "
                          f".npz (it holds {', '.join(names[:5]) or 'nothing'}).")


def os_problem(path: Path, exc: OSError) -> str:
    """One line naming why the operating system refused ``path`` and what to do."""
    if exc.errno == errno.ELOOP:
        return f"{path} is a symbolic link loop (a link that points back to itself): fix the link."
    if exc.errno == errno.ENAMETOOLONG:
        longest = max((len(os.fsencode(part)) for part in Path(path).parts), default=0)
        if longest > 255:
            return (f"the path {str(path)[:80]}... is too long for the file system (a name of "
                    f"{longest} bytes; the usual limit is 255): use a shorter name.")
        return (f"the path {str(path)[:80]}... is too long for the file system "
                f"({len(os.fsencode(str(path)))} bytes in all; the usual limit is 4096): use a "
                "shorter path, or run from a folder nearer the file.")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (f"{path} cannot be read: permission denied. Check its permissions (and its "
                "folder's) or run as a user who can read it.")
    return f"{path} cannot be read: {exc.strerror or exc}."


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\r\n\t" for ch in text)


def _directory_message(path: Path) -> str:
    try:
        inside = [name for name in ("teacher_checkpoint.pth", "checkpoint.pth",
                                    "checkpoint.pth.tar") if (path / name).is_file()]
    except OSError:
        inside = []
    hint = f" It holds {inside[0]}: pass {path / inside[0]}." if inside else ""
    return f"{path} is a directory, not a checkpoint file.{hint}"


#: ``torch.serialization``'s magic number, the first pickle of a legacy file.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_ELEMENT_SIZES = (1, 2, 4, 8, 16)  # the storages' element sizes; the file does not say which
_MAX_STATES = 4096


def _describe_start(head: bytes) -> str:
    text = head[:64].lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<?xml", b"<")):
        return "it is an HTML or XML page (a login or error page?)"
    if text.startswith(b"version https://git-lfs"):
        return "it is a Git LFS pointer, not the file"
    if not head:
        return "it is empty"
    return f"it starts with {head[:16]!r}, neither a zip nor a legacy PyTorch file"


def _check_zip(path: Path, size: int, *, crc: bool) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if not any(i.filename.endswith("data.pkl") for i in infos):
                return "its zip directory lists no data.pkl record"
            for info in infos:
                if info.header_offset + 30 + len(info.filename) + info.compress_size > size:
                    return f"record {info.filename!r} lies beyond the end of the file"
            if crc:
                bad = archive.testzip()
                if bad is not None:
                    return f"record {bad!r} fails its CRC check"
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        return f"its zip directory cannot be read: {exc}"
    return ""


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:  # noqa: ARG002
        raise pickle.UnpicklingError("globals are not loaded here")


def _skip_pickle(handle: io.BufferedReader) -> int:
    """Walk one pickle without executing it; return where it ends. Raises on truncation."""
    end = None
    for opcode, _, pos in pickletools.genops(handle):
        if opcode.name == "STOP":
            end = pos + 1
    if end is None:
        raise ValueError("a pickle has no end")
    handle.seek(end)
    return end


def _check_legacy(path: Path, size: int) -> str:
    try:
        with open(path, "rb") as handle:
            start = handle.tell()
            _skip_pickle(handle)
            handle.seek(start)
            if _NoGlobals(handle).load() != LEGACY_MAGIC:
                return "its first pickle is not PyTorch's magic number"
            for _ in range(3):  # protocol version, system info, the object itself
                _skip_pickle(handle)
            keys_at = handle.tell()
            _skip_pickle(handle)
            end = handle.tell()
            handle.seek(keys_at)
            keys = _NoGlobals(handle).load()  # a list of strings: no globals needed
            handle.seek(end)
            if not isinstance(keys, list):
                return "its storage list is not a list"
            # Each storage: int64 element count, then count * element size bytes. The element
            # size is in the object's pickle; every possible size is tried instead.
            states = {end}
            for _ in keys:
                following: set[int] = set()
                for at in states:
                    if at + 8 > size:
                        continue
                    handle.seek(at)
                    (count,) = struct.unpack("<q", handle.read(8))
                    following.update(at + 8 + count * e for e in _ELEMENT_SIZES
                                     if count >= 0 and at + 8 + count * e <= size)
                if len(following) > _MAX_STATES:
                    return ""  # too ambiguous to tell; the pickles at least were whole
                states = following
                if not states:
                    return "its tensor data ends early (the transfer was cut short?)"
            if size not in states:
                return "its tensor data does not end where the file ends"
    except (ValueError, EOFError, pickle.UnpicklingError, struct.error, OSError) as exc:
        return f"it is cut short or damaged ({exc})"
    return ""


def check_torch_file(path: Path | str, *, crc: bool = True) -> str:
    """"" when ``path`` is a complete PyTorch file, else what is wrong (one clause).

    Args:
        path: the file.
        crc: also read every zip record back and check its CRC-32 (skip it when the whole
            file's SHA-256 was already checked).
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(64)
    if head.startswith(b"PK\x03\x04"):
        return _check_zip(path, size, crc=crc)
    if head.startswith(b"\x80") and b"\x8a\x0a" in head[:4]:
        return _check_legacy(path, size)
    return _describe_start(head)
