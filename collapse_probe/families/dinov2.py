"""DINOv2 (facebookresearch/dinov2) ``teacher_checkpoint.pth``: ``{"teacher": {backbone.*,
dino_head.*, ibot_head.*}}`` with weight-norm last layers whose g is trained."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from ..checkpoints.keys import find_last_layer
from .base import Family
from .common import dino_head_spec, heads_at, teacher_student
from .dino import first_network

__all__ = ["FAMILY", "HEADS", "detect_form"]

HEADS = (("dino_head", "dino_head.last_layer"), ("ibot_head", "ibot_head.last_layer"))


def detect_form(state: Mapping[str, Any], *, plain: bool) -> bool:
    """Whether the teacher (or student) has a ``dino_head`` last layer, plain or weight-norm."""
    net = first_network(state)
    if net is None:
        return False
    layer = find_last_layer(net, "dino_head.last_layer", name="dino_head")
    return layer is not None and (layer.form == "plain") == plain


FAMILY = Family(
    name="dinov2",
    summary='{"teacher": {backbone.*, dino_head.*, ibot_head.*}}, weight-norm last layers',
    detect=partial(detect_form, plain=False),
    select=partial(teacher_student, family="dinov2"),
    heads=partial(heads_at, named_prefixes=HEADS),
    head_spec=partial(dino_head_spec, family="dinov2"),
    main_head="dino_head",
)
