"""Generic key mode: prototypes at an explicit key path, for layouts no adapter knows.

A key names a tensor or a layer, with dots between nested dicts and module names alike
(``teacher.head.last_layer``, ``prototypes``, ``state_dict.model.proj.weight``). A layer prefix
resolves to its weight-norm pair or plain weight; wrapper parts (``module.``, ``_orig_mod.``)
may be left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import NoPrototypesError
from .diagnose import largest_matrices
from .keys import strip_all_wrappers
from .layers import WEIGHT_NORM_LEAVES, LastLayer, find_last_layer, raw_layer

__all__ = ["resolve_key", "normalise_keys"]


def normalise_keys(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``flat`` with every wrapper part removed from its keys (first key wins on a clash)."""
    normalised: dict[str, Any] = {}
    for key, value in flat.items():
        normalised.setdefault(strip_all_wrappers(key), value)
    return normalised


def resolve_key(flat: Mapping[str, Any], key: str, *, where: str) -> LastLayer:
    """The layer or tensor ``key`` names in the normalised flat state ``flat``.

    Raises:
        NoPrototypesError: nothing at ``key``; the message lists nearby keys and the largest
            2-D tensors.
    """
    wanted = strip_all_wrappers(key.strip().strip("."))
    prefix = wanted
    for leaf in WEIGHT_NORM_LEAVES:  # a key naming one half of a weight-norm pair
        if wanted.endswith(f".{leaf}"):
            prefix = wanted.removesuffix(f".{leaf}")
            break
    layer = find_last_layer(flat, prefix, name=prefix)
    if layer is not None:
        return layer
    if wanted in flat:
        return raw_layer(wanted, name=wanted.removesuffix(".weight"))
    nearby = _nearby(flat, wanted)
    hint = f" Keys nearby: {', '.join(nearby)}." if nearby else ""
    raise NoPrototypesError(
        f"no tensor or last layer at key {key!r} in {where}.{hint} Largest 2-D tensors: "
        f"{largest_matrices(flat) or 'none'}.")


def _nearby(flat: Mapping[str, Any], wanted: str, n: int = 5) -> list[str]:
    """Keys sharing the most leading path parts with ``wanted`` (at least one)."""
    parts = wanted.split(".")

    def common(key: str) -> int:
        count = 0
        for a, b in zip(parts, key.split("."), strict=False):
            if a != b:
                break
            count += 1
        return count

    scores = {key: common(key) for key in flat}
    best = max(scores.values(), default=0)
    return [key for key, score in scores.items() if score == best][:n] if best else []
