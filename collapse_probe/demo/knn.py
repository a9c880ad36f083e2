"""kNN accuracy of frozen features on a held-out split (scikit-learn, cosine distance)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..validation import fail

__all__ = ["KnnResult", "backbone_features", "knn_accuracy"]


@dataclass(frozen=True, eq=False)
class KnnResult:
    """Held-out kNN accuracy.

    Attributes:
        k: neighbours voting.
        accuracy: fraction of test samples classified correctly, in [0, 1].
        per_class: (C,) accuracy of each class (NaN for a class absent from the test split).
    """

    k: int
    accuracy: float
    per_class: np.ndarray

    def mean_over(self, classes: tuple[int, ...]) -> float:
        """Mean per-class accuracy over ``classes`` (e.g. the tail classes)."""
        return float(np.nanmean(self.per_class[list(classes)]))


def backbone_features(net, images: np.ndarray, *, batch_size: int = 512) -> np.ndarray:
    """(N, H, W) images -> (N, F) float32 features of ``net.backbone`` (no augmentation)."""
    import torch

    net.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(np.asarray(images[start:start + batch_size], np.float32))
            out.append(net.backbone(batch[:, None]).numpy())
    return np.concatenate(out).astype(np.float32)


def knn_accuracy(train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray,
                 test_labels: np.ndarray, *, k: int = 10) -> KnnResult:
    """Majority-vote kNN under cosine distance, fitted on train, scored on test.

    Args:
        train_features: (N, F) features; test_features: (M, F), same F.
        train_labels, test_labels: (N,), (M,) int classes.
        k: neighbours (capped at N).
    """
    from .data import require_sklearn

    require_sklearn()
    from sklearn.neighbors import KNeighborsClassifier

    train_features = np.asarray(train_features, np.float32).reshape(len(train_features), -1)
    test_features = np.asarray(test_features, np.float32).reshape(len(test_features), -1)
    if train_features.shape[1] != test_features.shape[1]:
        raise fail("features", expected="the same dimension for train and test",
                   got=f"{train_features.shape[1]} and {test_features.shape[1]}")
    if k < 1:
        raise fail("k", expected="k >= 1", got=repr(k))
    k = min(k, len(train_features))
    classifier = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute")
    predicted = classifier.fit(train_features, train_labels).predict(test_features)
    test_labels = np.asarray(test_labels)
    classes = int(max(train_labels.max(), test_labels.max())) + 1
    correct = predicted == test_labels
    per_class = np.full(classes, np.nan)
    for c in range(classes):
        mask = test_labels == c
        if mask.any():
            per_class[c] = correct[mask].mean()
    return KnnResult(k=k, accuracy=float(correct.mean()), per_class=per_class)
