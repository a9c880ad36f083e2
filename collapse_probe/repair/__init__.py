"""Repairing a collapsed head: continue training it with the method's objective plus KoLeo-Proto
on frozen-backbone features, and write a checkpoint in the same layout.

The entry point is :func:`finetune` (``collapse_probe.finetune``).
"""

from __future__ import annotations

from .api import DEFAULT_KOLEO_WEIGHT, SUPPORTED_FORMATS, finetune
from .features import Augmentation
from .result import UTILIZATION_EPS, FinetuneResult

__all__ = ["finetune", "FinetuneResult", "Augmentation", "DEFAULT_KOLEO_WEIGHT",
           "SUPPORTED_FORMATS", "UTILIZATION_EPS"]

