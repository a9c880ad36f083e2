"""Trend reports as JSON, JSON lines (one audited checkpoint per line) and CSV."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import InputError
from ..thresholds import Threshold, eps_to_cosine
from .model import TrendEntry, TrendHead, TrendReport

__all__ = ["TREND_SCHEMA_VERSION", "entry_to_dict", "entry_from_dict", "trend_to_dict",
           "trend_to_json", "trend_to_csv", "append_jsonl", "read_jsonl", "CSV_COLUMNS"]

#: Bumped on any change a consumer could notice.
TREND_SCHEMA_VERSION = 1

CSV_COLUMNS: tuple[str, ...] = ("position", "epoch", "epoch_source", "path", "head",
                                "num_prototypes", "eps", "cosine", "unique", "utilization")


def entry_to_dict(entry: TrendEntry) -> dict[str, Any]:
    return {
        "path": entry.path,
        "epoch": entry.epoch,
        "epoch_source": entry.epoch_source,
        "size_bytes": entry.size_bytes,
        "mtime_ns": entry.mtime_ns,
        "heads": [
            {"name": h.name, "num_prototypes": h.num_prototypes,
             "results": [{"eps": e, "cosine": eps_to_cosine(e), "unique": u,
                          "utilization": u / h.num_prototypes} for e, u in zip(h.eps, h.unique)]}
            for h in entry.heads
        ],
    }


def entry_from_dict(data: dict[str, Any]) -> TrendEntry:
    """Inverse of :func:`entry_to_dict` (raises InputError on a malformed record)."""
    try:
        heads = tuple(
            TrendHead(name=str(h["name"]), num_prototypes=int(h["num_prototypes"]),
                      eps=tuple(float(r["eps"]) for r in h["results"]),
                      unique=tuple(int(r["unique"]) for r in h["results"]))
            for h in data["heads"]
        )
        epoch = data.get("epoch")
        return TrendEntry(path=str(data["path"]), epoch=None if epoch is None else int(epoch),
                          epoch_source=str(data.get("epoch_source", "none")), heads=heads,
                          size_bytes=int(data.get("size_bytes", 0)),
                          mtime_ns=int(data.get("mtime_ns", 0)))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"malformed trend record ({type(exc).__name__}: {exc}).") from None


def trend_to_dict(report: TrendReport) -> dict[str, Any]:
    """A plain-JSON dict of ``report`` (schema version :data:`TREND_SCHEMA_VERSION`)."""
    return {
        "schema_version": TREND_SCHEMA_VERSION,
        "kind": "trend",
        "tool": {"name": "collapse-probe", "version": report.tool_version},
        "method": report.method,
        "network": report.network,
        "thresholds": [{"eps": t.eps, "cosine": t.cosine} for t in report.thresholds],
        "x": report.x_label,
        "entries": [entry_to_dict(e) for e in report.entries],
    }


def trend_to_json(report: TrendReport, *, indent: int | None = 2) -> str:
    return json.dumps(trend_to_dict(report), indent=indent, allow_nan=False) + "\n"


def trend_to_csv(report: TrendReport) -> str:
    """One row per checkpoint x head x threshold, in run order; columns :data:`CSV_COLUMNS`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for position, entry in enumerate(report.entries):
        for head in entry.heads:
            for eps, unique in zip(head.eps, head.unique):
                writer.writerow([position, "" if entry.epoch is None else entry.epoch,
                                 entry.epoch_source, entry.path, head.name, head.num_prototypes,
                                 f"{eps:g}", f"{eps_to_cosine(eps):.9g}", unique,
                                 f"{unique / head.num_prototypes:.6g}"])
    return buffer.getvalue()


def append_jsonl(path: Path | str, entry: TrendEntry, *, method: str, network: str) -> None:
    """Append one audited checkpoint as a JSON line.

    The file is rewritten whole (:func:`collapse_probe.output.write_text`), so a reader (or a crash)
    never sees half a line.
    """
    path = Path(path)
    record = {"schema_version": TREND_SCHEMA_VERSION, "tool_version": __version__,
              "method": method, "network": network, **entry_to_dict(entry)}
    line = json.dumps(record, allow_nan=False) + "\n"
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    from ..output import write_text

    write_text(path, old + line)


def read_jsonl(path: Path | str) -> TrendReport:
    """Read a watcher's JSON lines file back as a TrendReport (entries in file order)."""
    path = Path(path)
    entries, eps_values = [], set()
    method, network, version = "components", "teacher", __version__
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{number} is not JSON ({exc.msg}).") from None
        if not isinstance(data, dict):
            raise InputError(f"{path}:{number} is not a trend record.")
        entry = entry_from_dict(data)
        method = str(data.get("method", method))
        network = str(data.get("network", network))
        version = str(data.get("tool_version", version))
        entries.append(entry)
        eps_values.update(e for h in entry.heads for e in h.eps)
    thresholds = tuple(sorted(Threshold.from_eps(e) for e in eps_values))
    return TrendReport(entries=tuple(entries), thresholds=thresholds, method=method,
                       network=network, tool_version=version)
