"""DINO on the digits: student / EMA teacher, centering, sharpening, multi-crop cross-entropy,
and an optional KoLeo-Proto term on the student's prototypes."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..validation import fail
from .augment import MultiCrop

__all__ = ["TrainConfig", "TrainResult", "save_dino_checkpoint", "train_dino"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a run; saved as the checkpoint's ``args``.

    The structure is DINO's (student temperature 0.1, a sharper teacher, centering with
    ``center_momentum``, ``lr`` the AdamW peak after a linear warm-up of ``warmup_epochs`` then
    cosine decay to ``min_lr``, weight decay on a cosine from ``weight_decay`` to
    ``weight_decay_end`` (DINO's 0.04 -> 0.4, on every matrix, prototypes included),
    ``teacher_momentum`` on a cosine to ``teacher_momentum_end`` (DINO: 1), last layer frozen
    for ``freeze_last_layer_epochs``). The decay schedule and the length make the copies exact
    at eps 0.025: seed 0 with a constant 0.04 for 60 epochs kept 1023 of 1024 teacher
    prototypes apart, 0.04 -> 0.4 for 60 epochs 1016, for 120 epochs 192 (benchmarks/README.md).
    Two defaults differ from DINO's ImageNet recipe, to fit a run of a few thousand steps:
    ``teacher_temp`` 0.01 (with 0.04 the loss stayed near ln K in short runs on the digits: the
    teacher was too flat to learn from) and ``prototype_lr_scale`` 100 (the prototypes' learning
    rate is ``lr`` times this: at 1x they stay within cosine ~0.97 of their initialisation in a
    short run and nothing merges). ``koleo_weight`` is KoLeo-Proto's lambda (0 = plain DINO).
    """

    num_prototypes: int = 1024
    bottleneck_dim: int = 64
    feature_dim: int = 128
    hidden_dim: int = 256
    epochs: int = 120
    batch_size: int = 64
    lr: float = 2e-4
    min_lr: float = 1e-5
    warmup_epochs: int = 3
    weight_decay: float = 0.04
    weight_decay_end: float = 0.4
    clip_grad: float = 3.0
    student_temp: float = 0.1
    teacher_temp: float = 0.01
    warmup_teacher_temp: float = 0.01
    warmup_teacher_temp_epochs: int = 0
    center_momentum: float = 0.9
    teacher_momentum: float = 0.99
    teacher_momentum_end: float = 1.0
    freeze_last_layer_epochs: int = 1
    num_local_crops: int = 2
    prototype_lr_scale: float = 100.0
    koleo_weight: float = 0.0
    seed: int = 0

    def validate(self) -> None:
        if self.num_prototypes < 2:
            raise fail("num_prototypes", expected="at least 2", got=repr(self.num_prototypes))
        if self.epochs < 1 or self.batch_size < 2:
            raise fail("epochs / batch_size", expected="epochs >= 1 and batch_size >= 2",
                       got=f"{self.epochs} / {self.batch_size}")
        if self.koleo_weight < 0:
            raise fail("koleo_weight", expected="lambda >= 0", got=repr(self.koleo_weight))
        if min(self.weight_decay, self.weight_decay_end) < 0:
            raise fail("weight_decay / weight_decay_end", expected="values >= 0",
                       got=f"{self.weight_decay} / {self.weight_decay_end}")
        if not (0 <= self.teacher_momentum <= 1 and 0 <= self.teacher_momentum_end <= 1):
            raise fail("teacher_momentum / teacher_momentum_end", expected="values in [0, 1]",
                       got=f"{self.teacher_momentum} / {self.teacher_momentum_end}")


