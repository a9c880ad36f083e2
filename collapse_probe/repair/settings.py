"""The settings of a fine-tuning run, as a few frozen records that :func:`~collapse_probe.finetune`
takes whole: the optimisation (:class:`TrainSettings`), KoLeo-Proto (:class:`KoLeoSettings`), the
EMA teacher (:class:`TeacherSettings`) and the method's objective (one record per objective:
:class:`DinoSettings`, :class:`MsnSettings`, :class:`SwavSettings`).

Every default is the one ``finetune`` and ``collapse-probe finetune`` use. Records check their
values when built and raise :class:`~collapse_probe.errors.InputError` with one line naming the
setting (e.g. ``koleo_weight: expected a finite number >= 0, got -1.0.``). Nothing heavy is
imported here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from ..validation import fail

__all__ = ["TrainSettings", "KoLeoSettings", "TeacherSettings", "DinoSettings", "MsnSettings",
           "SwavSettings", "ObjectiveSettings", "OBJECTIVE_SETTINGS", "DEFAULT_KOLEO_WEIGHT",
           "TEACHER_MODES", "objective_settings", "settings_record"]

#: The starting KoLeo-Proto weight. The paper's value could not be read; 0.1 is the weight DINOv2
#: gives its (feature-space) KoLeo term. On small synthetic collapsed heads it separates every
#: copy within 100-150 steps, the method's loss ending within about 10 % of a run without it.
#: Tune it: it is always recorded.
DEFAULT_KOLEO_WEIGHT: float = 0.1

#: :attr:`TeacherSettings.written` choices for the written teacher: the student at the end of the
#: run (default), or the EMA teacher itself. During the run the teacher is an EMA of the student
#: either way.
TEACHER_MODES: tuple[str, ...] = ("copy-student", "ema")

#: Devices a run may ask for (``cuda`` under torchrun means ``cuda:LOCAL_RANK``).
DEVICES: tuple[str, ...] = ("cpu", "cuda")


@dataclass(frozen=True)
class TrainSettings:
    """How the head is optimised (AdamW on the student head; the backbone is never trained).

    Attributes:
        steps: optimisation steps (>= 1); the loss curve has one row per step.
        batch_size: samples per step, per process under torchrun (>= 1); each sample brings all
            its views.
        lr: AdamW learning rate (> 0, finite).
        weight_decay: AdamW weight decay (>= 0).
        seed: seeds batch order, feature augmentation and KoLeo-Proto's anchor sampling.
        device: ``cpu`` or ``cuda`` (``cuda`` under torchrun means ``cuda:LOCAL_RANK``).
        log_every: log the losses (and call ``on_log``) every this many steps (>= 1).
    """

    steps: int = 500
    batch_size: int = 256
    lr: float = 1e-4
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "cpu"
    log_every: int = 50

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise fail(name, expected="a positive integer", got=repr(value))
        if not (np.isfinite(self.lr) and self.lr > 0):
            raise fail("lr", expected="a positive learning rate", got=repr(self.lr))
        if not self.weight_decay >= 0:
            raise fail("weight_decay", expected="a number >= 0", got=repr(self.weight_decay))
        if self.device not in DEVICES:
            raise fail("device", expected="'cpu' or 'cuda'", got=repr(self.device))


@dataclass(frozen=True)
class KoLeoSettings:
    """KoLeo-Proto, the term added to the method's loss to spread the prototypes apart.

    Attributes:
        weight: lambda, the term's weight in the total loss (finite, >= 0; 0: the method's loss
            alone, KoLeo-Proto still computed on logging steps for the curve).
            :data:`DEFAULT_KOLEO_WEIGHT` by default.
        anchors: ``"auto"`` (default): exact KoLeo-Proto unless the exact neighbour search would
            cost more than the rest of the step, then a sampled estimate on as many anchors as
            fit that cost (:func:`~collapse_probe.repair.api.choose_koleo_anchors`); None or 0:
            exact over all K prototypes; N: N random anchor prototypes per step (unbiased).
        block_size: rows per block of the neighbour search (bounds its memory); None lets
            :func:`~collapse_probe.koleo.koleo_proto_loss` choose.
    """

    weight: float = DEFAULT_KOLEO_WEIGHT
    anchors: int | str | None = "auto"
    block_size: int | None = None

    def __post_init__(self) -> None:
        if not (np.isfinite(self.weight) and self.weight >= 0):
            raise fail("koleo_weight", expected="a finite number >= 0", got=repr(self.weight))
        value = self.anchors
        if value is None or value == "auto":
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise fail("koleo_anchors", expected="'auto', None, 0 (exact) or a positive number of anchors",
                       got=repr(value))


@dataclass(frozen=True)
class TeacherSettings:
    """The teacher network of two-network methods (DINO family, MSN); SwAV has none, so these
    do not apply to it (recorded as None).

    During the run the teacher gives the targets and is an EMA of the student, its momentum
    following a cosine from ``momentum`` at the first step to 1 at the last.

    Attributes:
        written: what the written teacher (the one ``audit`` reads) is: ``copy-student``
            (default: the student at the end, so it carries the repair whenever the student
            does) or ``ema`` (the run's EMA teacher, which lags).
        momentum: start of the EMA momentum, in [0, 1]; None (default) picks one suited to the
            run's length, ``1 - 6 / steps`` within [0.5, 0.996]
            (:func:`~collapse_probe.repair.loop.auto_teacher_momentum`).
    """

    written: str = "copy-student"
    momentum: float | None = None

    def __post_init__(self) -> None:
        if self.written not in TEACHER_MODES:
            raise fail("teacher", expected=" or ".join(repr(m) for m in TEACHER_MODES), got=repr(self.written))
        if self.momentum is not None and not 0 <= self.momentum <= 1:
            raise fail("teacher_momentum", expected="a momentum in [0, 1]", got=repr(self.momentum))


@dataclass(frozen=True)
class DinoSettings:
    """DINO's loss (DINO, iBOT, EsViT, DINOv2/v3 and the other DINO-like layouts: [CLS] head).

    Attributes:
        teacher_temp: temperature dividing the centred teacher logits (sharpening; DINO: 0.04-0.07).
        student_temp: temperature dividing the student logits (DINO: 0.1).
        center_momentum: EMA momentum of the center, the running mean of the teacher's outputs
            (DINO: 0.9); the center starts from the checkpoint's when it has one.
    """

    teacher_temp: float = 0.04
    student_temp: float = 0.1
    center_momentum: float = 0.9


@dataclass(frozen=True)
class MsnSettings:
    """MSN's prototype loss with mean-entropy maximisation (prototypes shared by both networks).

    Attributes:
        temperature: divides the cosine logits between embeddings and prototypes (MSN: 0.1).
        sharpen: temperature of the target sharpening (MSN: 0.25).
        memax_weight: weight of the mean-entropy maximisation term (MSN: 1.0).
    """

    temperature: float = 0.1
    sharpen: float = 0.25
    memax_weight: float = 1.0


@dataclass(frozen=True)
class SwavSettings:
    """SwAV's swapped prediction of Sinkhorn-Knopp codes (SwAV and DeepCluster-v2 layouts).

    Attributes:
        temperature: divides the prototype scores in the prediction's softmax (SwAV: 0.1).
        epsilon: entropic regularisation of the Sinkhorn-Knopp codes (SwAV: 0.05).
        sinkhorn_iterations: Sinkhorn-Knopp normalisation rounds (SwAV: 3).
    """

    temperature: float = 0.1
    epsilon: float = 0.05
    sinkhorn_iterations: int = 3


#: One of the objective records.
ObjectiveSettings = DinoSettings | MsnSettings | SwavSettings

#: Each objective's settings record, by the objective's name (``Family.objective``).
OBJECTIVE_SETTINGS: dict[str, type] = {"dino": DinoSettings, "msn": MsnSettings, "swav": SwavSettings}


def objective_settings(given: Any, *, objective: str, format: str) -> ObjectiveSettings:
    """The objective settings of a run on a ``format`` checkpoint whose objective is ``objective``.

    Args:
        given: the caller's record, or None for the objective's defaults.
        objective: ``dino``, ``msn`` or ``swav`` (:attr:`collapse_probe.Family.objective`).
        format: the checkpoint's family, named in the error.

    Raises:
        InputError: ``given`` is another objective's record (or not a record at all).
    """
    expected = OBJECTIVE_SETTINGS[objective]
    if given is None:
        return expected()
    if not isinstance(given, expected):
        from ..errors import InputError

        got = type(given).__name__
        raise InputError(f"objective: {format} checkpoints are fine-tuned with the {objective} "
                         f"objective ({expected.__name__}), got {got} (settings of another objective, "
                         f"e.g. --teacher-temp for DINO's): pass {expected.__name__} or None for its defaults.")
    return given


def settings_record(settings: ObjectiveSettings) -> dict[str, Any]:
    """The objective's settings as the result's JSON ``settings`` entries (field name: value)."""
    return {f.name: getattr(settings, f.name) for f in fields(settings)}
