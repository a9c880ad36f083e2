"""The one way collapse-probe writes files and folders: whole or not at all, never over an input.

Regular files are written to a temporary file beside the target and renamed over it once
complete and flushed to disk, so a reader (or a crash, or ``kill -9``) sees either the old
file or the new one. Temporary names are recognisable::

    .<name>.collapse-probe-tmp-<pid>-<8 hex digits>

and every later write into the same folder removes the ones whose process is gone.

* New files get the usual mode (0666 less the umask); a replaced file keeps its mode.
* A symlink is followed: the file it points to is replaced and the link stays. A FIFO, a
  character or block device (``/dev/null``) is written into as it is: the rename is only for
  regular files. A path naming an open descriptor (``/dev/stdout``, ``/dev/fd/N``) is appended
  to, whatever it is open on (a pipe, a terminal, a shell's ``> log`` redirect).
* A report folder is built whole as a temporary sibling and swapped in with one rename
  (``renameat2(RENAME_EXCHANGE)`` where the kernel has it; else two renames, undone by the next
  run if it was cut between them), so an interrupted run never leaves a mix of old and new files.
* Any :class:`OSError` (no space, no permission, read-only file system, a path through a
  regular file) becomes one :class:`~collapse_probe.errors.OutputError`, and the previous
  output is left intact.

:func:`refuse_overwriting_inputs` is the check every command makes before computing: no output
may be the same file (same device and inode, through links too) as one of its inputs, or as
another output.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import shutil
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from .errors import InputError, OutputError

__all__ = ["TEMP_MARK", "temp_name", "is_temp_name", "open_output", "output_path", "write_bytes",
           "write_text", "save_torch", "write_folder", "remove_stale_temps", "refuse_overwriting_inputs",
           "output_error"]

log = logging.getLogger(__name__)

#: What every temporary name carries; see :func:`temp_name`.
TEMP_MARK = ".collapse-probe-tmp-"
_BACKUP_MARK = ".collapse-probe-old-"
_NAME_PART = 100  # characters of the target's name kept in a temporary name (NAME_MAX is 255)
_MARKED = re.compile(r"^\.(?P<name>.*)\.collapse-probe-(?P<kind>tmp|old)-(?P<pid>\d+)-[0-9a-f]{8}$")
_RENAME_EXCHANGE = 2
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # O_EXCL alone never follows a link either
_AT_FDCWD = -100

_HINTS = {
    errno.ENOSPC: "the disk is full; free some space or choose another place",
    errno.EDQUOT: "the disk quota is exceeded; free some space or choose another place",
    errno.EACCES: "permission denied; choose a place you can write to",
    errno.EPERM: "permission denied; choose a place you can write to",
    errno.EROFS: "the file system is read-only; choose another place",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
    errno.EISDIR: "it is a folder; give a file path",
    errno.ENAMETOOLONG: "the name is too long; choose a shorter path",
    errno.EEXIST: "something else was created there meanwhile; try again",
    errno.ENOTEMPTY: "something else was created there meanwhile; try again",
}


def output_error(exc: OSError, path: Path | str) -> OutputError:
    """``exc`` as one line naming ``path``, what went wrong and what to do."""
    hint = _HINTS.get(exc.errno or -1) or (exc.strerror or str(exc))
    error = OutputError(f"cannot write {path}: {hint}. Nothing was changed there.")
    error.errno = exc.errno
    return error


def temp_name(name: str, *, kind: str = "tmp") -> str:
    """A fresh temporary name for ``name``: ``.<name>.collapse-probe-tmp-<pid>-<hex>``."""
    return f".{name[:_NAME_PART]}.collapse-probe-{kind}-{os.getpid()}-{secrets.token_hex(4)}"


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one of ours (a temporary file or folder, or a folder's backup)."""
    return _MARKED.match(name) is not None


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except OSError:
        return True
    return True