@dataclass(frozen=True, eq=False)
class TrainResult:
    """A finished run.

    Attributes:
        config: the settings.
        student: the student's state dict (tensors, ``backbone.*`` + ``head.*``).
        teacher: the teacher's state dict.
        center: (1, K) float32 tensor, the final teacher-output centre.
        epoch_loss: (epochs,) mean DINO cross-entropy per epoch (nats; ln K = no learning).
        epoch_koleo: (epochs,) mean KoLeo-Proto value per epoch (computed even when lambda = 0).
        seconds: wall time of the training loop.
    """

    config: TrainConfig
    student: dict
    teacher: dict
    center: object
    epoch_loss: np.ndarray
    epoch_koleo: np.ndarray
    seconds: float

    def teacher_net(self):
        """The teacher as an eval-mode :class:`~collapse_probe.demo.model.DinoNet`."""
        from .model import build_net

        c = self.config
        net = build_net(c.num_prototypes, feature_dim=c.feature_dim, hidden_dim=c.hidden_dim,
                        bottleneck_dim=c.bottleneck_dim)
        net.load_state_dict(self.teacher)
        return net.eval()


def _cosine(start: float, end: float, step: int, total: int) -> float:
    return end + 0.5 * (start - end) * (1 + math.cos(math.pi * step / max(1, total)))


def _dino_loss(student_views, teacher_out, center, *, num_global: int, student_temp: float,
               teacher_temp: float):
    """Cross-entropy of every student view against every *other* teacher (global) view.

    ``student_views``: list of (B, K) logits, global views first; ``teacher_out``: (G*B, K).
    """
    import torch

    from ..repair.objectives import cross_view_entropy

    targets = ((teacher_out - center) / teacher_temp).softmax(dim=-1).chunk(num_global)
    log_probs = [(s / student_temp).log_softmax(dim=-1) for s in student_views]
    return cross_view_entropy(torch.stack(targets, dim=1), torch.stack(log_probs, dim=1))


