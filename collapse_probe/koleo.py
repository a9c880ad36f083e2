"""KoLeo-Proto: a Kozachenko-Leonenko entropy regulariser on the prototypes of a head.

The Kozachenko-Leonenko differential-entropy estimator was turned into a loss by Sablayrolles et
al., "Spreading vectors for similarity search" (ICLR 2019). Govindarajan et al., "On Partial
Prototype Collapse in the DINO Family of Self-Supervised Methods" (BMVC 2024, arXiv 2410.14060)
apply it to the K prototypes of a DINO-family head instead of a batch of embeddings:

    L_KP = -(1/K) * sum_k log( min_{j != k} ||w_k - w_j|| + delta ),   w_k L2-normalised rows.

Minimising it pushes every prototype away from its nearest neighbour, so duplicated prototypes
separate. Add ``koleo_weight * KoLeoProtoLoss()(head.last_layer)`` to the method's loss.

Design:

* Exact nearest neighbours without a K x K matrix: the neighbour of each row is found under
  ``no_grad`` one block of rows at a time (``block_size`` x K scores in memory). Rows whose
  best and second-best candidates are too close for float32 to tell apart (every member of a
  group of near-copies) are decided again in float64: pair by pair when they have few
  candidates, and, for the members of a large tight group, by one float64 product on
  coordinates re-centred on the group, so the cost grows with (group size) x (rows near the
  group) x D at BLAS speed, not with one float64 difference per pair and coordinate. Exact
  copies are found first (distance 0). See :func:`nearest_neighbors`. The distances of the
  (k, nn(k)) pairs are then recomputed with autograd from the difference ``w_k - w_nn(k)``:
  the gradient of the min is the gradient through the arg-min pair, exact almost everywhere.
* Precision: always float32 (float64 stays float64), autocast disabled inside, whatever the
  dtype of the weights (fp16/bf16 are upcast).
* Exact duplicates: ``||w_k - w_j||`` has an infinite/NaN gradient at 0. A zero distance is
  handled explicitly (value 0, gradient 0) and ``delta`` keeps the log finite; on top of that,
  an anchor whose neighbour is an exact copy is shifted by ``jitter`` in a random direction
  (a constant, no gradient) so the two copies receive opposite, finite gradients and separate.
  The jitter is applied only to anchors at distance exactly 0, so it never changes the value
  for distinct prototypes. ``jitter=0`` turns it off (exact copies then get zero gradient).
* Sampled mode (``num_anchors=M``): M anchors drawn uniformly without replacement each call,
  neighbours searched among all K prototypes; the mean over the anchors is an unbiased
  estimate of the mean over all K, at M/K of the cost.
* Distributed training: prototypes are replicated on every rank (DDP keeps parameters equal),
  so every rank computes the same loss from its own copy: no gather is needed, and DDP's
  gradient averaging leaves the gradient unchanged. In sampled mode each rank draws its own
  anchors (seed ranks differently, or share ``generator`` seeds, as you prefer): the averaged
  gradient is then an estimate over more anchors.

This module imports torch; ``import collapse_probe`` does not import this module until
``collapse_probe.KoLeoProtoLoss`` is first used.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from .validation import describe, fail

__all__ = ["KoLeoProtoLoss", "prototype_weight", "nearest_neighbors", "koleo_proto_loss"]

log = logging.getLogger(__name__)

#: Scores held in memory per block when ``block_size`` is not given (64 MiB of float32).
_BLOCK_BUDGET = 1 << 24


def prototype_weight(weight_or_layer: Any) -> torch.Tensor:
    """The effective (K, D) weight of a prototype layer, differentiable w.r.t. its parameters.

    Accepts an ``nn.Linear`` wrapped by the old ``torch.nn.utils.weight_norm`` (``weight_g``,
    ``weight_v``: the weight is recomputed here, since the module's cached ``weight`` is only
    refreshed by its forward hook), one wrapped by ``torch.nn.utils.parametrizations.weight_norm``,
    a plain ``nn.Linear``, or a raw (K, D) tensor / ``nn.Parameter``.
    """
    if isinstance(weight_or_layer, torch.Tensor):
        weight = weight_or_layer
    elif isinstance(weight_or_layer, torch.nn.Module):
        module = weight_or_layer
        g = getattr(module, "weight_g", None)
        v = getattr(module, "weight_v", None)
        if isinstance(g, torch.Tensor) and isinstance(v, torch.Tensor):
            # w_k = g_k * v_k / ||v_k|| (weight_norm's default dim=0: one gain per row)
            weight = g.reshape(-1, 1) * v / v.norm(dim=1, keepdim=True)
        elif isinstance(getattr(module, "weight", None), torch.Tensor):
            # plain Linear, or a parametrized one (reading .weight recomputes it)
            weight = module.weight
        else:
            raise fail("prototype layer", expected="an nn.Linear (plain or weight-norm) or a (K, D) tensor",
                       got=type(module).__name__)
    else:
        raise fail("prototypes", expected="an nn.Linear (plain or weight-norm) or a (K, D) tensor",
                   got=describe(weight_or_layer))
    if weight.ndim != 2 or weight.shape[0] < 2 or weight.shape[1] < 1:
        raise fail("prototypes", expected="a (K, D) matrix with K >= 2", got=describe(weight))
    return weight


def _auto_block_size(num_prototypes: int) -> int:
    return max(1, min(num_prototypes, _BLOCK_BUDGET // max(num_prototypes, 1)))


#: Near-tie rows with more candidates than this are decided together with the other members of
#: their tight group by one float64 product on re-centred coordinates; fewer, pair by pair.
_DIRECT_MAX = 16

#: Leaders whose distances to every candidate are computed in one product.
_LEADER_BATCH = 64


def nearest_neighbors(unit: torch.Tensor, *, anchors: torch.Tensor | None = None,
                      block_size: int | None = None) -> torch.Tensor:
    """Exact nearest neighbour (other than itself) of each anchor row, in blocks.

    Three stages, each exact where the previous one cannot decide:

    1. Exact copies (bitwise-equal rows) are grouped first: an anchor with a copy has its nearest
       neighbour at distance 0 (the smallest-index other copy), and only one row of each set of
       copies is searched as a candidate.
    2. A float32 product per block of anchors (``|a|^2 + |b|^2 - 2 a.b``) finds each anchor's
       best candidate; anchors whose runner-up is within the rigorous float32 rounding bound of
       the best (a near-tie, as inside every group of near-copies) keep every candidate inside
       that bound.
    3. Near-ties with few candidates are decided by the float64 norm of each difference. Members
       of a large tight group (thousands of near-copies) are decided together: a float64 BLAS
       product on coordinates re-centred on one member of the group (accurate where the
       uncentred expansion cancels), with a rounding bound; the rare rows still tied within that
       bound are decided by float64 differences. The cost is a product of (group members) x
       (rows near the group) instead of one float64 difference per pair and coordinate.

    Args:
        unit: (K, D) float32/float64 rows (normally L2-normalised). Not differentiated.
        anchors: (M,) int64 indices of the rows to search for; all K rows when None.
        block_size: anchors scored at once (``block_size`` x K scores in memory). Default: as many
            as fit in 64 MiB of float32 scores.

    Returns:
        (M,) int64 index of each anchor's nearest neighbour under Euclidean distance; ties go to
        the smallest index.
    """
    num, dim = unit.shape
    device = unit.device
    if anchors is None:
        anchors = torch.arange(num, device=device)
    step = int(block_size) if block_size else _auto_block_size(num)
    if step < 1:
        raise fail("block_size", expected="a positive integer", got=repr(block_size))
    # float32 rounding of one score: a few units of D * 2^-24 (rigorous bound for unit rows).
    tol = 4.0 * dim * 2.0 ** -24 if unit.dtype != torch.float64 else 0.0
    out = torch.empty(anchors.shape[0], dtype=torch.int64, device=device)
    with torch.no_grad():
        copy_of = _exact_copies(unit)  # (K,): smallest other identical row, or -1
        has_copy = copy_of[anchors] >= 0
        out[has_copy] = copy_of[anchors[has_copy]]
        todo = (~has_copy).nonzero().reshape(-1)  # positions in ``anchors``
        if todo.numel() == 0:
            return out
        # Candidates: one row per set of copies (the smallest index, so ties keep it).
        is_rep = torch.ones(num, dtype=torch.bool, device=device)
        is_rep[copy_of >= 0] = copy_of[copy_of >= 0] > torch.arange(num, device=device)[copy_of >= 0]
        cols = is_rep.nonzero().reshape(-1)  # (C,) sorted
        col_of = torch.full((num,), -1, dtype=torch.int64, device=device)
        col_of[cols] = torch.arange(cols.shape[0], device=device)
        cand = unit[cols]  # (C, D)
        sq = (unit * unit).sum(dim=1)  # (K,)
        neg_sq = -sq[cols]
        big_pos: list[torch.Tensor] = []
        big_rad2: list[torch.Tensor] = []
        for start in range(0, todo.shape[0], step):
            pos = todo[start:start + step]
            rows = anchors[pos]  # (B,)
            b = rows.shape[0]
            # ||a - b||^2 = |a|^2 + |b|^2 - 2 a.b: maximise 2 a.b - |b|^2 (|a|^2 is constant per row)
            score = torch.addmm(neg_sq.expand(b, cols.shape[0]), unit[rows], cand.T, alpha=2.0)  # (B, C)
            score[torch.arange(b, device=device), col_of[rows]] = -math.inf
            if tol == 0.0 or cols.shape[0] < 3:
                out[pos] = cols[score.argmax(dim=1)]
                continue
            # the best few candidates of every row in one pass: enough to decide most near-ties
            width = min(_DIRECT_MAX + 1, cols.shape[0])
            top, index = score.topk(width, dim=1)  # (B, width), best first
            out[pos] = cols[index[:, 0]]
            close = top[:, 1] >= top[:, 0] - tol
            if not bool(close.any()):
                continue
            tied = close.nonzero().reshape(-1)  # (T,) rows of the block with a near-tie
            floor = top[tied, 0] - tol  # (T,) the lowest score that may still be the nearest
            big = (top[tied, -1] >= floor) if width > _DIRECT_MAX else torch.zeros_like(floor, dtype=torch.bool)
            if bool(big.any()):
                # more candidates than were kept: decided below, together with their group.
                # Every candidate lies within this radius (plus the rounding of the score itself).
                big_pos.append(pos[tied[big]])
                big_rad2.append((sq[rows[tied[big]]] - top[tied[big], 0]).clamp_min(0) + 2 * tol)
            small = (~big).nonzero().reshape(-1)
            if small.numel():
                keep = tied[small]
                valid = top[keep] >= floor[small, None]  # (S, width)
                out[pos[keep]] = _refine_few(unit, rows[keep], cols[index[keep]], valid)
        if big_pos:
            positions = torch.cat(big_pos)
            out[positions] = _decide_groups(unit, anchors[positions], torch.cat(big_rad2), cols, tol)
    return out


def _exact_copies(unit: torch.Tensor) -> torch.Tensor:
    """(K,) int64: for each row, the smallest index of another bitwise-equal row, or -1."""
    num = unit.shape[0]
    index = torch.arange(num, device=unit.device)
    _, inverse = torch.unique(unit, dim=0, return_inverse=True)  # (K,) class of each row
    classes = int(inverse.max()) + 1
    first = torch.full((classes,), num, dtype=torch.int64, device=unit.device)
    first.scatter_reduce_(0, inverse, index, reduce="amin")
    rest = index != first[inverse]
    second = torch.full((classes,), num, dtype=torch.int64, device=unit.device)
    second.scatter_reduce_(0, inverse[rest], index[rest], reduce="amin")
    other = torch.where(rest, first[inverse], second[inverse])
    return torch.where(other < num, other, torch.full_like(other, -1))


def _refine_few(unit: torch.Tensor, rows: torch.Tensor, candidates: torch.Tensor,
                valid: torch.Tensor) -> torch.Tensor:
    """Decide near-ties with few candidates by the float64 norm of each difference.

    Args:
        unit: (K, D) rows.
        rows: (R,) int64 anchor rows.
        candidates: (R, W) int64 candidate rows of each anchor (any order).
        valid: (R, W) bool, which of them are candidates.

    Returns:
        (R,) int64 nearest candidate; ties go to the smallest index.
    """
    num_rows, width = candidates.shape
    d2 = torch.empty(num_rows, width, dtype=torch.float64, device=unit.device)
    chunk = max(1, _BLOCK_BUDGET // (2 * width * max(unit.shape[1], 1)))
    for start in range(0, num_rows, chunk):
        r = rows[start:start + chunk]
        diff = unit[r].double()[:, None, :] - unit[candidates[start:start + chunk]].double()  # (p, W, D)
        d2[start:start + chunk] = (diff * diff).sum(dim=2)
    d2.masked_fill_(~valid | (candidates == rows[:, None]), math.inf)
    best = d2.min(dim=1, keepdim=True).values
    return torch.where(d2 == best, candidates, unit.shape[0]).min(dim=1).values


def _decide_groups(unit: torch.Tensor, rows: torch.Tensor, rad2: torch.Tensor, cols: torch.Tensor,
                   tol: float) -> torch.Tensor:
    """Exact neighbours of rows in large tight groups: one float64 product per group.

    Args:
        unit: (K, D) rows.
        rows: (R,) int64 rows to decide (none has an exact copy).
        rad2: (R,) float: every candidate of a row lies within ``sqrt(rad2)`` of it.
        cols: (C,) int64 candidate rows, sorted.
        tol: rounding bound of one float32 squared distance.

    Returns:
        (R,) int64 nearest neighbours; ties go to the smallest index.
    """
    device = unit.device
    unit64 = unit.double()
    cand = unit[cols]  # (C, D)
    cand_sq = (cand * cand).sum(dim=1)  # (C,)
    out = torch.empty(rows.shape[0], dtype=torch.int64, device=device)
    left = torch.ones(rows.shape[0], dtype=torch.bool, device=device)
    position_of = torch.full((unit.shape[0],), -1, dtype=torch.int64, device=device)
    position_of[rows] = torch.arange(rows.shape[0], device=device)
    # Leaders are taken in a fixed pseudo-random order, a batch at a time, so one matrix product
    # gives the distances of many leaders (mostly from different groups) to every candidate.
    order = torch.randperm(rows.shape[0], generator=torch.Generator().manual_seed(0)).to(device)
    while bool(left.any()):
        batch = order[left[order]][:_LEADER_BATCH]  # (L,) positions in ``rows``
        lead = unit[rows[batch]]  # (L, D)
        # float32 squared distances from each leader to every candidate (error <= tol)
        lead_d2 = torch.addmm(cand_sq[None, :] + (lead * lead).sum(dim=1)[:, None], lead, cand.T,
                              alpha=-2.0).clamp_min_(0)  # (L, C)
        for slot, first in enumerate(batch.tolist()):
            if not bool(left[first]):
                continue  # a member of an earlier leader's group
            _decide_group(unit, unit64, rows, rad2, cols, tol, lead_d2[slot], first, left,
                          position_of, out)
    return out


def _decide_group(unit: torch.Tensor, unit64: torch.Tensor, rows: torch.Tensor, rad2: torch.Tensor,
                  cols: torch.Tensor, tol: float, d2: torch.Tensor, first: int, left: torch.Tensor,
                  position_of: torch.Tensor, out: torch.Tensor) -> None:
    """Decide the group of one leader (``rows[first]``) exactly; marks its members done in ``left``
    and writes their neighbours into ``out``. ``d2``: (C,) the leader's float32 squared distances
    to the candidates ``cols``."""
    device = unit.device
    dim = unit.shape[1]
    # float64 rounding of d^2 from re-centred coordinates: gamma_(D+2) * (|x| + |y|)^2, doubled
    # so two values compared both carry it.
    unit_round = 2.0 * (dim + 2) * 2.0 ** -53
    leader = rows[first]
    radius = math.sqrt(float(rad2[first]))
    # members: remaining rows within the leader's own candidate radius (the leader included)
    member_col = cols[d2 <= radius * radius + tol]
    member_pos = position_of[member_col]
    member_pos = member_pos[member_pos >= 0]
    member_pos = member_pos[left[member_pos]]
    if not bool((member_pos == first).any()):
        member_pos = torch.cat([member_pos.new_tensor([first]), member_pos])
    # every candidate of every member lies within ``reach`` of the leader (triangle
    # inequality; a member is within sqrt(radius^2 + 2 tol) given the rounding of d2)
    reach = math.sqrt(radius * radius + 2 * tol) + math.sqrt(float(rad2[member_pos].max()))
    group = cols[d2 <= reach * reach + 2 * tol]  # (G,) sorted
    members = rows[member_pos]
    centre64 = unit64[leader]
    xg = unit64[group] - centre64  # (G, D) re-centred
    ng = (xg * xg).sum(dim=1)  # (G,)
    farthest = float(ng.max().sqrt())
    chunk = max(1, _BLOCK_BUDGET // max(group.shape[0], 1))
    for start in range(0, members.shape[0], chunk):
        part = members[start:start + chunk]
        xm = unit64[part] - centre64  # (P, D)
        nm = (xm * xm).sum(dim=1)
        dist2 = torch.addmm(nm[:, None] + ng[None, :], xm, xg.T, alpha=-2.0)  # (P, G)
        self_at = torch.searchsorted(group, part)  # each member is in ``group`` (sorted)
        dist2[torch.arange(part.shape[0], device=device), self_at] = math.inf
        best, arg = dist2.min(dim=1)  # first minimum: smallest index among equal values
        runner = dist2.topk(2, dim=1, largest=False).values[:, 1]
        size = nm.sqrt() + farthest
        slack = unit_round * size * size  # (P,)
        tied = runner <= best + slack
        choice = group[arg]
        if bool(tied.any()):
            keep = tied.nonzero().reshape(-1)
            # rows still tied within the float64 bound: float64 differences, pair by pair
            choice[keep] = _refine(unit, part[keep], -dist2[keep], -(best[keep] + slack[keep]),
                                   columns=group)
        out[member_pos[start:start + chunk]] = choice
    left[member_pos] = False


def _refine(unit: torch.Tensor, rows: torch.Tensor, score: torch.Tensor, floor: torch.Tensor, *,
            columns: torch.Tensor | None = None) -> torch.Tensor:
    """Decide near-ties exactly: among each row's candidates (score >= ``floor``), the nearest by
    the float64 norm of the difference (no cancellation). Work is proportional to the number of
    candidate pairs, done in chunks of bounded memory; ties go to the smallest index.

    Args:
        unit: (K, D) rows.
        rows: (R,) int64 anchor rows.
        score: (R, C) scores, larger is nearer; column c is row ``columns[c]`` of ``unit``.
        floor: (R,) the lowest score still a candidate.
        columns: (C,) int64, sorted; ``arange(K)`` when None.
    """
    num_rows, dim = rows.shape[0], unit.shape[1]
    pair_row, pair_c = (score >= floor[:, None]).nonzero(as_tuple=True)  # (P,), (P,) row-major
    pair_col = pair_c if columns is None else columns[pair_c]
    d2 = torch.empty(pair_row.shape[0], dtype=torch.float64, device=unit.device)
    chunk = max(1, _BLOCK_BUDGET // (2 * max(dim, 1)))
    for start in range(0, pair_row.shape[0], chunk):
        r, c = pair_row[start:start + chunk], pair_col[start:start + chunk]
        diff = unit[rows[r]].double() - unit[c].double()  # (p, D)
        d2[start:start + chunk] = (diff * diff).sum(dim=1)
    d2.masked_fill_(rows[pair_row] == pair_col, math.inf)
    best = torch.full((num_rows,), math.inf, dtype=torch.float64, device=unit.device)
    best.scatter_reduce_(0, pair_row, d2, reduce="amin")
    winner = torch.full((num_rows,), unit.shape[0], dtype=torch.int64, device=unit.device)
    hit = d2 == best[pair_row]
    winner.scatter_reduce_(0, pair_row[hit], pair_col[hit], reduce="amin")
    return winner


def koleo_proto_loss(weight_or_layer: Any, *, delta: float = 1e-8, block_size: int | None = None,
                     num_anchors: int | None = None, jitter: float = 1e-6,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """L_KP of a prototype layer or matrix; see :class:`KoLeoProtoLoss` for the arguments.

    Returns:
        0-dim float32 tensor (float64 if the weights are float64), differentiable.
    """
    weight = prototype_weight(weight_or_layer)
    num = weight.shape[0]
    if not (delta >= 0 and math.isfinite(delta)):
        raise fail("delta", expected="a finite number >= 0", got=repr(delta))
    if not (jitter >= 0 and math.isfinite(jitter)):
        raise fail("jitter", expected="a finite number >= 0", got=repr(jitter))
    device_type = weight.device.type if weight.device.type in ("cuda", "cpu", "xpu", "mps") else "cpu"
    with torch.autocast(device_type=device_type, enabled=False):
        work = weight.double() if weight.dtype == torch.float64 else weight.float()
        unit = torch.nn.functional.normalize(work, dim=1, eps=1e-12)  # (K, D)
        if num_anchors is None:
            anchors = torch.arange(num, device=unit.device)
        else:
            if not (isinstance(num_anchors, int) and 1 <= num_anchors):
                raise fail("num_anchors", expected="a positive integer", got=repr(num_anchors))
            count = min(num_anchors, num)
            perm = torch.randperm(num, generator=generator, device="cpu")[:count]
            anchors = perm.to(unit.device)
        neighbours = nearest_neighbors(unit.detach(), anchors=anchors, block_size=block_size)
        a = unit[anchors]  # (M, D)
        b = unit[neighbours]  # (M, D)
        diff = a - b
        sq = (diff * diff).sum(dim=1)  # (M,)
        zero = sq == 0
        if jitter > 0 and bool(zero.any()):
            noise = torch.randn(int(zero.sum()), unit.shape[1], generator=generator,
                                dtype=unit.dtype, device="cpu").to(unit.device)
            noise = jitter * torch.nn.functional.normalize(noise, dim=1)
            shift = torch.zeros_like(diff)
            shift[zero] = noise
            diff = diff + shift  # constant shift: gradients still flow to a and b
            sq = (diff * diff).sum(dim=1)
            zero = sq == 0
            log.debug("koleo: %d anchors had an exact duplicate; jittered by %g", int(shift.any(1).sum()), jitter)
        # sqrt has an infinite derivative at 0: give exact zeros value 0 and gradient 0.
        safe = torch.where(zero, torch.ones_like(sq), sq)
        dist = torch.where(zero, torch.zeros_like(sq), safe.sqrt())
        return -torch.log(dist + delta).mean()


class KoLeoProtoLoss(torch.nn.Module):
    """KoLeo-Proto loss on the prototypes of a head.

    Args (keyword-only):
        delta: added to each nearest-neighbour distance inside the log (default 1e-8): caps
            the loss of an exact duplicate at ``-log(delta)`` = 18.4.
        block_size: anchors scored at once in the neighbour search (memory ``block_size`` x K
            scores); default: 64 MiB of scores (256 rows at K = 65536).
        num_anchors: when set, a random subset of this many anchors per call (an unbiased
            estimate of the mean); all prototypes remain candidate neighbours.
        jitter: distance by which an anchor whose neighbour is an exact copy is shifted
            (random direction, no gradient) so the copies get finite, opposite gradients and
            separate. 0 disables it.
        generator: optional CPU ``torch.Generator`` for the anchor sample and the jitter.

    ``forward(weight_or_layer)`` takes a weight-norm (old or parametrized) or plain
    ``nn.Linear`` last layer, or a raw (K, D) tensor/Parameter, and returns a 0-dim float32
    tensor (float64 for float64 weights). Under autocast it still computes in float32.
    """

    def __init__(self, *, delta: float = 1e-8, block_size: int | None = None,
                 num_anchors: int | None = None, jitter: float = 1e-6,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.delta = float(delta)
        self.block_size = block_size
        self.num_anchors = num_anchors
        self.jitter = float(jitter)
        self.generator = generator

    def forward(self, weight_or_layer: Any) -> torch.Tensor:
        return koleo_proto_loss(weight_or_layer, delta=self.delta, block_size=self.block_size,
                                num_anchors=self.num_anchors, jitter=self.jitter,
                                generator=self.generator)

    def extra_repr(self) -> str:
        return (f"delta={self.delta:g}, block_size={self.block_size}, "
                f"num_anchors={self.num_anchors}, jitter={self.jitter:g}")