def _locked_elsewhere(path: Path) -> bool:
    """Whether another process holds the write lock of a temporary file (see :func:`open_output`)."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): the pid alone decides
        return False
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return True  # not ours to judge
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def remove_stale_temps(folder: Path | str) -> list[Path]:
    """Remove the temporary files and folders a killed run left in ``folder``; return them.

    Only names matching our pattern, owned by this user, whose process is gone (and, for files,
    whose write lock nobody holds) are touched. A report folder's backup whose swap was cut
    between its two renames is put back under its name when that name is free.
    """
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    uid = os.getuid() if hasattr(os, "getuid") else None
    for entry in entries:
        match = _MARKED.match(entry.name)
        if match is None or _pid_alive(int(match["pid"])):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if uid is not None and info.st_uid != uid:
            continue
        path = Path(entry.path)
        try:
            if stat.S_ISDIR(info.st_mode):
                original = folder / match["name"]
                if match["kind"] == "old" and not os.path.lexists(original):
                    os.rename(path, original)  # the swap was cut after moving the old one away
                    log.warning("restored %s from an interrupted report swap", original)
                    continue
                shutil.rmtree(path)
            elif stat.S_ISREG(info.st_mode) and not _locked_elsewhere(path):
                path.unlink()
            else:
                continue
        except OSError as exc:
            log.debug("cannot remove stale %s: %s", path, exc)
            continue
        log.info("removed %s, left by an interrupted run", path)
        removed.append(path)
    return removed


def _fsync_dir(folder: Path) -> None:
    # The rename itself must reach the disk, not only the data: fsync the folder.
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_DESCRIPTOR = re.compile(r"^/(?:dev|proc/[^/]+)/fd/\d+$")


def _names_descriptor(path: Path) -> bool:
    """Whether ``path`` (``/dev/stdout``, ``/dev/fd/3``, ``/proc/self/fd/1``), or a link on the
    way to it, names an open file descriptor: what it resolves to is not a path to rename over
    (a pipe resolves to ``pipe:[123]``; a shell's ``> log`` redirect must not be replaced)."""
    current = os.path.abspath(path)
    for _ in range(40):  # the kernel's own limit on links followed
        if _DESCRIPTOR.match(current):
            return True
        try:
            target = os.readlink(current)
        except OSError:
            return False
        current = os.path.normpath(os.path.join(os.path.dirname(current), target))
    return False


def _where(path: Path) -> tuple[str, Path, os.stat_result | None]:
    """("special" | "descriptor" | "regular" | "new", the path to write, its stat): links
    followed."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        # A dangling link is written through to where it points; a plain missing name is new.
        return "new", Path(os.path.realpath(path)), None
    except OSError as exc:
        raise output_error(exc, path) from None
    if stat.S_ISDIR(info.st_mode):
        raise output_error(OSError(errno.EISDIR, "is a folder"), path)
    if _names_descriptor(path):
        return "descriptor", path, info
    real = Path(os.path.realpath(path))
    if stat.S_ISREG(info.st_mode):
        return "regular", real, info
    return "special", real, info


def _make_parent(folder: Path, shown: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise output_error(OSError(errno.ENOTDIR, "not a folder"), shown) from None
    except OSError as exc:
        raise output_error(exc, shown) from None
    if not folder.is_dir():
        raise output_error(OSError(errno.ENOTDIR, "not a folder"), shown)


def _create_temp(folder: Path, name: str, mode: int | None) -> tuple[int, Path]:
    """A new temporary file beside ``name``: created exclusively, never through a link, locked."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    for _ in range(16):
        tmp = folder / temp_name(name)
        try:
            fd = os.open(tmp, flags, 0o666)  # the kernel applies the umask
        except FileExistsError:
            continue
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # tells cleaners the writer is alive
        except (ImportError, OSError):
            pass
        if mode is not None:
            os.fchmod(fd, mode)
        return fd, tmp
    raise OSError(errno.EEXIST, "no free temporary name")


@contextlib.contextmanager
def _atomic(path: Path | str, check: Callable[[Path], None] | None
            ) -> Iterator[tuple[BinaryIO, Path | None]]:
    """(an open binary file, its temporary path or None for a FIFO/device): see open_output."""
    target = Path(path)
    kind, real, info = _where(target)
    if kind in ("special", "descriptor"):
        if kind == "descriptor":  # what this process printed there comes first
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
        try:
            # Appending to a descriptor: a redirected stdout keeps what was printed before.
            handle = open(real, "ab" if kind == "descriptor" else "wb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise output_error(exc, target) from None
        try:
            yield handle, None
            if not handle.closed:
                handle.flush()
        except OSError as exc:
            raise output_error(exc, target) from None
        finally:
            with contextlib.suppress(OSError):
                handle.close()
        return
    folder = real.parent
    _make_parent(folder, target)
    remove_stale_temps(folder)
    try:
        fd, tmp = _create_temp(folder, real.name,
                               None if info is None else stat.S_IMODE(info.st_mode))
    except OSError as exc:
        raise output_error(exc, target) from None
    handle = os.fdopen(fd, "wb")
    try:
        try:
            yield handle, tmp
            handle.flush()
            os.fsync(handle.fileno())
            if check is not None:
                check(tmp)
            os.replace(tmp, real)
        except OSError as exc:
            raise output_error(exc, target) from None
    finally:
        with contextlib.suppress(OSError):
            handle.close()
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _fsync_dir(folder)
    log.debug("wrote %s", target)


@contextlib.contextmanager
def open_output(path: Path | str, *, check: Callable[[Path], None] | None = None) -> Iterator[BinaryIO]:
    """Yield a binary file whose content becomes ``path`` when the block ends without error.

    Args:
        path: the output. A regular or new file is replaced atomically (mode kept, or the
            umask's for a new file); a symlink's target is replaced and the link kept; a FIFO
            or device is written into directly (an error mid-way cannot be undone there).
        check: called with the temporary file's path after everything is on disk and before it
            is renamed into place; raise to keep the old file (downloads verify here).

    Raises:
        OutputError: the file cannot be written (any OSError in the block, too); the old
            one, if any, is unchanged and no temporary file is left.
    """
    with _atomic(path, check) as (handle, _):
        yield handle


@contextlib.contextmanager
def output_path(path: Path | str, *, check: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """Like :func:`open_output`, for writers that take a file name rather than a file object:
    yield the temporary file's path (created empty, under our name); it replaces ``path`` when
    the block ends without error. For a FIFO or device, ``path`` itself is yielded."""
    with _atomic(path, check) as (handle, tmp):
        if tmp is None:
            handle.close()
            yield Path(path)
        else:
            yield tmp


def write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` whole (see :func:`open_output`)."""
    with open_output(path) as handle:
        handle.write(data)


def write_text(path: Path | str, text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` whole (see :func:`open_output`)."""
    write_bytes(path, text.encode("utf-8"))


def save_torch(obj: object, path: Path | str, **kwargs: object) -> None:
    """``torch.save(obj, ..., **kwargs)`` into ``path`` whole (see :func:`open_output`).

    torch reports a failed write (no space left) as a ``RuntimeError`` raised while it closes
    the archive, with the ``OSError`` only as its context; that ``OSError`` is what counts, so
    the failure reads as one :class:`~collapse_probe.errors.OutputError` like any other.
    """
    import torch

    with open_output(path) as handle:
        try:
            torch.save(obj, handle, **kwargs)
        except RuntimeError as exc:
            cause = exc.__context__
            while cause is not None and not isinstance(cause, OSError):
                cause = cause.__context__
            if cause is None:
                raise
            raise cause from None


def _link_or_copy(src: str, dst: str) -> None:
    # A file kept from the old folder is the very same file (a hard link), or a copy where the
    # file system has no hard links.
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2``); False where that is not available."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code))


def _refuse_unswappable(target: Path, real: Path) -> None:
    """A folder swap moves the whole folder aside: never for the folder a process works in (or
    one above it), the home folder, a mount point or the root, where that would strand shells,
    copy whole trees and lose what other processes write meanwhile."""
    here = Path(os.path.realpath(os.getcwd()))
    home = Path(os.path.realpath(Path.home()))
    why = ""
    if real == here or real in here.parents:
        why = "it is the current folder or one above it"
    elif real == home:
        why = "it is the home folder"
    elif os.path.ismount(real):
        why = "it is a mount point"
    if why:
        raise OutputError(f"cannot write the folder {target}: {why}, and a report folder is "
                          f"replaced whole; name a folder inside it instead, e.g. {target / 'report'}.")


def write_folder(path: Path | str, files: Mapping[str, bytes]) -> tuple[Path, ...]:
    """Make folder ``path`` hold ``files`` (name -> content) in one step.

    Files of other names already in the folder are kept (the same files, hard-linked into the
    new folder); the files named in ``files`` are replaced, keeping their mode. The new folder
    is built as a temporary sibling and swapped in whole.

    Returns:
        The paths written, in the order of ``files``.

    Raises:
        InputError: a name in ``files`` is not a plain file name.
        OutputError: the folder cannot be written; the old one, if any, is unchanged.
    """
    target = Path(path)
    for name in files:
        if not name or Path(name).name != name or name in (".", "..") or is_temp_name(name):
            raise InputError(f"cannot write {name!r} into a folder: not a plain file name.")
    real = Path(os.path.realpath(target))
    parent = real.parent
    if parent.is_dir():
        # First, so that a folder an interrupted swap left under its backup name is back.
        remove_stale_temps(parent)
    try:
        info = os.stat(target)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise output_error(exc, target) from None
    if info is not None and not stat.S_ISDIR(info.st_mode):
        raise OutputError(f"cannot write the folder {target}: a file of that name exists; "
                          "choose a folder path.")
    if info is not None:
        _refuse_unswappable(target, real)
    _make_parent(parent, target)
    tmp = parent / temp_name(real.name)
    made = False
    try:
        os.mkdir(tmp, 0o777)  # the umask applies, as for any new folder
        made = True
        if info is not None:
            os.chmod(tmp, stat.S_IMODE(info.st_mode))
            for entry in os.scandir(real):
                if entry.name in files:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.copytree(entry.path, tmp / entry.name, symlinks=True,
                                    copy_function=_link_or_copy)
                elif entry.is_symlink():
                    os.symlink(os.readlink(entry.path), tmp / entry.name)
                else:
                    _link_or_copy(entry.path, str(tmp / entry.name))
        for name, content in files.items():
            mode = None
            if info is not None:
                with contextlib.suppress(OSError):
                    old = os.stat(real / name, follow_symlinks=False)
                    if stat.S_ISREG(old.st_mode):
                        mode = stat.S_IMODE(old.st_mode)
            fd = os.open(tmp / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
                         | getattr(os, "O_CLOEXEC", 0), 0o666)
            with os.fdopen(fd, "wb") as handle:
                if mode is not None:
                    os.fchmod(handle.fileno(), mode)
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
        _fsync_dir(tmp)
        if info is None:
            os.rename(tmp, real)  # fails (ENOTEMPTY/EEXIST) rather than merge into a newcomer
            made = False
        elif _exchange(tmp, real):
            pass  # tmp now holds the old folder, removed below
        else:
            backup = parent / temp_name(real.name, kind="old")
            os.rename(real, backup)
            # A kill here leaves only the backup: the next run puts it back (remove_stale_temps).
            os.rename(tmp, real)
            made = False
            shutil.rmtree(backup, ignore_errors=True)
        _fsync_dir(parent)
    except OSError as exc:
        raise output_error(exc, target) from None
    finally:
        if made:
            shutil.rmtree(tmp, ignore_errors=True)
    return tuple(target / name for name in files)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


_Named = Mapping[str, "Path | str | None"] | Iterable[tuple[str, "Path | str | None"]]


def _pairs(named: _Named) -> list[tuple[str, Path | str | None]]:
    return list(named.items()) if isinstance(named, Mapping) else list(named)


def refuse_overwriting_inputs(outputs: _Named, inputs: _Named) -> None:
    """Refuse outputs that would replace an input, or each other.

    Args:
        outputs: label -> path the command will write (None and ``-`` for stdout are skipped),
            as a mapping or ``(label, path)`` pairs. Labels are what the user knows the path
            as (an option name, "the report folder").
        inputs: label -> path the command reads, likewise (None skipped).

    Raises:
        InputError: an output is the same file as an input (same device and inode, through
            links too) or as another output (the same real path).
    """
    def usable(value: Path | str | None) -> bool:
        return value is not None and str(value) not in ("", "-")

    seen: dict[str, str] = {}
    sources = _pairs(inputs)
    for label, value in _pairs(outputs):
        if not usable(value):
            continue
        out = Path(str(value)).expanduser()
        ident = _identity(out)
        # A special file (/dev/null, a FIFO) is not replaced, so it can serve as many outputs.
        special = ident is not None and not stat.S_ISREG(os.stat(out).st_mode)
        if special:
            continue
        for in_label, in_value in sources:
            if not usable(in_value):
                continue
            source = Path(str(in_value)).expanduser()
            same = ident is not None and ident == _identity(source)
            if same or os.path.realpath(out) == os.path.realpath(source):
                raise InputError(f"{label} {value} is the same file as {in_label} {in_value}: "
                                 "writing it would destroy the input. Choose another output path.")
        real = os.path.realpath(out)
        if real in seen:
            raise InputError(f"{label} {value} and {seen[real]} are the same file: one output "
                             "would overwrite the other. Give them different paths.")
        seen[real] = f"{label} {value}"
