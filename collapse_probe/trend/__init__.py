"""Training-run views: trends over a run's checkpoints, a folder watcher, and log.txt checks."""

from __future__ import annotations

import sys
import types
from typing import Any

from .compute import audit_entry, trend
from .figure import trend_figure
from .model import TrendEntry, TrendHead, TrendReport
from .ordering import RunCheckpoint, epoch_from_name, order_checkpoints
from .records import read_jsonl, trend_to_csv, trend_to_dict, trend_to_json
from .training_log import (PlateauCheck, PlateauVerdict, TrainingLog, detect_plateau,
                           prototypes_from_run, read_training_log)
from .watch import Watcher, WatchEvent, WatchSummary

__all__ = [
    "trend", "audit_entry", "trend_figure", "TrendReport", "TrendEntry", "TrendHead",
    "RunCheckpoint", "epoch_from_name", "order_checkpoints",
    "trend_to_dict", "trend_to_json", "trend_to_csv", "read_jsonl",
    "Watcher", "WatchEvent", "WatchSummary",
    "TrainingLog", "PlateauCheck", "PlateauVerdict", "read_training_log", "detect_plateau",
    "prototypes_from_run",
]


class _TrendPackage(types.ModuleType):
    """Lets ``collapse_probe.trend(paths, ...)`` call :func:`trend` even after the package
    ``collapse_probe.trend`` was imported (which makes it an attribute of ``collapse_probe``)."""

    def __call__(self, *args: Any, **kwargs: Any) -> TrendReport:
        return trend(*args, **kwargs)


sys.modules[__name__].__class__ = _TrendPackage
