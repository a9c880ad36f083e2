"""Write a whole report folder at once: HTML, Markdown, JSON, CSV and every figure.

Everything is rendered in memory first, then the new folder is built beside the target and
swapped in whole (:func:`collapse_probe.output.write_folder`): files of other names already in
the folder are kept, the report's files replaced. An error or a kill never leaves a partial
report, nor a mix of old and new files.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from ..validation import fail
from ..auditing.records import AuditReport

if TYPE_CHECKING:
    from .figures import ReportFigure

__all__ = ["REPORT_FORMATS", "write_report"]

log = logging.getLogger(__name__)

#: What ``write_report`` can write: report.html, report.md, report.json, heads.csv, and every
#: figure as <name>.png and <name>.svg.
REPORT_FORMATS: tuple[str, ...] = ("html", "md", "json", "csv", "png", "svg")

_FILES = {"html": "report.html", "md": "report.md", "json": "report.json", "csv": "heads.csv"}


def _render(report: AuditReport, formats: Sequence[str],
            figures: Sequence[ReportFigure] | None) -> dict[str, bytes]:
    """File name -> content, for every requested format."""
    files: dict[str, bytes] = {}
    wants_figures = any(f in formats for f in ("html", "png", "svg"))
    if figures is None and wants_figures:
        from .figures import report_figures

        figures = report_figures(report)
    figures = tuple(figures or ())
    png: dict[str, bytes] = {}
    if "png" in formats or "html" in formats:
        from .figures import figure_bytes

        png = {f.name: figure_bytes(f.figure, "png") for f in figures}
    if "png" in formats:
        files.update({f"{name}.png": data for name, data in png.items()})
    if "svg" in formats:
        from .figures import figure_bytes

        files.update({f"{f.name}.svg": figure_bytes(f.figure, "svg") for f in figures})
    if "html" in formats:
        from .html import render_html

        files[_FILES["html"]] = render_html(report, figures, png=png).encode("utf-8")
    if "md" in formats:
        from .markdown import render_markdown

        # Markdown links the PNG files, so only when they are written beside it.
        linked = figures if "png" in formats else ()
        files[_FILES["md"]] = render_markdown(report, linked).encode("utf-8")
    if "json" in formats:
        from .json import report_to_json

        files[_FILES["json"]] = report_to_json(report).encode("utf-8")
    if "csv" in formats:
        from .csv import render_csv

        files[_FILES["csv"]] = render_csv(report).encode("utf-8")
    return files


def write_report(
    report: AuditReport,
    out_dir: Path | str,
    *,
    formats: Iterable[str] = REPORT_FORMATS,
    figures: Sequence[ReportFigure] | None = None,
    extra_files: Mapping[str, bytes] | None = None,
) -> tuple[Path, ...]:
    """Write ``report`` into the folder ``out_dir`` (created if missing).

    Args:
        report: the audit.
        out_dir: the report folder. Files of the same names in it are replaced, files of
            other names kept; the folder is swapped in whole, so an error or a kill leaves the
            old one as it was.
        formats: any of :data:`REPORT_FORMATS` (default all).
        figures: ReportFigures to use (default :func:`~collapse_probe.report.figures.report_figures`).
        extra_files: more files (name -> content) rendered by the caller, written with the rest
            in the same atomic step (e.g. ``usage.json``).

    Returns:
        The paths written, in a fixed order (report files first, then figures by name).
    """
    formats = tuple(formats)
    unknown = [f for f in formats if f not in REPORT_FORMATS]
    if unknown or not formats:
        raise fail("formats", expected=f"some of {', '.join(REPORT_FORMATS)}",
                   got=", ".join(unknown) or "none")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir} exists and is not a folder; choose a folder path.")
    files = _render(report, formats, figures)
    for name, content in (extra_files or {}).items():
        if Path(name).name != name or name in files:
            raise fail("extra_files", expected="plain file names not used by the report",
                       got=repr(name))
        files[name] = content
    order = [n for n in _FILES.values() if n in files] + sorted(n for n in files if n not in _FILES.values())

    from ..output import write_folder

    # Built whole beside the target and swapped in: a kill never leaves old and new mixed.
    write_folder(out_dir, {name: files[name] for name in order})
    log.info("report: %d files in %s", len(order), out_dir)
    return tuple(out_dir / name for name in order)
