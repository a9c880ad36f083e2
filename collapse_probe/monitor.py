"""``PrototypeMonitor``: watch prototype collapse from inside a training loop.

Call ``monitor.update(step, head.last_layer, teacher_logits=t)`` every step (or every N steps);
on the steps it records (``step % every == 0``) it measures

* ``unique`` / ``utilization``: weight-space groups at ``eps`` (:func:`collapse_probe.deduplicate`);
* ``koleo``: the KoLeo-Proto value ``-(1/K) sum_k log(min_j ||w_k - w_j|| + delta)``
  (:class:`collapse_probe.koleo.KoLeoProtoLoss`, without jitter, under ``no_grad``): it falls as
  prototypes crowd together and reaches ``-log(delta)`` (18.4) for exact copies;
* from the teacher logits of the batch when given, (B, K), the logits the loss feeds to its
  softmax (centred and divided by the teacher temperature): ``teacher_entropy`` (mean
  per-sample entropy of the teacher distribution, nats), ``teacher_marginal_entropy`` (entropy of
  the batch-mean distribution, nats; DINO's centering pushes it to ln K) and ``batch_usage``
  (fraction of prototypes that are the argmax of at least one sample of the batch);

and appends one JSON line per record to ``path``, writes TensorBoard scalars to
``tensorboard_dir`` when the ``tensorboard`` package is installed (silently skipped otherwise),
and warns once (``logging`` and :class:`PrototypeCollapseWarning`) when utilization first falls
below ``utilization_floor``.

Works on CUDA tensors: KoLeo runs on the prototypes' device; the duplicate search proposes its
candidate pairs on that GPU too and decides them exactly on the host (one (K, D) copy per
record); teacher statistics are reduced on their device and only scalars come back.

Cost (``benchmarks/bench_monitor.py``): both the duplicate count and the exact KoLeo value are
K x K searches. At K = 65536 on a 2-core CPU one record cost 113-191 DINO head steps (batch 64), almost all of it
the exact KoLeo neighbour search; with ``koleo_anchors=4096`` it cost 15-16. At K = 16384, 13-26
head steps on healthy, equal-group and Zipf-group collapsed heads alike (the exact search no
longer slows down on giant groups). Record every 1000 steps or so, or train on a GPU.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .thresholds import GATE_EPS, Threshold
from .validation import describe, fail

__all__ = ["PrototypeMonitor", "PrototypeCollapseWarning", "DEFAULT_UTILIZATION_FLOOR"]

log = logging.getLogger(__name__)

#: Warn when fewer than this fraction of prototypes are unique. The paper finds 1-15 % on
#: collapsed released heads; a healthy head keeps nearly all of them.
DEFAULT_UTILIZATION_FLOOR: float = 0.5


class PrototypeCollapseWarning(RuntimeWarning):
    """Utilization fell below the monitor's floor: the head is collapsing."""


def _torch() -> Any:
    import torch

    return torch


def _prototype_tensor(prototypes: Any) -> Any:
    """(K, D) detached tensor on its own device from a tensor, array, PrototypeSet or module."""
    torch = _torch()
    from .koleo import prototype_weight
    from .types import PrototypeSet

    if isinstance(prototypes, PrototypeSet):
        return torch.from_numpy(np.array(prototypes.vectors))
    if isinstance(prototypes, np.ndarray):
        return torch.from_numpy(np.array(prototypes, dtype=np.float32))
    if isinstance(prototypes, torch.nn.Module):
        if callable(getattr(prototypes, "prototypes", None)):  # a rebuilt PrototypeHead
            with torch.no_grad():
                return torch.as_tensor(prototypes.prototypes()).detach()
        if isinstance(getattr(prototypes, "last_layer", None), torch.nn.Module):  # a DINOHead
            prototypes = prototypes.last_layer
    if isinstance(prototypes, (torch.Tensor, torch.nn.Module)):
        with torch.no_grad():
            return prototype_weight(prototypes).detach()
    raise fail("prototypes", expected="a (K, D) tensor or array, a PrototypeSet, or a last-layer module",
               got=describe(prototypes))


