"""The checkpoint families, one record each (:class:`Family`), and the order detection tries them.

Each module here describes one family: where its prototypes live, how to find its heads, their
MLP layout, its training objective. Everything else (the formats the reader accepts, the heads
``rebuild_head`` can build, the formats ``finetune`` repairs, the zoo's families) is derived from
:data:`FAMILIES`. To add a family, write one module defining ``FAMILY`` and list it below.

Detection order matters where layouts nest: DINOv2/v3 (``dino_head``) and MSN (top-level
``prototypes``) are unambiguous; iBOT and EsViT are DINO plus something, so they come before
DINO; solo-learn's ``momentum_head`` before lightly's "any ``<attr>.last_layer``"; SwAV's
``prototypes.weight`` before that catch-all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..validation import fail
from . import dino, dinov2, dinov3, esvit, ibot, lightly, msn, sololearn, swav
from .base import LOGITS_STYLES, OBJECTIVES, Family, HeadSpec, Selection

__all__ = ["Family", "Selection", "HeadSpec", "FAMILIES", "FORMATS", "LOGITS_STYLES", "OBJECTIVES",
           "family", "detect", "head_spec", "default_head"]

#: Every family, in detection order.
FAMILIES: tuple[Family, ...] = (
    dinov2.FAMILY,
    dinov3.FAMILY,
    msn.FAMILY,
    ibot.FAMILY,
    esvit.FAMILY,
    dino.FAMILY,
    sololearn.FAMILY,
    swav.FAMILY,
    lightly.FAMILY,
)
_BY_NAME: dict[str, Family] = {f.name: f for f in FAMILIES}

#: Every format the reader accepts: the families, ``key`` (an explicit tensor path) and
#: ``array`` (a raw ``.npy`` / ``.npz`` / ``.pt`` tensor).
FORMATS: tuple[str, ...] = (*_BY_NAME, "key", "array")


def family(name: str) -> Family:
    """The family called ``name``; ``key`` and ``array`` are formats without one."""
    found = _BY_NAME.get(name)
    if found is None:
        raise fail("format", expected=f"a checkpoint family ({', '.join(_BY_NAME)})",
                   got=repr(name), hint="Raw arrays and explicit keys have no network layout.")
    return found


def detect(state: Mapping[str, Any]) -> Family | None:
    """The first family that recognises a loaded top-level dict, or None."""
    return next((f for f in FAMILIES if f.detect(state)), None)


def default_head(name: str, keys: Sequence[str] = ()) -> str:
    """The head read when none is named: the [CLS]/view-level head of family ``name``'s networks."""
    return family(name).default_head(keys)


def head_spec(name: str, head: str, keys: Sequence[str] = ()) -> HeadSpec:
    """The :class:`HeadSpec` of ``head`` in a network state of family ``name`` with these ``keys``."""
    return family(name).head_spec(head, keys)
