"""What every command shares: error handling, consoles and atomic output files."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import typer

from ..errors import CollapseProbeError, option_style
from ..escape import log_lines, terminal

__all__ = ["run_command", "atomic_write", "stdout_console", "stderr_console",
           "status_line", "progress_bar", "refuse_overwriting_sources", "cli_option"]


#: Table width when stdout is a pipe or a CI log and COLUMNS is not set (rich would use 80).
PIPE_WIDTH = 120


class _LogLines:
    """A text stream that passes what is written through :func:`~collapse_probe.escape.log_lines`:
    whatever a table or a wrapped line puts at the start of a line (a name from a file), no
    line of ours starts a CI workflow command. Everything else is the wrapped stream's."""

    def __init__(self, stream) -> None:  # noqa: ANN001 - any text stream
        self._stream = stream
        self._at_line_start = True

    def write(self, text: str) -> int:
        from ..escape import log_lines

        if text:
            self._stream.write(log_lines(text, at_line_start=self._at_line_start))
            self._at_line_start = text[-1] in "\r\n"
        return len(text)

    def __getattr__(self, name: str):  # noqa: ANN204 - isatty, fileno, flush, encoding, ...
        return getattr(self._stream, name)


def stdout_console():  # noqa: ANN201 - rich is imported lazily
    from rich.console import Console

    console = Console(soft_wrap=False, file=_LogLines(sys.stdout))
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(soft_wrap=False, width=PIPE_WIDTH, file=_LogLines(sys.stdout))
    return console


def stderr_console():  # noqa: ANN201
    from rich.console import Console

    return Console(file=_LogLines(sys.stderr))


@contextlib.contextmanager
def status_line(quiet: bool, text: str) -> Iterator[Callable[[str], None] | None]:
    """A spinner on stderr showing the latest status; yields its ``update`` function, or None
    when stderr is not a terminal or ``quiet`` is set (the core's progress callbacks accept both)."""
    err = stderr_console()
    if quiet or not err.is_terminal:
        yield None
        return
    with err.status(text) as status:
        yield status.update


@contextlib.contextmanager
def progress_bar(label: str, *, quiet: bool, total: int | None = None,
                 rate_unit: str = "") -> Iterator[Callable[[int, int | None], None] | None]:
    """A progress bar on stderr: done / total, elapsed and ETA (and the rate per ``rate_unit``
    when given, e.g. ``steps``). Yields ``update(done, total=None)``, or None when stderr is not
    a terminal or ``quiet`` is set (the core's progress callbacks accept both)."""
    err = stderr_console()
    if quiet or not err.is_terminal:
        yield None
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    columns = [TextColumn(label), BarColumn(), MofNCompleteColumn()]
    if rate_unit:
        columns.append(TextColumn("{task.fields[rate]}"))
    columns += [TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(label, total=total, rate="")
        started = time.perf_counter()

        def update(done: int, new_total: int | None = None) -> None:
            rate = ""
            elapsed = time.perf_counter() - started
            if rate_unit and elapsed > 0 and done > 0:
                per_s = done / elapsed
                rate = f"{per_s:.2f} {rate_unit}/s" if per_s >= 1 else f"{1 / per_s:.1f} s/{rate_unit[:-1] or rate_unit}"
            progress.update(task, completed=done, rate=rate,
                            **({} if new_total is None else {"total": new_total}))

        yield update


class _OneLineFormatter(logging.Formatter):
    """Log records quote names from files: each record stays one line without control
    sequences (a newline in a head name must not start a workflow command in a CI log)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        # Tracebacks, if any, keep their lines.
        return log_lines(terminal(super().formatMessage(record)))


#: Python keyword -> command-line flag, where the two differ by more than ``_`` -> ``-``.
_FLAGS: dict[str, str] = {"trust": "--trust-checkpoint"}


def cli_option(name: str, value: object = None) -> str:
    """How messages name an option on the command line: ``--trust-checkpoint``,
    ``--network teacher``, ``--key <path>`` (see :func:`collapse_probe.errors.option`)."""
    flag = _FLAGS.get(name, "--" + name.replace("_", "-"))
    if value is None or value is True:
        return flag
    text = str(value)
    return f"{flag} {text if text.startswith('<') else shlex.quote(text)}"


def run_command(body: Callable[[], int | None]) -> NoReturn:
    """Run a command body and end the command: exit with the code it returns (None: 0), after
    flushing stdout. A :class:`CollapseProbeError` becomes one line on stderr and exit 2.

    Messages raised inside name options as flags (:func:`cli_option`). Anything else is a bug and
    keeps its traceback.
    """
    logging.basicConfig(level=os.environ.get("COLLAPSE_PROBE_LOG", "WARNING").upper(),
                        format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        if type(handler.formatter) is logging.Formatter:  # ours, not one a caller installed
            handler.setFormatter(_OneLineFormatter(handler.formatter._fmt))
    try:
        with option_style(cli_option):
            code = body() or 0
    except CollapseProbeError as exc:
        # Messages quote names from files: one line, no control sequences.
        typer.echo(log_lines(f"error: {terminal(exc)}"), err=True)
        raise typer.Exit(code=exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(code=130) from None
    sys.stdout.flush()
    raise typer.Exit(code=code)


def refuse_overwriting_sources(outputs: dict[str, object], sources: list[str] | tuple[str, ...],
                               *, cache_dir: Path | str | None = None,
                               inputs: list[tuple[str, object]] | None = None) -> None:
    """Before a command computes anything: no output (option name -> path) may be the same
    file as one of its checkpoints (paths, example or zoo names) or other ``inputs``."""
    from ..output import refuse_overwriting_inputs
    from ..sources import source_file

    named: list[tuple[str, object]] = []
    for source in sources:
        path = source_file(source, cache_dir=cache_dir)
        if path is not None:
            named.append((f"the input checkpoint {source}, read from" if str(path) != str(source)
                          else "the input checkpoint", path))
    named += inputs or []
    refuse_overwriting_inputs(outputs, named)  # type: ignore[arg-type]


def atomic_write(target: Path | str, text: str) -> None:
    """Write ``text`` to ``target`` (``-`` means stdout) without ever leaving a partial file
    (see :func:`collapse_probe.output.write_text`)."""
    if str(target) == "-":
        sys.stdout.write(text)
        return
    from ..output import write_text

    write_text(target, text)