def train_dino(images: np.ndarray, *, config: TrainConfig = TrainConfig(),
               augment: MultiCrop | None = None) -> TrainResult:
    """Train DINO (optionally with KoLeo-Proto) on ``images``.

    Args:
        images: (N, H, W) float32 grayscale in [0, 1]; labels are never used.
        config: the run's settings (``config.seed`` fixes init, batches and crops).
        augment: the multi-crop (default: 2 global + ``config.num_local_crops`` local crops).

    Returns:
        A :class:`TrainResult` with both networks, the centre and per-epoch losses.
    """
    import torch

    from ..koleo import KoLeoProtoLoss
    from .model import build_net

    config.validate()
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3 or images.shape[0] < config.batch_size:
        raise fail("images", expected=f"(N, H, W) with N >= batch_size {config.batch_size}",
                   got=f"shape {images.shape}")
    augment = augment or MultiCrop(num_local=config.num_local_crops)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    student = build_net(config.num_prototypes, feature_dim=config.feature_dim,
                        hidden_dim=config.hidden_dim, bottleneck_dim=config.bottleneck_dim)
    teacher = build_net(config.num_prototypes, feature_dim=config.feature_dim,
                        hidden_dim=config.hidden_dim, bottleneck_dim=config.bottleneck_dim)
    teacher.load_state_dict(student.state_dict())
    for p in teacher.parameters():
        p.requires_grad = False
    # DINO: no weight decay on biases and 1-D (norm) parameters
    prototypes = [p for p in student.head.last_layer.parameters() if p.requires_grad]
    params = [p for p in student.parameters()
              if p.requires_grad and not any(p is q for q in prototypes)]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "scale": 1.0, "decay": True},
         {"params": no_decay, "weight_decay": 0.0, "scale": 1.0, "decay": False},
         {"params": prototypes, "scale": config.prototype_lr_scale, "decay": True}],
        lr=config.lr, weight_decay=config.weight_decay)
    koleo = KoLeoProtoLoss()
    center = torch.zeros(1, config.num_prototypes)
    data = torch.from_numpy(images)
    steps_per_epoch = data.shape[0] // config.batch_size
    total = steps_per_epoch * config.epochs
    warmup = steps_per_epoch * config.warmup_epochs
    epoch_loss = np.zeros(config.epochs)
    epoch_koleo = np.zeros(config.epochs)
    started = time.perf_counter()
    step = 0
    for epoch in range(config.epochs):
        order = torch.randperm(data.shape[0], generator=gen)
        if epoch < config.warmup_teacher_temp_epochs:
            teacher_temp = config.warmup_teacher_temp + (config.teacher_temp - config.warmup_teacher_temp) \
                * epoch / config.warmup_teacher_temp_epochs
        else:
            teacher_temp = config.teacher_temp
        for b in range(steps_per_epoch):
            lr = config.lr * (step + 1) / warmup if step < warmup else \
                _cosine(config.lr, config.min_lr, step - warmup, total - warmup)
            wd = _cosine(config.weight_decay, config.weight_decay_end, step, total)
            for group in optimizer.param_groups:
                group["lr"] = lr * group["scale"]
                if group["decay"]:
                    group["weight_decay"] = wd
            batch = data[order[b * config.batch_size:(b + 1) * config.batch_size]]
            views = augment(batch, generator=gen)
            num_global = augment.num_global
            with torch.no_grad():
                teacher_out = teacher(torch.cat(views[:num_global]))
            student_out = student(torch.cat(views)).chunk(len(views))
            loss = _dino_loss(student_out, teacher_out, center, num_global=num_global,
                              student_temp=config.student_temp, teacher_temp=teacher_temp)
            spread = koleo(student.head.last_layer)
            total_loss = loss + config.koleo_weight * spread if config.koleo_weight > 0 else loss
            if not torch.isfinite(total_loss):
                raise fail("training loss", expected="a finite value", got=repr(float(total_loss)),
                           hint="Lower the learning rate.")
            optimizer.zero_grad(set_to_none=True)
            total_loss.backward()
            if epoch < config.freeze_last_layer_epochs:  # DINO keeps the prototypes fixed at first
                for p in student.head.last_layer.parameters():
                    p.grad = None
            torch.nn.utils.clip_grad_norm_(student.parameters(), config.clip_grad)
            optimizer.step()
            with torch.no_grad():
                m = _cosine(config.teacher_momentum, config.teacher_momentum_end, step, total)
                for ps, pt in zip(student.parameters(), teacher.parameters()):
                    pt.mul_(m).add_(ps.detach(), alpha=1 - m)
                batch_center = teacher_out.mean(dim=0, keepdim=True)
                center = center * config.center_momentum + batch_center * (1 - config.center_momentum)
            epoch_loss[epoch] += float(loss.detach()) / steps_per_epoch
            epoch_koleo[epoch] += float(spread.detach()) / steps_per_epoch
            log.debug("step %d loss %.4f lr %.2e", step, float(loss.detach()), lr)
            step += 1
        log.info("epoch %d/%d loss %.4f koleo %.4f lr %.2e", epoch + 1, config.epochs,
                 epoch_loss[epoch], epoch_koleo[epoch], lr)
    seconds = time.perf_counter() - started
    return TrainResult(config=config, student=_detached(student), teacher=_detached(teacher),
                       center=center.clone(), epoch_loss=epoch_loss, epoch_koleo=epoch_koleo,
                       seconds=seconds)


def _detached(net) -> dict:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def save_dino_checkpoint(result: TrainResult, path: Path | str) -> Path:
    """Write ``result`` in facebookresearch/dino's checkpoint layout, atomically.

    Layout: ``student`` (keys prefixed ``module.``, as DDP saves them), ``teacher`` (no prefix),
    ``dino_loss`` with ``center`` [1, K], ``epoch``, ``args`` (an ``argparse.Namespace`` of plain
    values). No optimizer state, so the file stays small; it loads with ``weights_only=True``
    once ``argparse.Namespace`` is allowed, like a real DINO checkpoint.
    """
    import argparse

    path = Path(path)
    args = argparse.Namespace(arch="digits_convnet", dataset="sklearn_digits",
                              norm_last_layer=True, out_dim=result.config.num_prototypes,
                              **{k: v for k, v in asdict(result.config).items()
                                 if k != "num_prototypes"})
    checkpoint = {
        "student": {f"module.{k}": v for k, v in result.student.items()},
        "teacher": dict(result.teacher),
        "epoch": result.config.epochs,
        "args": args,
        "dino_loss": {"center": result.center},
    }
    from ..output import save_torch

    # The umask's mode (a shipped example must be readable by all), written whole.
    save_torch(checkpoint, path)
    return path
