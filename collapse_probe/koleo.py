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
  best and second-best candidates are too close for float32 to tell apart are decided again in
  float64, so the neighbour is the exact one. The distances of the (k, nn(k)) pairs are then
  recomputed with autograd from the difference ``w_k - w_nn(k)``: the gradient of the min is the
  gradient through the arg-min pair, which is exact almost everywhere.
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
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from .validation import describe, fail

if TYPE_CHECKING:
    import torch

__all__ = ["KoLeoProtoLoss", "prototype_weight", "nearest_neighbors", "koleo_proto_loss"]

log = logging.getLogger(__name__)

#: Scores held in memory per block when ``block_size`` is not given (64 MiB of float32).
_BLOCK_BUDGET = 1 << 24


def _torch() -> Any:
    import torch

    return torch


def prototype_weight(weight_or_layer: Any) -> torch.Tensor:
    """The effective (K, D) weight of a prototype layer, differentiable w.r.t. its parameters.

    Accepts an ``nn.Linear`` wrapped by the old ``torch.nn.utils.weight_norm`` (``weight_g``,
    ``weight_v``: the weight is recomputed here, since the module's cached ``weight`` is only
    refreshed by its forward hook), one wrapped by ``torch.nn.utils.parametrizations.weight_norm``,
    a plain ``nn.Linear``, or a raw (K, D) tensor / ``nn.Parameter``.
    """
    torch = _torch()
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


def nearest_neighbors(unit: torch.Tensor, *, anchors: torch.Tensor | None = None,
                      block_size: int | None = None) -> torch.Tensor:
    """Exact nearest neighbour (other than itself) of each anchor row, in blocks.

    Args:
        unit: (K, D) float32/float64 rows (normally L2-normalised). Not differentiated.
        anchors: (M,) int64 indices of the rows to search for; all K rows when None.
        block_size: anchors scored at once (``block_size`` x K scores in memory). Default: as many
            as fit in 64 MiB of float32 scores.

    Returns:
        (M,) int64 index of each anchor's nearest neighbour under Euclidean distance; ties go to
        the smallest index.
    """
    torch = _torch()
    num, dim = unit.shape
    if anchors is None:
        anchors = torch.arange(num, device=unit.device)
    step = int(block_size) if block_size else _auto_block_size(num)
    if step < 1:
        raise fail("block_size", expected="a positive integer", got=repr(block_size))
    # float32 rounding of one score: a few units of D * 2^-24 (rigorous bound for unit rows).
    tol = 4.0 * dim * 2.0 ** -24 if unit.dtype != torch.float64 else 0.0
    out = torch.empty(anchors.shape[0], dtype=torch.int64, device=unit.device)
    with torch.no_grad():
        neg_sq = -(unit * unit).sum(dim=1)  # (K,)
        for start in range(0, anchors.shape[0], step):
            rows = anchors[start:start + step]  # (B,)
            # ||a - b||^2 = |a|^2 + |b|^2 - 2 a.b: maximise 2 a.b - |b|^2 (|a|^2 is constant per row)
            score = torch.addmm(neg_sq.expand(rows.shape[0], num), unit[rows], unit.T, alpha=2.0)  # (B, K)
            score[torch.arange(rows.shape[0], device=unit.device), rows] = -math.inf
            if tol == 0.0 or num < 3:
                out[start:start + rows.shape[0]] = score.argmax(dim=1)
                continue
            top, index = score.topk(2, dim=1)  # (B, 2)
            close = top[:, 1] >= top[:, 0] - tol
            if bool(close.any()):
                # Rows without a near-tie keep one candidate (their best), so the whole block is
                # refined without copying its scores.
                floor = torch.where(close, top[:, 0] - tol, top[:, 0])
                out[start:start + rows.shape[0]] = _refine(unit, rows, score, floor)
            else:
                out[start:start + rows.shape[0]] = index[:, 0]
    return out


def _refine(unit: torch.Tensor, rows: torch.Tensor, score: torch.Tensor, floor: torch.Tensor) -> torch.Tensor:
    """Decide near-ties exactly: among each row's candidates (float32 score >= ``floor``), the
    nearest by the float64 norm of the difference (no cancellation). Work is proportional to the
    number of candidate pairs (about K x group size on a collapsed head), done in chunks of
    bounded memory; ties go to the smallest index."""
    torch = _torch()
    num_rows, dim = rows.shape[0], unit.shape[1]
    pair_row, pair_col = (score >= floor[:, None]).nonzero(as_tuple=True)  # (P,), (P,) row-major
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
    torch = _torch()
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


def _build_module_class() -> Any:
    torch = _torch()

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

    KoLeoProtoLoss.__module__ = __name__
    KoLeoProtoLoss.__qualname__ = "KoLeoProtoLoss"  # importable by name (pickling, repr)
    return KoLeoProtoLoss


def __getattr__(name: str) -> Any:
    # The nn.Module subclass needs torch to exist: it is defined on first use, so importing this
    # module (and ``collapse_probe``) stays free of torch.
    if name == "KoLeoProtoLoss":
        cls = _build_module_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
