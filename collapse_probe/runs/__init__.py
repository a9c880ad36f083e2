"""Following a training run: trends over its checkpoints (``trend``), a folder watcher
(``Watcher``), and ``log.txt`` checks for full collapse."""

from __future__ import annotations

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

