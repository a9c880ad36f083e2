"""Typed errors. Every message names the problem and what to do about it.

The CLI turns any :class:`CollapseProbeError` into a one-line message and exit code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "CollapseProbeError",
    "InputError",
    "CheckpointError",
    "UnsafeCheckpointError",
    "NoPrototypesError",
    "CheckpointChangedError",
    "DownloadError",
    "ConfigError",
    "OutputError",
]


class CollapseProbeError(Exception):
    """Base class: bad input or environment, never a bug. ``exit_code`` is what the CLI returns."""

    exit_code: int = 2


class InputError(CollapseProbeError, ValueError):
    """An argument or array does not have the expected type, shape or values."""


class CheckpointError(CollapseProbeError):
    """A file cannot be read as a checkpoint, or is not the kind of checkpoint expected."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint needs pickled globals outside the allow-list and trust was not given."""


class NoPrototypesError(CheckpointError):
    """A checkpoint was read but holds no recognisable prototype matrix."""


class CheckpointChangedError(CheckpointError):
    """A file changed (size, modification time or inode) while it was being read: retry later."""


class DownloadError(CollapseProbeError):
    """A zoo download failed, was cut short, or did not match its recorded size or checksum."""


class ConfigError(CollapseProbeError):
    """A configuration file or section is missing, malformed or inconsistent."""


class OutputError(CollapseProbeError):
    """An output file or folder cannot be written (no space, no permission, read-only file
    system, a path through a regular file); the previous output, if any, is left as it was."""

    errno: int | None = None  #: the operating system's error number, when one caused it
