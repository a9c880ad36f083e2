"""Reading prototypes from DINO-family checkpoints.

``read_checkpoint(path)`` sniffs the file, loads it safely (weights only, memory-mapped),
detects its layout (DINO, iBOT, EsViT, MSN, DINOv2, DINOv3, lightly, solo-learn, SwAV; or an
explicit key; or a raw array) and returns one :class:`~collapse_probe.types.PrototypeSet` per
distinct head. Torch is imported only when a file is actually loaded.
"""

from __future__ import annotations

from .loading import SAFE_GLOBALS, load_state
from .model import FORMS, NETWORKS, Checkpoint, CheckpointInfo, HeadInfo
from .reader import inspect_checkpoint, load_prototypes, network_state, read_checkpoint

__all__ = [
    "Checkpoint",
    "CheckpointInfo",
    "HeadInfo",
    "FORMS",
    "NETWORKS",
    "SAFE_GLOBALS",
    "read_checkpoint",
    "load_prototypes",
    "load_state",
    "network_state",
    "inspect_checkpoint",
]
