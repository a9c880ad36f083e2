"""DINOv3 (facebookresearch/dinov3) teacher checkpoints: DINOv2's layout with plain
``Linear.weight`` last layers."""

from __future__ import annotations

from functools import partial

from .base import Family
from .common import dino_head_spec, heads_at, teacher_student
from .dinov2 import HEADS, detect_form

__all__ = ["FAMILY"]

FAMILY = Family(
    name="dinov3",
    summary='{"teacher": {backbone.*, dino_head.*, ibot_head.*}}, plain last layers',
    detect=partial(detect_form, plain=True),
    select=partial(teacher_student, family="dinov3"),
    heads=partial(heads_at, named_prefixes=HEADS),
    head_spec=partial(dino_head_spec, family="dinov3"),
    main_head="dino_head",
)
