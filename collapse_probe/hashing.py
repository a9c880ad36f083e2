"""Streaming file checksums."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["file_sha256"]

#: 4 MiB: large enough to keep hashing I/O-bound, small enough to never matter for memory.
DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024


def file_sha256(path: Path | str, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> str:
    """Hex SHA-256 of a file, read in ``chunk_size``-byte chunks (the file is never held whole)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
