"""Is a file a complete PyTorch checkpoint? Checked without unpickling anything.

Used on every download (most zoo entries have no published checksum): a transfer cut short
without ``Content-Length``, an HTML login page or a Git LFS pointer saved under a ``.pth`` name
must not land in the cache.

* The zip format (``torch.save`` since 1.6): the central directory must be readable, hold a
  ``<archive>/data.pkl`` record, and every record it lists must lie inside the file; with
  ``crc`` every record is read back and its CRC-32 compared.
* The legacy format: five pickles (magic number, protocol, system info, the object, the
  storage keys) walked opcode by opcode with :mod:`pickletools` (which executes nothing), then
  one raw storage per key whose sizes must end exactly at the end of the file.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import struct
import zipfile
from pathlib import Path

__all__ = ["check_torch_file", "LEGACY_MAGIC"]

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
