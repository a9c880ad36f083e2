"""The fine-tuning loop: student head trained on the method's loss plus lambda * KoLeo-Proto,
teacher head an EMA of the student, optional DDP across processes started by ``torchrun``."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..heads.model import PrototypeHead
from ..koleo import koleo_proto_loss
from .features import FeatureViews
from .settings import TrainSettings

__all__ = ["train_heads", "teacher_momentum_at", "freeze_unit_gains",
           "Distributed", "distributed_from_env", "auto_teacher_momentum", "copy_student", "koleo_layers"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Distributed:
    """This process's place in a ``torchrun`` launch (world_size 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1

    @property
    def active(self) -> bool:
        return self.world_size > 1


def distributed_from_env(device: torch.device) -> Distributed:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    import torch.distributed as dist

    if device.type == "cuda":
        # one GPU per process: NCCL's collectives run on the current device
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Distributed(rank=dist.get_rank(), world_size=dist.get_world_size())


def teacher_momentum_at(step: int, steps: int, start: float) -> float:
    """DINO's cosine schedule: ``start`` at step 0 rising to 1 at the last step."""
    if steps <= 1:
        return start
    return 1.0 - (1.0 - start) * (math.cos(math.pi * step / (steps - 1)) + 1.0) / 2.0


def freeze_unit_gains(head: PrototypeHead) -> bool:
    """Freeze a weight-norm gain that is exactly all ones (DINO's ``norm_last_layer=True``).

    Returns:
        Whether the gain was frozen.
    """
    layer = getattr(head, "last_layer", None)
    if layer is None:
        return False
    gain = getattr(layer, "weight_g", None)
    if gain is None and hasattr(layer, "parametrizations"):
        gain = layer.parametrizations.weight.original0
    if gain is None or not bool(torch.all(gain == 1)):
        return False
    gain.requires_grad_(False)
    return True


@torch.no_grad()
def _ema(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    student_params = dict(student.named_parameters())
    for name, t_param in teacher.named_parameters():
        s_param = student_params[name]
        if s_param is t_param:  # shared (MSN prototypes)
            continue
        t_param.mul_(momentum).add_(s_param.detach(), alpha=1.0 - momentum)


def koleo_layers(head: nn.Module) -> list[Any]:
    """The prototype layers KoLeo-Proto acts on: one per set of prototypes."""
    if callable(getattr(head, "prototype_layers", None)):
        return list(head.prototype_layers())
    return [head.prototype_layer()]


def train_heads(student: PrototypeHead, teacher: PrototypeHead, objective: Callable[..., torch.Tensor],
                views: FeatureViews, settings: TrainSettings, *, koleo_weight: float,
                teacher_momentum: float, dist: Distributed, koleo_options: dict[str, Any] | None = None,
                on_log: Callable[[int, np.ndarray], None] | None = None,
                on_step: Callable[[int], None] | None = None) -> np.ndarray:
    """Run ``settings.steps`` optimisation steps; the heads are updated in place.

    The loss is the objective's plus ``koleo_weight`` * KoLeo-Proto (``koleo_options`` are
    passed to :func:`~collapse_probe.koleo.koleo_proto_loss`); the teacher's EMA momentum rises
    from ``teacher_momentum`` to 1 (:func:`teacher_momentum_at`). ``settings.seed`` and
    ``settings.device`` are not read here: the caller seeds and places the heads and views.

    ``teacher`` may be ``student`` itself (SwAV: one network, targets from its own detached
    outputs, no EMA). An objective with an ``after_step(student)`` method has it called after
    every optimiser step (SwAV re-normalises its prototypes). ``on_step(step)`` is called after
    every step (progress display); ``on_log(step, curve)`` every ``log_every`` steps.

    Returns:
        (steps, 3) float64: total loss, method loss, KoLeo-Proto value (NaN when not computed).
    """
    koleo_options = koleo_options or {}
    one_network = teacher is student
    student.train()
    if not one_network:
        teacher.eval()
        for param in teacher.parameters():
            if not any(param is p for p in student.parameters()):
                param.requires_grad_(False)
    model: nn.Module = student
    if dist.active:
        first = next(iter(student.parameters()))
        device_ids = [first.device.index] if first.is_cuda else None
        model = nn.parallel.DistributedDataParallel(student, device_ids=device_ids)
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    after_step = getattr(objective, "after_step", None)
    if after_step is not None:
        after_step(student)  # SwAV normalises before the first step too
    layers = koleo_layers(student)
    curve = np.full((settings.steps, 3), np.nan)
    for step in range(settings.steps):
        x = views.batch(settings.batch_size)  # (B, V, d)
        b, v, d = x.shape
        flat = x.reshape(b * v, d)
        s_logits = model(flat).reshape(b, v, -1)
        if one_network:
            t_logits = s_logits.detach()
        else:
            with torch.no_grad():
                t_logits = teacher(flat).reshape(b, v, -1)
        method = objective(s_logits, t_logits)
        del t_logits
        total = method
        koleo_value = None
        logging_step = step % settings.log_every == 0 or step == settings.steps - 1
        if koleo_weight > 0:
            koleo_value = _koleo(layers, koleo_options)
            total = method + koleo_weight * koleo_value
        elif logging_step:
            with torch.no_grad():
                koleo_value = _koleo(layers, koleo_options)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        if after_step is not None:
            after_step(student)
        if not one_network:
            _ema(teacher, student, teacher_momentum_at(step, settings.steps, teacher_momentum))
        curve[step] = (total.item(), method.item(), np.nan if koleo_value is None else koleo_value.item())
        if on_step is not None:
            on_step(step)
        if logging_step:
            log.info("step %d/%d loss %.4f method %.4f koleo %.4f", step + 1, settings.steps, *curve[step])
            if on_log is not None:
                on_log(step, curve[: step + 1])
    student.eval()
    return curve


def _koleo(layers: list[Any], options: dict[str, Any]) -> torch.Tensor:
    # one term per set of prototypes, averaged (SwAV's several heads)
    values = [koleo_proto_loss(layer, **options) for layer in layers]
    return values[0] if len(values) == 1 else torch.stack(values).mean()


@torch.no_grad()
def copy_student(teacher: nn.Module, student: nn.Module) -> None:
    """Make the teacher's parameters equal to the student's (``teacher="copy-student"``)."""
    _ema(teacher, student, 0.0)


def auto_teacher_momentum(steps: int) -> float:
    """A starting EMA momentum suited to a run of ``steps`` steps.

    Under the cosine schedule from m0 to 1 the teacher keeps about ``exp(-(1 - m0) * steps / 2)``
    of its starting weights; ``m0 = 1 - 6 / steps`` makes that exp(-3) = 5 %, so a repair the
    student makes reaches the teacher. Capped at DINO's 0.996 for long runs, floored at 0.5.
    """
    return float(min(0.996, max(0.5, 1.0 - 6.0 / max(steps, 1))))
