"""What one checkpoint family's adapter provides."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..layers import LastLayer

__all__ = ["Adapter", "Selection", "no_extras"]


@dataclass(frozen=True)
class Selection:
    """The flat state dict where a network's heads live.

    Attributes:
        state: flat dict of tensors, wrapper prefixes stripped.
        network: the network read (``teacher``, ``student`` or ``""``).
        key_prefix: how to name the keys in reports (e.g. ``teacher.``).
        notes: remarks for the user (e.g. "MSN prototypes are shared by both networks").
    """

    state: dict[str, Any]
    network: str
    key_prefix: str = ""
    notes: tuple[str, ...] = ()


def no_extras(state: Mapping[str, Any]) -> dict[str, np.ndarray]:
    return {}


@dataclass(frozen=True)
class Adapter:
    """One checkpoint family, as data the registry can order.

    Attributes:
        format: the format name (one of ``FORMATS``).
        summary: where the prototypes live, one line (for docs and ``inspect``).
        detect: whether a loaded top-level dict looks like this family.
        select: ``(state, network) -> Selection``: the flat state holding the heads.
        heads: ``selected state -> LastLayers`` found there, in report order.
        network_state: ``(state, network) -> flat state dict`` of the whole network (backbone
            and head), for code that rebuilds the model; defaults to ``select``'s state.
        extras: ``state -> {name: array}`` of other arrays worth keeping (loss centers).
    """

    format: str
    summary: str
    detect: Callable[[Mapping[str, Any]], bool]
    select: Callable[[Mapping[str, Any], str], Selection]
    heads: Callable[[Mapping[str, Any]], tuple[LastLayer, ...]]
    network_state: Callable[[Mapping[str, Any], str], dict[str, Any]] | None = None
    extras: Callable[[Mapping[str, Any]], dict[str, np.ndarray]] = field(default=no_extras)

    def network(self, state: Mapping[str, Any], network: str) -> dict[str, Any]:
        """The network's whole flat state dict (wrapper prefixes stripped)."""
        if self.network_state is not None:
            return self.network_state(state, network)
        return self.select(state, network).state
