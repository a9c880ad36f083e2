"""scikit-learn's bundled handwritten digits (8x8, 1797 images, no download) and their splits."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..validation import fail

__all__ = ["DigitsSplit", "load_digits_split", "long_tail_indices", "require_sklearn"]

log = logging.getLogger(__name__)


def require_sklearn() -> None:
    """Fail with one clear line when scikit-learn (the demo's only extra dependency) is missing."""
    import importlib.util

    if importlib.util.find_spec("sklearn") is None:
        from ..errors import CollapseProbeError

        raise CollapseProbeError("the digits demo needs scikit-learn: pip install "
                                 "'collapse-probe[demo]' (or pip install scikit-learn).")


@dataclass(frozen=True, eq=False)
class DigitsSplit:
    """A train / held-out split of the digits.

    Attributes:
        train_images: (N, 8, 8) float32 in [0, 1].
        train_labels: (N,) int64 digit classes 0..9.
        test_images: (M, 8, 8) float32 in [0, 1].
        test_labels: (M,) int64.
        tail_classes: classes with the fewest training images (empty for the balanced split).
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    tail_classes: tuple[int, ...] = ()


def long_tail_indices(labels: np.ndarray, *, imbalance: float, seed: int) -> np.ndarray:
    """Subsample a balanced set into a power-law (exponential-profile) long tail.

    Class ``c`` of C keeps ``n_max * imbalance ** (c / (C - 1))`` images (the usual CIFAR-LT
    profile), so class 0 keeps all of them and the last class ``imbalance`` of them.

    Args:
        labels: (N,) int class labels.
        imbalance: ratio of the rarest to the most frequent class, in (0, 1].
        seed: which images of each class are kept.

    Returns:
        (n,) int64 sorted indices into ``labels``.
    """
    if not 0.0 < imbalance <= 1.0:
        raise fail("imbalance", expected="a ratio in (0, 1]", got=repr(imbalance))
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    n_max = min(int(np.sum(labels == c)) for c in classes)
    keep = []
    for rank, c in enumerate(classes):
        members = np.flatnonzero(labels == c)
        count = max(1, round(n_max * imbalance ** (rank / max(1, classes.size - 1))))
        keep.append(rng.choice(members, size=count, replace=False))
    return np.sort(np.concatenate(keep)).astype(np.int64)


def load_digits_split(*, test_fraction: float = 0.3, seed: int = 0,
                      long_tail: float | None = None) -> DigitsSplit:
    """Load the digits and split them, stratified, into train and held-out test.

    Args:
        test_fraction: share of each class held out for the kNN evaluation (balanced).
        seed: the split (and the long-tail subsample).
        long_tail: if given, the training split is subsampled to this imbalance ratio
            (see :func:`long_tail_indices`); the test split stays balanced so every class
            counts, and the 5 rarest classes are reported as ``tail_classes``.
    """
    require_sklearn()
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise fail("test_fraction", expected="a fraction in (0, 1)", got=repr(test_fraction))
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(
        images, labels, test_size=test_fraction, random_state=seed, stratify=labels)
    tail: tuple[int, ...] = ()
    if long_tail is not None:
        keep = long_tail_indices(train_y, imbalance=long_tail, seed=seed)
        train_x, train_y = train_x[keep], train_y[keep]
        counts = np.bincount(train_y, minlength=10)
        tail = tuple(int(c) for c in np.sort(np.argsort(counts, kind="stable")[:5]))
    log.info("digits: %d train, %d test, long_tail=%s", train_y.size, test_y.size, long_tail)
    return DigitsSplit(train_x, train_y, test_x, test_y, tail)