class PrototypeMonitor:
    """Record collapse statistics of a head every ``every`` steps.

    Args:
        path: JSON-lines file the records are appended to (a resumed run keeps its history);
            None keeps them in memory only (``records``).
        every: record on steps where ``step % every == 0``; other calls return None at once.
        eps: distance threshold of the duplicate count (the paper's 0.025 by default).
        utilization_floor: warn once when unique / K first falls below it; None never warns.
        tensorboard_dir: log directory for TensorBoard scalars under ``tag/``; ignored when the
            ``tensorboard`` package is missing.
        tag: TensorBoard scalar prefix.
        koleo_delta: delta of the KoLeo value.
        koleo_anchors: when set, the KoLeo value is the unbiased estimate over this many random
            prototypes (their neighbours still searched among all K): ``koleo_anchors / K`` of
            the cost of the exact value. None: exact, over all K.
        keep_records: how many recent records ``records`` keeps in memory.

    Use as a context manager, or call :meth:`close`, to flush TensorBoard.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        every: int = 1,
        eps: float = GATE_EPS,
        utilization_floor: float | None = DEFAULT_UTILIZATION_FLOOR,
        tensorboard_dir: str | Path | None = None,
        tag: str = "prototypes",
        koleo_delta: float = 1e-8,
        koleo_anchors: int | None = None,
        keep_records: int = 1000,
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise fail("every", expected="a positive integer", got=repr(every))
        if utilization_floor is not None and not 0.0 <= float(utilization_floor) <= 1.0:
            raise fail("utilization_floor", expected="a fraction in [0, 1] or None",
                       got=repr(utilization_floor))
        self.threshold = Threshold.from_eps(eps)
        self.every = every
        self.utilization_floor = None if utilization_floor is None else float(utilization_floor)
        self.path = None if path is None else Path(path)
        self.tag = tag
        self.koleo_delta = float(koleo_delta)
        if koleo_anchors is not None and (isinstance(koleo_anchors, bool) or not isinstance(koleo_anchors, int)
                                          or koleo_anchors < 1):
            raise fail("koleo_anchors", expected="a positive integer or None", got=repr(koleo_anchors))
        self.koleo_anchors = koleo_anchors
        self.keep_records = int(keep_records)
        self.records: list[dict[str, Any]] = []
        self.warned = False
        self._writer = self._open_tensorboard(tensorboard_dir)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _open_tensorboard(log_dir: str | Path | None) -> Any:
        if log_dir is None:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional: JSON lines still carry everything
            log.debug("tensorboard is not installed; TensorBoard scalars skipped")
            return None
        return SummaryWriter(log_dir=str(log_dir))

    def update(self, step: int, prototypes: Any, teacher_logits: Any = None) -> dict[str, Any] | None:
        """Measure and record on recorded steps; returns the record, or None when skipped.

        Args:
            step: the training step (an int >= 0).
            prototypes: (K, D) tensor or array, a PrototypeSet, a last-layer module (plain or
                weight-norm ``nn.Linear``), a DINO head with ``last_layer``, or a rebuilt head
                with ``prototypes()``.
            teacher_logits: optional (B, K) teacher logits of the current batch (tensor or array).
        """
        step = int(step)
        if step % self.every:
            return None
        started = time.perf_counter()
        torch = _torch()
        from .dedup import deduplicate
        from .koleo import koleo_proto_loss

        weight = _prototype_tensor(prototypes)
        num_prototypes = int(weight.shape[0])
        with torch.no_grad():
            # jitter=0: the value of exact copies is -log(delta), not a randomly shifted one.
            koleo = float(koleo_proto_loss(weight, delta=self.koleo_delta, jitter=0.0,
                                           num_anchors=self.koleo_anchors))
            host = weight.detach().float().cpu().numpy()
        # On a GPU the duplicate search proposes candidates there too (decided exactly on the host).
        dedup = deduplicate(host, eps=self.threshold.eps,
                            device="cuda" if weight.device.type == "cuda" else "cpu")
        record: dict[str, Any] = {
            "step": step,
            "time": time.time(),
            "num_prototypes": num_prototypes,
            "eps": self.threshold.eps,
            "unique": dedup.unique,
            "utilization": dedup.utilization,
            "koleo": koleo,
        }
        record.update(self._teacher_stats(teacher_logits, num_prototypes))
        record["seconds"] = time.perf_counter() - started
        self._emit(record)
        self._check_floor(record)
        return record

    @staticmethod
    def _teacher_stats(teacher_logits: Any, num_prototypes: int) -> dict[str, Any]:
        empty = {"batch_size": None, "teacher_entropy": None, "teacher_marginal_entropy": None,
                 "batch_usage": None}
        if teacher_logits is None:
            return empty
        torch = _torch()
        logits = teacher_logits if isinstance(teacher_logits, torch.Tensor) else torch.as_tensor(
            np.asarray(teacher_logits))
        if logits.ndim != 2 or logits.shape[1] != num_prototypes or logits.shape[0] < 1:
            raise fail("teacher_logits", expected=f"a (B, {num_prototypes}) matrix",
                       got=describe(teacher_logits), hint="Pass the teacher's logits for one batch.")
        with torch.no_grad():
            logits = logits.detach().double()
            log_p = torch.log_softmax(logits, dim=1)
            p = log_p.exp()
            entropy = float(-(p * log_p).sum(dim=1).mean())
            marginal = p.mean(dim=0)
            marginal = marginal[marginal > 0]
            marginal_entropy = float(-(marginal * marginal.log()).sum())
            used = int(torch.unique(logits.argmax(dim=1)).numel())
        return {"batch_size": int(logits.shape[0]), "teacher_entropy": entropy,
                "teacher_marginal_entropy": marginal_entropy, "batch_usage": used / num_prototypes}

    def _emit(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        del self.records[:-self.keep_records]
        if self.path is not None:
            clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                     for k, v in record.items()}
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(clean) + "\n")
        if self._writer is not None:
            for name in ("unique", "utilization", "koleo", "teacher_entropy",
                         "teacher_marginal_entropy", "batch_usage"):
                value = record[name]
                if value is not None:
                    self._writer.add_scalar(f"{self.tag}/{name}", value, record["step"])

    def _check_floor(self, record: dict[str, Any]) -> None:
        floor = self.utilization_floor
        if floor is None or self.warned or record["utilization"] >= floor:
            return
        self.warned = True
        message = (f"prototype utilization {record['utilization']:.2%} ({record['unique']} unique of "
                   f"{record['num_prototypes']} at eps {record['eps']:g}) fell below {floor:.2%} "
                   f"at step {record['step']}: the head is collapsing (warned once)")
        log.warning(message)
        warnings.warn(message, PrototypeCollapseWarning, stacklevel=3)

    def close(self) -> None:
        """Flush and close the TensorBoard writer (the JSON lines are written per record)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> PrototypeMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
