"""Repairing a collapsed head: continue training it with the method's objective plus KoLeo-Proto
on frozen-backbone features, and write a checkpoint in the same layout.

``collapse_probe.finetune`` is both this package and its main function: the package module is
callable (``collapse_probe.finetune(path, features, out=...)``) so the name works however it was
imported.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .api import DEFAULT_KOLEO_WEIGHT, SUPPORTED_FORMATS, finetune
from .features import Augmentation
from .result import UTILIZATION_EPS, FinetuneResult

__all__ = ["finetune", "FinetuneResult", "Augmentation", "DEFAULT_KOLEO_WEIGHT",
           "SUPPORTED_FORMATS", "UTILIZATION_EPS"]


class _CallablePackage(types.ModuleType):
    # ``import collapse_probe.finetune`` binds the package to the parent's ``finetune``
    # attribute, shadowing the function of the same name; calling the package calls it.
    def __call__(self, *args: Any, **kwargs: Any) -> FinetuneResult:
        return finetune(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
