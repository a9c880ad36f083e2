"""Why a file holds no prototypes: backbone-only releases, and the tensors that came closest."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import NoPrototypesError, option
from .keys import flatten, strip_all_wrappers

__all__ = ["largest_matrices", "no_prototypes", "BACKBONE_MARKERS"]

#: Key paths that only a backbone has (ViT/DeiT, XCiT, Swin, ResNet, ConvNeXt).
BACKBONE_MARKERS = re.compile(
    r"(^|\.)(cls_token|pos_embed|patch_embed|blocks\.\d+|layers\.\d+|layer[1-4]\.\d+|conv1|bn1"
    r"|stem|stages\.\d+|downsample_layers)(\.|$)")
_HEAD_MARKERS = re.compile(r"(^|\.)(last_layer2?|prototypes|head|head_dense|dino_head|ibot_head)(\.|$)")


def largest_matrices(flat: Mapping[str, Any], n: int = 5) -> str:
    """The ``n`` largest 2-D tensors as ``key [K, D]`` (the likeliest prototype candidates)."""
    matrices = [(k, tuple(v.shape)) for k, v in flat.items() if getattr(v, "ndim", 0) == 2]
    matrices.sort(key=lambda kv: (-kv[1][0] * kv[1][1], kv[0]))
    return ", ".join(f"{k} [{a}, {b}]" for k, (a, b) in matrices[:n])


def no_prototypes(path: Path, state: Mapping[str, Any], *, expected: str = "") -> NoPrototypesError:
    """The error for a checkpoint dict in which no layout found prototypes."""
    flat = flatten(state)
    if _backbone_only(flat):
        return NoPrototypesError(
            f"{path} holds backbone weights only ({len(flat)} tensors, no prototype head). "
            "DINO's `*_pretrain.pth` and iBOT's `checkpoint_teacher.pth` releases are "
            "backbone-only: the `*_pretrain_full_checkpoint.pth` (DINO) or `checkpoint.pth` "
            "(iBOT) release holds the head (see `collapse-probe zoo list`).")
    what = expected or "no known layout (DINO, iBOT, EsViT, MSN, DINOv2/v3, lightly, solo-learn, SwAV)"
    top = ", ".join(list(map(str, state))[:8])
    return NoPrototypesError(
        f"no recognisable prototypes in {path}: {what} matched (top-level keys: {top or 'none'}). "
        f"Largest 2-D tensors: {largest_matrices(flat) or 'none'}. Pass {option('key', '<path>')} to "
        "name the prototype tensor or layer.")


def _backbone_only(flat: Mapping[str, Any]) -> bool:
    keys = [strip_all_wrappers(k) for k in flat]
    return (bool(keys) and not any(_HEAD_MARKERS.search(k) for k in keys)
            and any(BACKBONE_MARKERS.search(k) for k in keys))
