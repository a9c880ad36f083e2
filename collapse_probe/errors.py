"""Typed errors. Every message names the problem and what to do about it.

The CLI turns any :class:`CollapseProbeError` into a one-line message and exit code 2;
anything else is a bug and keeps its traceback.

Messages name options through :func:`option`, by their Python keyword (``trust=True``); a front
end renders them in its own terms by setting an :func:`option_style` around its calls (the CLI as
``--trust-checkpoint``, the gate as keys of its configuration), so the core never names a flag.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

__all__ = [
    "option",
    "option_style",
    "python_option",

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


#: ``(keyword, value) -> text``: how messages name an option; ``value`` None names the option itself.
OptionStyle = Callable[[str, object], str]


def python_option(name: str, value: object = None) -> str:
    """``trust=True``, ``network='teacher'``, ``key=<path>`` (a placeholder in angle brackets
    stays bare); the option alone when ``value`` is None."""
    if value is None:
        return name
    if isinstance(value, str) and value.startswith("<"):
        return f"{name}={value}"
    return f"{name}={value!r}"


_STYLE: ContextVar[OptionStyle] = ContextVar("collapse_probe_option_style", default=python_option)


def option(name: str, value: object = None) -> str:
    """Name the option ``name`` (the keyword of the Python API), optionally with a value to pass,
    in the style of the front end that is running (Python keywords by default)."""
    return _STYLE.get()(name, value)


@contextlib.contextmanager
def option_style(style: OptionStyle) -> Iterator[None]:
    """Messages raised inside the block name options with ``style``."""
    token = _STYLE.set(style)
    try:
        yield
    finally:
        _STYLE.reset(token)
