"""The records a checkpoint read produces: :class:`Checkpoint` and the lighter :class:`CheckpointInfo`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ..options import NETWORKS
from ..types import PrototypeSet

__all__ = ["Checkpoint", "CheckpointInfo", "HeadInfo", "NETWORKS", "FORMS"]

#: How a last layer was stored: ``torch.nn.utils.weight_norm`` (``weight_g``/``weight_v``),
#: ``torch.nn.utils.parametrizations.weight_norm`` (``original0``/``original1``), a plain
#: ``Linear.weight``, or a bare tensor.
FORMS: tuple[str, ...] = ("weight-norm-old", "weight-norm-new", "plain", "raw")


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """Everything read from one checkpoint file.

    Attributes:
        path: the file.
        format: one of :data:`collapse_probe.families.FORMATS`.
        network: ``teacher``, ``student``, or ``""`` where the file has no networks (raw
            arrays, key mode outside a network, SwAV, lightly heads without a role in their name).
        heads: one :class:`PrototypeSet` per distinct head; a head stored twice (iBOT's shared
            head) appears once with ``shared_with`` naming the other.
        extras: other arrays worth reporting, e.g. ``center`` (K,) float32, the teacher-output
            running mean from ``dino_loss.center`` / ``ibot_loss.center`` (``center2`` for
            iBOT's patch center).
        forms: head name -> storage form (one of :data:`FORMS`).
        notes: remarks about the read (e.g. MSN prototypes are shared by both networks).
        replaced: ``module.qualname`` of pickled classes that were not loaded (inert
            placeholders stand in for them; the heads do not depend on them).
    """

    path: Path
    format: str
    network: str
    heads: tuple[PrototypeSet, ...]
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)
    forms: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()

    @cached_property
    def sha256(self) -> str:
        """Hex SHA-256 of the file, computed on first access (streams the whole file)."""
        from ..hashing import file_sha256

        return file_sha256(self.path)


@dataclass(frozen=True)
class HeadInfo:
    """What ``inspect`` shows about one head.

    Attributes:
        name: head name (as in :class:`PrototypeSet`).
        num_prototypes: K.
        dim: D.
        source_keys: checkpoint keys the prototypes came from.
        shared_with: other heads holding the very same tensor.
        form: storage form, one of :data:`FORMS`.
        gain_all_ones: whether every weight-norm gain g is 1 (within 1e-4); None if no gain.
        norm_min, norm_max: range of the effective row norms (``|g_k|`` for weight norm).
    """

    name: str
    num_prototypes: int
    dim: int
    source_keys: tuple[str, ...]
    shared_with: tuple[str, ...]
    form: str
    gain_all_ones: bool | None
    norm_min: float
    norm_max: float


@dataclass(frozen=True)
class CheckpointInfo:
    """A description of a checkpoint: what was found, nothing computed beyond the row norms.

    Attributes:
        path: the file.
        format: detected or requested format.
        network: the network read (``""`` when the file has none).
        size_bytes: file size.
        heads: one :class:`HeadInfo` per distinct head.
        other_keys: the file's other top-level keys (e.g. ``args``, ``epoch``, ``optimizer``).
        extras: names and shapes of extra arrays found (e.g. ``center``).
        notes: remarks about the read.
        replaced: pickled classes that were not loaded (placeholders stand in for them).
    """

    path: Path
    format: str
    network: str
    size_bytes: int
    heads: tuple[HeadInfo, ...]
    other_keys: tuple[str, ...] = ()
    extras: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """Plain JSON-ready data (paths as strings, tuples as lists)."""
        return {
            "path": str(self.path), "format": self.format, "network": self.network,
            "size_bytes": self.size_bytes,
            "heads": [{**asdict(h), "source_keys": list(h.source_keys),
                       "shared_with": list(h.shared_with)} for h in self.heads],
            "other_keys": list(self.other_keys),
            "extras": {name: list(shape) for name, shape in self.extras.items()},
            "notes": list(self.notes),
            "replaced_classes": list(self.replaced),
        }
