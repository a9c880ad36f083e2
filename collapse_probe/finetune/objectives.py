"""The methods' own objectives on head outputs: DINO (centering, sharpening, cross-entropy over
pairs of different views) and MSN (sharpened targets, mean-entropy maximisation).

Both take logits shaped ``(B, V, K)``: B samples, V views, K prototypes. Under
``torch.distributed`` the batch statistics (DINO's center, MSN's mean prediction) are averaged
over all processes, as the original implementations do.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.nn import functional as F

__all__ = ["DinoObjective", "MsnObjective", "cross_view_entropy"]


def _all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        tensor /= dist.get_world_size()
    return tensor


def cross_view_entropy(targets: torch.Tensor, log_probs: torch.Tensor) -> torch.Tensor:
    """Mean over samples and over pairs of different views (i target, j prediction) of
    ``-sum_k targets[:, i, k] * log_probs[:, j, k]``.

    Args:
        targets: (B, G, K) probabilities (no gradient needed): the teacher's G views.
        log_probs: (B, V, K) log-probabilities, V >= G: the student's views, the G views the
            teacher saw first (DINO's multi-crop: global crops, then local ones).
    """
    num_targets, num_views = targets.shape[1], log_probs.shape[1]
    total = targets.new_zeros(())
    for i in range(num_targets):
        for j in range(num_views):
            if i != j:
                total = total + torch.sum(-targets[:, i] * log_probs[:, j], dim=-1).mean()
    return total / (num_targets * (num_views - 1))


class DinoObjective:
    """DINO's loss between student and teacher head logits.

    Args:
        center: (K,) initial teacher-output running mean (the checkpoint's ``dino_loss.center``)
            or None for zeros.
        num_prototypes: K.
        teacher_temp: sharpening temperature of the teacher (DINO: 0.04-0.07).
        student_temp: student temperature (0.1).
        center_momentum: EMA momentum of the center (0.9).
    """

    name = "dino"

    def __init__(self, center: torch.Tensor | None, *, num_prototypes: int, teacher_temp: float = 0.04,
                 student_temp: float = 0.1, center_momentum: float = 0.9, device: Any = "cpu") -> None:
        self.center = (torch.zeros(num_prototypes) if center is None
                       else center.detach().reshape(-1).float().clone()).to(device)
        self.teacher_temp = teacher_temp
        self.student_temp = student_temp
        self.center_momentum = center_momentum

    def __call__(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """Loss from (B, V, K) student and teacher logits; updates the center afterwards."""
        teacher = teacher.detach()
        targets = F.softmax((teacher - self.center) / self.teacher_temp, dim=-1)
        loss = cross_view_entropy(targets, F.log_softmax(student / self.student_temp, dim=-1))
        self._update_center(teacher)
        return loss

    @torch.no_grad()
    def _update_center(self, teacher: torch.Tensor) -> None:
        batch_center = _all_reduce_mean(teacher.reshape(-1, teacher.shape[-1]).mean(dim=0))
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)


class MsnObjective:
    """MSN's prototype loss: sharpened target-view predictions supervise anchor-view predictions,
    plus the mean-entropy maximisation regulariser ``log K - H(mean anchor prediction)``.

    The head logits are already ``cos / temperature`` (see :class:`~collapse_probe.heads.PrototypeHead`).

    Args:
        sharpen: target sharpening temperature T (MSN: 0.25): ``p ** (1/T)`` renormalised.
        memax_weight: weight of the mean-entropy regulariser (MSN: 1).
    """

    name = "msn"

    def __init__(self, *, sharpen: float = 0.25, memax_weight: float = 1.0) -> None:
        self.sharpen = sharpen
        self.memax_weight = memax_weight

    def __call__(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            # p ** (1/T) / sum == softmax(log p / T): stable for tiny probabilities
            targets = F.softmax(F.log_softmax(teacher.detach(), dim=-1) / self.sharpen, dim=-1)
        log_probs = F.log_softmax(student, dim=-1)
        loss = cross_view_entropy(targets, log_probs)
        if self.memax_weight > 0:
            mean_probs = _all_reduce_mean_grad(log_probs.exp().reshape(-1, student.shape[-1]).mean(dim=0))
            entropy = -torch.sum(mean_probs * torch.log(mean_probs.clamp_min(1e-12)))
            loss = loss + self.memax_weight * (math.log(student.shape[-1]) - entropy)
        return loss


def _all_reduce_mean_grad(tensor: torch.Tensor) -> torch.Tensor:
    # The mean prediction over all processes, keeping this process's gradient (MSN's AllReduce).
    reduced = _all_reduce_mean(tensor.detach())
    return tensor + (reduced - tensor.detach())
