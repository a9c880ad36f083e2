"""Prototype heads rebuilt from checkpoint state dicts: run a checkpoint's own head on features,
fine-tune it, and write its tensors back under their original names.

``rebuild_head`` and ``PrototypeHead`` import torch on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..families import HeadSpec, default_head, head_spec

__all__ = ["rebuild_head", "PrototypeHead", "HeadSpec", "head_spec", "default_head"]


def __getattr__(name: str) -> Any:
    if name in ("rebuild_head", "PrototypeHead"):
        value = getattr(importlib.import_module(".model", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
