"""Repairing a collapsed head: continue training it with the method's objective plus KoLeo-Proto
on frozen-backbone features, and write a checkpoint in the same layout.

The entry point is :func:`finetune` (``collapse_probe.finetune``); its settings are the records
of :mod:`collapse_probe.repair.settings`.
"""

from __future__ import annotations

from .api import DEFAULT_KOLEO_WEIGHT, SUPPORTED_FORMATS, finetune
from .features import Augmentation
from .result import UTILIZATION_EPS, FinetuneResult
from .settings import DinoSettings, KoLeoSettings, MsnSettings, SwavSettings, TeacherSettings, TrainSettings

__all__ = ["finetune", "FinetuneResult", "Augmentation", "TrainSettings", "KoLeoSettings", "TeacherSettings",
           "DinoSettings", "MsnSettings", "SwavSettings", "DEFAULT_KOLEO_WEIGHT", "SUPPORTED_FORMATS",
           "UTILIZATION_EPS"]

