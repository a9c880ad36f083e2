"""What one checkpoint family is, as data: :class:`Family`, with the :class:`Selection` of a
network's heads and the :class:`HeadSpec` of a head's MLP and last layer."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..checkpoints.keys import LastLayer

__all__ = ["Family", "Selection", "HeadSpec", "LOGITS_STYLES", "OBJECTIVES", "no_extras"]

#: ``linear``: last_layer(normalize(z)); ``cosine``: normalize(z) @ normalize(P).T / temperature.
LOGITS_STYLES: tuple[str, ...] = ("linear", "cosine")

#: The training objectives :func:`collapse_probe.finetune` implements: DINO's self-distillation
#: (teacher EMA, centering, sharpening; DINO, iBOT, EsViT, DINOv2/v3, lightly, solo-learn), MSN's
#: (cosine logits, mean-entropy maximisation) and SwAV's swapped prediction (one network,
#: Sinkhorn-Knopp codes; DeepCluster-v2 files share SwAV's layout).
OBJECTIVES: tuple[str, ...] = ("dino", "msn", "swav")


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


@dataclass(frozen=True)
class HeadSpec:
    """Where one head lives in a flat network state, and how it computes its logits.

    Attributes:
        format: the checkpoint format (a :class:`Family` name).
        name: the head's name (as in the checkpoint reader's reports).
        mlp_prefix: key prefix of the MLP (``head.mlp``); "" when the head has no MLP.
        last_prefix: key prefix of the last layer (``head.last_layer``), or the key of a raw
            prototype tensor (MSN ``prototypes``).
        activation: ``gelu`` or ``relu``, between the MLP's blocks.
        logits: one of :data:`LOGITS_STYLES`.
    """

    format: str
    name: str
    mlp_prefix: str
    last_prefix: str
    activation: str = "gelu"
    logits: str = "linear"


def no_extras(state: Mapping[str, Any]) -> dict[str, np.ndarray]:
    return {}


@dataclass(frozen=True)
class Family:
    """Everything the package knows about one checkpoint family, in one record.

    Reading a file (:mod:`collapse_probe.checkpoints`), rebuilding a head
    (:mod:`collapse_probe.heads`), fine-tuning it (:mod:`collapse_probe.repair`) and the zoo's
    entries all read this record; a new family is one module defining one.

    Attributes:
        name: the format name users pass (``dino``).
        summary: where the prototypes live, one line (for docs and ``inspect``).
        detect: whether a loaded top-level dict looks like this family.
        select: ``(state, network) -> Selection``: the flat state holding the heads.
        heads: ``selected state -> LastLayers`` found there, in report order.
        head_spec: ``(head name, network keys) -> HeadSpec``: the MLP and last layer of a head.
        objective: the training objective, one of :data:`OBJECTIVES`.
        main_head: the head read when none is named (the [CLS] / view-level head).
        find_main_head: for families whose head names are the user's own (lightly): picks the
            main head among a network's keys; ``main_head`` is the fallback.
        network_state: ``(state, network) -> flat state dict`` of the whole network (backbone
            and head), for code that rebuilds the model; defaults to ``select``'s state.
        extras: ``state -> {name: array}`` of other arrays worth keeping (loss centers).
        twin_layers: ``(layer, twin)`` key prefixes of last layers the family may save twice as
            equal tensors (iBOT's shared head): a head written back under ``layer`` is written
            under ``twin`` too, where the file holds an equal copy there.
    """

    name: str
    summary: str
    detect: Callable[[Mapping[str, Any]], bool]
    select: Callable[[Mapping[str, Any], str], Selection]
    heads: Callable[[Mapping[str, Any]], tuple[LastLayer, ...]]
    head_spec: Callable[[str, Sequence[str]], HeadSpec]
    objective: str = "dino"
    main_head: str = "head"
    find_main_head: Callable[[Sequence[str]], str | None] | None = None
    network_state: Callable[[Mapping[str, Any], str], dict[str, Any]] | None = None
    extras: Callable[[Mapping[str, Any]], dict[str, np.ndarray]] = field(default=no_extras)
    twin_layers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:  # a programming error in a family module
            raise ValueError(f"family {self.name!r}: objective must be one of {OBJECTIVES}")

    @property
    def one_network(self) -> bool:
        """Whether the method trains one network (SwAV) rather than a student and an EMA teacher."""
        return self.objective == "swav"

    def network(self, state: Mapping[str, Any], network: str) -> dict[str, Any]:
        """The network's whole flat state dict (wrapper prefixes stripped)."""
        if self.network_state is not None:
            return self.network_state(state, network)
        return self.select(state, network).state

    def default_head(self, keys: Sequence[str] = ()) -> str:
        """The head read when none is named, given the network's keys."""
        if self.find_main_head is not None:
            return self.find_main_head(keys) or self.main_head
        return self.main_head
