"""DINOv3 (facebookresearch/dinov3) teacher checkpoints: DINOv2's layout with plain
``Linear.weight`` last layers."""

from __future__ import annotations

from functools import partial

from .base import Adapter
from .common import heads_at, teacher_student
from .dinov2 import HEADS, detect_form

__all__ = ["ADAPTER"]

ADAPTER = Adapter(
    format="dinov3",
    summary='{"teacher": {backbone.*, dino_head.*, ibot_head.*}}, plain last layers',
    detect=partial(detect_form, plain=True),
    select=partial(teacher_student, format="dinov3"),
    heads=partial(heads_at, named_prefixes=HEADS),
)
