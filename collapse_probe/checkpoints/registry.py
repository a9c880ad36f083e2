"""Format detection as data: the adapters, tried in this order; the first that recognises a
file's top-level dict reads it.

The order matters where layouts nest: DINOv2/v3 (``dino_head``) and MSN (top-level
``prototypes``) are unambiguous; iBOT and EsViT are DINO plus something, so they come before
DINO; solo-learn's ``momentum_head`` before lightly's "any ``<attr>.last_layer``"; SwAV's
``prototypes.weight`` before that catch-all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InputError
from .adapters import dino, dinov2, dinov3, esvit, ibot, lightly, msn, sololearn, swav
from .adapters.base import Adapter

__all__ = ["ADAPTERS", "adapter_for", "detect"]

ADAPTERS: tuple[Adapter, ...] = (
    dinov2.ADAPTER,
    dinov3.ADAPTER,
    msn.ADAPTER,
    ibot.ADAPTER,
    esvit.ADAPTER,
    dino.ADAPTER,
    sololearn.ADAPTER,
    swav.ADAPTER,
    lightly.ADAPTER,
)
_BY_FORMAT: dict[str, Adapter] = {adapter.format: adapter for adapter in ADAPTERS}


def adapter_for(format: str) -> Adapter:  # noqa: A002 - the option's name
    """The adapter of a family format (not ``key`` or ``array``, which have none)."""
    adapter = _BY_FORMAT.get(format)
    if adapter is None:
        raise InputError(f"format {format!r} has no network layout: expected one of "
                         f"{', '.join(_BY_FORMAT)}.")
    return adapter


def detect(state: Mapping[str, Any]) -> Adapter | None:
    """The first adapter that recognises ``state``, or None."""
    return next((adapter for adapter in ADAPTERS if adapter.detect(state)), None)
