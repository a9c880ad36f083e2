"""Streaming file checksums."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["file_sha256"]

#: 4 MiB: large enough to keep hashing I/O-bound, small enough to never matter for memory.
DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024


def file_sha256(path: Path | str, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> str:
    """Hex SHA-256 of a file, streamed (the file is never held whole).

    ``chunk_size`` is kept for callers; :func:`hashlib.file_digest` picks its own buffer.
    """
    del chunk_size
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
