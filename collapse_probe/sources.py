"""What a user may name as a checkpoint: a path, a bundled example, or a zoo name."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import CheckpointError, OutputError, option

__all__ = ["resolve_source", "source_file"]


def resolve_source(text: str | Path, *, cache_dir: Path | str | None = None,
                   progress: Callable[[int, int | None], None] | None = None) -> Path:
    """The local file ``text`` stands for.

    In order: an existing path is itself; a bundled example name (``collapse_probe.examples``)
    is its generated file; a zoo name is downloaded once into the cache (see
    :func:`collapse_probe.zoo.fetch`; ``progress(bytes received, bytes expected or None)`` is
    called while it arrives).

    Raises:
        CheckpointError: nothing by that name; a path-like text (with a suffix or a slash)
            that does not exist is reported as a missing file.
        DownloadError: a zoo download failed.
    """
    if isinstance(text, Path):
        if _present(text):
            return text
        raise CheckpointError(f"no such file: {text}")
    path = Path(text).expanduser()
    if _present(path):
        return path
    from . import examples, zoo

    if text in examples.EXAMPLE_NAMES:
        with _cache_errors(cache_dir):
            return examples.example_path(text, cache=cache_dir)

    if text in zoo.ZOO:
        with _cache_errors(cache_dir):
            return zoo.fetch(text, cache_dir=cache_dir, progress=progress)
    if text.startswith(("http://", "https://")):
        raise CheckpointError(f"URLs are not read directly: download {text} and pass the file, "
                              f"or fetch it under a zoo name with {option('url', text)}.")
    if path.suffix or "/" in text or "\\" in text:
        raise CheckpointError(f"no such file: {text}")
    raise CheckpointError(f"no such file, example or zoo name: {text} (see `collapse-probe zoo list`)")


def source_file(text: str | Path, *, cache_dir: Path | str | None = None) -> Path | None:
    """The local file ``text`` stands for, without downloading or generating anything.

    An existing path; a bundled example's file; a zoo name's place in the cache (which may not
    exist yet); None for anything else. Commands compare their outputs against these before
    they start (see :func:`collapse_probe.output.refuse_overwriting_inputs`).
    """
    path = Path(text).expanduser()
    if isinstance(text, Path) or _present(path):
        return path
    from . import cache, examples, zoo

    example = examples.EXAMPLES.get(text)
    if example is not None:
        if example.file is not None:
            return Path(examples.__file__).parent / "data" / example.file
        return cache.cache_dir(cache_dir) / "examples" / f"{text}.pth"
    entry = zoo.ZOO.get(text)
    if entry is not None:
        return zoo.zoo_dir(cache_dir) / entry.filename
    return None


def _present(path: Path) -> bool:
    """Whether something is at ``path``, including what ``exists()`` hides (a symlink loop, a
    name too long, a folder without permission): the reader then says what it is."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return True
    return True


@contextlib.contextmanager
def _cache_errors(cache_dir: Path | str | None) -> Iterator[None]:
    """A cache folder that is a file or cannot be written: one line naming it, not a traceback."""
    try:
        yield
    except OutputError as exc:
        # The writer has turned its OSError into an OutputError; name the cache folder anyway.
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise CheckpointError(
            f"cannot use the cache folder ({cache_dir or 'the cache folder'}: {reason}): set "
            f"{option('cache_dir')} (or COLLAPSE_PROBE_CACHE) to a writable folder.") from None
    except OSError as exc:
        where = exc.filename or cache_dir or "the cache folder"
        raise CheckpointError(
            f"cannot use the cache folder ({where}: {exc.strerror or exc}): set "
            f"{option('cache_dir')} (or COLLAPSE_PROBE_CACHE) to a writable folder.") from None
