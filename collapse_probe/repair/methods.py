"""What differs between the objectives a head is fine-tuned with, in one place: which heads are
trained and how they are built (:func:`build_heads`), and the loss with what it records
(:func:`build_objective`). Each objective's settings record picks its entry.

* DINO: teacher and student heads, the DINO loss; the center starts from the checkpoint's.
* MSN: teacher and student heads sharing one prototype matrix, MSN's loss.
* SwAV: one network (the student is the teacher), every set of prototypes at once, the swapped
  prediction; prototypes re-normalised after every step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import InputError, option
from .settings import DinoSettings, MsnSettings, ObjectiveSettings, SwavSettings, settings_record

__all__ = ["Heads", "build_heads", "build_objective"]


@dataclass(frozen=True)
class Heads:
    """The heads a run trains.

    Attributes:
        teacher: the teacher head (for SwAV, the one network: the same object as ``student``).
        student: the head trained by gradient.
        names: the heads' names in the checkpoint: ``[head]`` (None: the format's main head),
            or every set of SwAV prototypes trained.
    """

    teacher: Any
    student: Any
    names: list[str | None]


def build_heads(settings: ObjectiveSettings, checkpoint: Any, *, head: str | None,
                teacher_state: Mapping[str, Any], student_state: Mapping[str, Any] | None) -> Heads:
    """Rebuild the heads to train from the checkpoint's network states.

    Without a student in the file, it starts as a copy of the teacher (rebuilt, not deep-copied:
    old weight-norm modules cannot be deep-copied).
    """
    return _HEADS[type(settings)](settings, checkpoint, head, teacher_state, student_state)


def build_objective(settings: ObjectiveSettings, heads: Heads, checkpoint: Any, *,
                    device: torch.device) -> tuple[Callable[..., torch.Tensor], dict[str, Any]]:
    """The objective (called on (B, V, K) student and teacher logits) and the run's record of it.

    Returns:
        (objective, record): the record is :func:`~collapse_probe.repair.settings.settings_record`
        plus what the run found (DINO: whether the center came from the checkpoint; SwAV: the
        heads and their sizes).
    """
    return _OBJECTIVES[type(settings)](settings, heads, checkpoint, device)


# -- heads ------------------------------------------------------------------------------------------
def _two_networks(settings: ObjectiveSettings, checkpoint: Any, head: str | None,
                  teacher_state: Mapping[str, Any], student_state: Mapping[str, Any] | None) -> Heads:
    from ..heads import rebuild_head

    options: dict[str, Any] = {"format": checkpoint.format, "head": head}
    if isinstance(settings, MsnSettings):
        options["temperature"] = settings.temperature
    teacher = rebuild_head(teacher_state, **options)
    student = rebuild_head(student_state if student_state is not None else teacher_state, **options)
    if isinstance(settings, MsnSettings):
        student.prototype_matrix = teacher.prototype_matrix  # one set, trained by gradient
    return Heads(teacher, student, [head])


def _swav(settings: SwavSettings, checkpoint: Any, head: str | None,
          teacher_state: Mapping[str, Any], student_state: Mapping[str, Any] | None) -> Heads:
    from ..heads import rebuild_head
    from ..heads.model import HeadSet

    names = [h.name for h in checkpoint.heads]
    if head is not None:
        if head not in names:
            raise InputError(f"{option('head', head)}: this SwAV checkpoint has {', '.join(names)}.")
        names = [head]
    model = HeadSet([rebuild_head(teacher_state, format=checkpoint.format, head=name) for name in names])
    return Heads(model, model, list(names))


_HEADS: dict[type, Callable[..., Heads]] = {DinoSettings: _two_networks, MsnSettings: _two_networks,
                                            SwavSettings: _swav}


# -- objectives -------------------------------------------------------------------------------------
def _dino(settings: DinoSettings, heads: Heads, checkpoint: Any, device: torch.device) -> tuple[Any, dict]:
    from .objectives import DinoObjective

    num = heads.teacher.num_prototypes
    center = checkpoint.extras.get("center")
    found = center is not None
    if center is not None and center.shape[-1] != num:
        center = None
    objective = DinoObjective(None if center is None else torch.from_numpy(np.asarray(center)),
                              num_prototypes=num, teacher_temp=settings.teacher_temp,
                              student_temp=settings.student_temp, center_momentum=settings.center_momentum,
                              device=device)
    return objective, settings_record(settings) | {"center_from_checkpoint": found}


def _msn(settings: MsnSettings, heads: Heads, checkpoint: Any, device: torch.device) -> tuple[Any, dict]:
    from .objectives import MsnObjective

    return MsnObjective(sharpen=settings.sharpen, memax_weight=settings.memax_weight), settings_record(settings)


def _swav_objective(settings: SwavSettings, heads: Heads, checkpoint: Any,
                    device: torch.device) -> tuple[Any, dict]:
    from .objectives import SwavObjective

    sizes = heads.student.sizes
    objective = SwavObjective(temperature=settings.temperature, epsilon=settings.epsilon,
                              iterations=settings.sinkhorn_iterations, sizes=sizes)
    objective.after_step = _normalise_prototypes  # type: ignore[attr-defined]
    return objective, settings_record(settings) | {"heads": list(heads.names), "prototypes_per_head": sizes}


def _normalise_prototypes(head: Any) -> None:
    # SwAV keeps unit prototypes: every step starts from normalised rows (main_swav.py)
    with torch.no_grad():
        for layer in head.prototype_layers():
            layer.weight.copy_(torch.nn.functional.normalize(layer.weight, dim=1, p=2))


_OBJECTIVES: dict[type, Callable[..., tuple[Any, dict]]] = {DinoSettings: _dino, MsnSettings: _msn,
                                                            SwavSettings: _swav_objective}
