"""A small, real DINO run: multi-crop DINO on scikit-learn's bundled handwritten digits.

It demonstrates partial prototype collapse and its repair by KoLeo-Proto offline, on a laptop
CPU, in minutes. Modules: ``data`` (digits, splits, long-tailed subsampling), ``augment``
(batched multi-crop), ``model`` (tiny conv backbone + DINO head), ``train`` (the DINO loop and the
checkpoint writer), ``knn`` (frozen-feature kNN accuracy), ``evaluate`` (unique / used prototypes, kNN).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "DigitsSplit": "data",
    "load_digits_split": "data",
    "long_tail_indices": "data",
    "MultiCrop": "augment",
    "DinoNet": "model",
    "DinoHead": "model",
    "build_net": "model",
    "TrainConfig": "train",
    "TrainResult": "train",
    "train_dino": "train",
    "save_dino_checkpoint": "train",
    "KnnResult": "knn",
    "knn_accuracy": "knn",
    "backbone_features": "knn",
    "RunMetrics": "evaluate",
    "evaluate_run": "evaluate",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'collapse_probe.demo' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
