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

__all__ = ["LoopSettings", "train_heads", "teacher_momentum_at", "freeze_unit_gains",
           "Distributed", "distributed_from_env"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopSettings:
    """Optimisation settings of one run (see :func:`collapse_probe.finetune` for meanings)."""

    steps: int
    batch_size: int
    lr: float
    weight_decay: float
    koleo_weight: float
    teacher_momentum: float
    log_every: int


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
    layer = head.last_layer
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


def train_heads(student: PrototypeHead, teacher: PrototypeHead, objective: Callable[..., torch.Tensor],
                views: FeatureViews, settings: LoopSettings, *, dist: Distributed,
                koleo_options: dict[str, Any] | None = None,
                on_log: Callable[[int, np.ndarray], None] | None = None) -> np.ndarray:
    """Run ``settings.steps`` optimisation steps; the heads are updated in place.

    Returns:
        (steps, 3) float64: total loss, method loss, KoLeo-Proto value (NaN when not computed).
    """
    koleo_options = koleo_options or {}
    student.train()
    teacher.eval()
    for param in teacher.parameters():
        if not any(param is p for p in student.parameters()):
            param.requires_grad_(False)
    model: nn.Module = student
    if dist.active:
        device_ids = [student.prototypes().device.index] if student.prototypes().is_cuda else None
        model = nn.parallel.DistributedDataParallel(student, device_ids=device_ids)
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    curve = np.full((settings.steps, 3), np.nan)
    for step in range(settings.steps):
        x = views.batch(settings.batch_size)  # (B, V, d)
        b, v, d = x.shape
        flat = x.reshape(b * v, d)
        s_logits = model(flat).reshape(b, v, -1)
        with torch.no_grad():
            t_logits = teacher(flat).reshape(b, v, -1)
        method = objective(s_logits, t_logits)
        total = method
        koleo_value = None
        logging_step = step % settings.log_every == 0 or step == settings.steps - 1
        if settings.koleo_weight > 0:
            koleo_value = koleo_proto_loss(student.prototype_layer(), **koleo_options)
            total = method + settings.koleo_weight * koleo_value
        elif logging_step:
            with torch.no_grad():
                koleo_value = koleo_proto_loss(student.prototype_layer(), **koleo_options)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        _ema(teacher, student, teacher_momentum_at(step, settings.steps, settings.teacher_momentum))
        curve[step] = (total.item(), method.item(), np.nan if koleo_value is None else koleo_value.item())
        if logging_step:
            log.info("step %d/%d loss %.4f method %.4f koleo %.4f", step + 1, settings.steps, *curve[step])
            if on_log is not None:
                on_log(step, curve[: step + 1])
    student.eval()
    return curve
