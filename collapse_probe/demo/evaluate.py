"""What a finished demo run is judged by: unique prototypes, used prototypes, kNN accuracy."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .data import DigitsSplit
from .knn import backbone_features, knn_accuracy
from .train import TrainResult

__all__ = ["EVAL_EPS", "RunMetrics", "evaluate_run"]

log = logging.getLogger(__name__)

#: Thresholds reported: the follow-up paper's main eps and a looser one.
EVAL_EPS: tuple[float, ...] = (0.025, 0.1)


@dataclass(frozen=True)
class RunMetrics:
    """Scores of one run.

    Attributes:
        unique_student: unique student prototypes at each of ``EVAL_EPS`` (components).
        unique_teacher: the same for the teacher's prototypes.
        num_prototypes: K.
        used: teacher prototypes that are the argmax for at least one held-out image.
        knn: held-out kNN accuracy of the teacher backbone's features, in [0, 1].
        knn_tail: mean per-class kNN accuracy over the split's tail classes (NaN if none).
        first_loss, final_loss: mean DINO loss of the first and last epoch (nats).
        seconds: training wall time.
    """

    unique_student: tuple[int, ...]
    unique_teacher: tuple[int, ...]
    num_prototypes: int
    used: int
    knn: float
    knn_tail: float
    first_loss: float
    final_loss: float
    seconds: float


def evaluate_run(result: TrainResult, split: DigitsSplit, *, k: int = 10) -> RunMetrics:
    """Score ``result`` on ``split`` (the split it was trained on; kNN uses labels, training did not)."""
    import torch

    from ..dedup import sweep

    net = result.teacher_net()
    train_features = backbone_features(net, split.train_images)
    test_features = backbone_features(net, split.test_images)
    knn = knn_accuracy(train_features, split.train_labels, test_features, split.test_labels, k=k)
    with torch.no_grad():
        logits = net.head(torch.from_numpy(test_features))
    used = int(np.unique(logits.argmax(dim=1).numpy()).size)
    unique = {}
    for role, state in (("student", result.student), ("teacher", result.teacher)):
        weight = state["head.last_layer.weight_v"].numpy()  # g = 1 (norm_last_layer): same directions
        unique[role] = tuple(r.unique for r in sweep(weight, eps=EVAL_EPS))
    tail = knn.mean_over(split.tail_classes) if split.tail_classes else float("nan")
    metrics = RunMetrics(unique_student=unique["student"], unique_teacher=unique["teacher"],
                         num_prototypes=result.config.num_prototypes, used=used, knn=knn.accuracy,
                         knn_tail=tail, first_loss=float(result.epoch_loss[0]),
                         final_loss=float(result.epoch_loss[-1]), seconds=result.seconds)
    log.info("evaluated: %s", metrics)
    return metrics
