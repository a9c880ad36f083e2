"""The methods' own objectives on head outputs: DINO (centering, sharpening, cross-entropy over
pairs of different views), MSN (sharpened targets, mean-entropy maximisation) and SwAV (swapped
prediction of Sinkhorn-Knopp codes).

Both take logits shaped ``(B, V, K)``: B samples, V views, K prototypes. Under
``torch.distributed`` the batch statistics (DINO's center, MSN's mean prediction) are averaged
over all processes, as the original implementations do.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.nn import functional as F

__all__ = ["DinoObjective", "MsnObjective", "SwavObjective", "cross_view_entropy", "sinkhorn_codes"]


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

    One batched product ``targets @ log_probs^T`` gives every (i, j) pair at once, (B, G, V),
    so nothing of size K is allocated per pair of views (at K = 65536 and batch 256 each pair
    would be a 64 MiB temporary, forward and backward).

    Args:
        targets: (B, G, K) probabilities (no gradient needed): the teacher's G views.
        log_probs: (B, V, K) log-probabilities, V >= G: the student's views, the G views the
            teacher saw first (DINO's multi-crop: global crops, then local ones).
    """
    batch, num_targets, _ = targets.shape
    num_views = log_probs.shape[1]
    pairs = torch.bmm(targets, log_probs.transpose(1, 2))  # (B, G, V): sum_k t_i,k log p_j,k
    off_diagonal = ~torch.eye(num_targets, num_views, dtype=torch.bool, device=pairs.device)
    return -pairs[:, off_diagonal].sum() / (batch * num_targets * (num_views - 1))


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
        with torch.no_grad():
            # one temporary for the centred, sharpened logits, softmax'd in place
            targets = torch.sub(teacher, self.center).div_(self.teacher_temp).softmax(dim=-1)
        loss = cross_view_entropy(targets, F.log_softmax(student / self.student_temp, dim=-1))
        del targets
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


@torch.no_grad()
def sinkhorn_codes(scores: torch.Tensor, *, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """SwAV's Sinkhorn-Knopp codes: soft assignments of B samples to K prototypes whose
    prototype marginals are equalised.

    ``Q = exp(scores / epsilon)^T`` (K x B) is scaled to sum to 1, then ``iterations`` times each
    prototype's row is scaled to 1/K and each sample's column to 1/B; columns are finally scaled
    to sum to 1. Under ``torch.distributed`` the sums over samples run over all processes, as in
    facebookresearch/swav's ``distributed_sinkhorn``.

    Args:
        scores: (B, K) prototype scores (cosines) of one view.

    Returns:
        (B, K) codes, each row a distribution over the prototypes.
    """
    import torch.distributed as dist

    distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    world = dist.get_world_size() if distributed else 1
    scaled = scores.detach().float() / epsilon
    # exp(s - max) instead of exp(s): the same codes after the first normalisation, no overflow
    top = scaled.max()
    if distributed:
        dist.all_reduce(top, op=dist.ReduceOp.MAX)
    q = (scaled - top).exp_().t()  # (K, B)
    num_prototypes, num_samples = q.shape[0], q.shape[1] * world
    total = q.sum()
    if distributed:
        dist.all_reduce(total)
    q /= total
    for _ in range(iterations):
        rows = q.sum(dim=1, keepdim=True)  # (K, 1): weight per prototype
        if distributed:
            dist.all_reduce(rows)
        q /= rows
        q /= num_prototypes
        q /= q.sum(dim=0, keepdim=True)  # weight per sample
        q /= num_samples
    q *= num_samples  # columns sum to 1: an assignment per sample
    return q.t()


class SwavObjective:
    """SwAV's swapped prediction: the Sinkhorn-Knopp codes of each assignment view are predicted
    from every other view's prototype scores.

    ``loss = mean_i [ sum_{v != i} -mean_b sum_k q_i[b, k] log softmax(s_v[b] / temperature)_k
    / (V - 1) ]`` over the assignment views i (SwAV's ``crops_for_assign``: the first
    ``assign_views`` views), with ``q_i = sinkhorn(s_i)`` (no gradient). With several prototype
    heads (``nmb_prototypes`` a list) the loss is averaged over the heads, each with its own codes.

    Args:
        temperature: of the predictions (SwAV: 0.1).
        epsilon: entropic regularisation of the codes (SwAV: 0.05).
        iterations: Sinkhorn-Knopp iterations (SwAV: 3).
        assign_views: views whose codes are targets (SwAV: crops 0 and 1, the two global crops).
        sizes: prototype count of each head, in the order the scores are concatenated; one head
            of all K when None.
    """

    name = "swav"

    def __init__(self, *, temperature: float = 0.1, epsilon: float = 0.05, iterations: int = 3,
                 assign_views: int = 2, sizes: list[int] | None = None) -> None:
        self.temperature = temperature
        self.epsilon = epsilon
        self.iterations = iterations
        self.assign_views = assign_views
        self.sizes = sizes

    def __call__(self, student: torch.Tensor, teacher: torch.Tensor | None = None) -> torch.Tensor:
        """Loss from (B, V, K) prototype scores (``teacher`` is ignored: SwAV has one network,
        its codes come from its own detached scores)."""
        sizes = self.sizes or [student.shape[-1]]
        total = student.new_zeros(())
        for scores in torch.split(student, sizes, dim=-1):
            total = total + self._one_head(scores)
        return total / len(sizes)

    def _one_head(self, scores: torch.Tensor) -> torch.Tensor:
        batch, num_views, _ = scores.shape
        assign = min(self.assign_views, num_views)
        codes = torch.stack([sinkhorn_codes(scores[:, i], epsilon=self.epsilon, iterations=self.iterations)
                             for i in range(assign)], dim=1)  # (B, A, K)
        log_probs = F.log_softmax(scores / self.temperature, dim=-1)  # (B, V, K)
        pairs = torch.bmm(codes, log_probs.transpose(1, 2))  # (B, A, V)
        off_diagonal = ~torch.eye(assign, num_views, dtype=torch.bool, device=scores.device)
        return -pairs[:, off_diagonal].sum() / (batch * assign * (num_views - 1))
