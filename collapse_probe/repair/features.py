"""Frozen-backbone features for fine-tuning: loading, checking, and views of each sample.

Features come as ``(N, V, d)`` (V >= 2 views of each sample, e.g. backbone outputs of V crops)
or ``(N, d)``. For ``(N, d)`` two views are made in feature space, since there are no images to
crop: each view adds Gaussian noise with a per-dimension scale (``noise_std`` times that
dimension's standard deviation over the data) and then zeroes each feature with probability
``feature_drop`` (inverted dropout: kept features are divided by ``1 - feature_drop``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..validation import describe, fail

__all__ = ["FeatureViews", "load_features", "Augmentation"]


@dataclass(frozen=True)
class Augmentation:
    """Feature-space augmentation used for ``(N, d)`` features (recorded in every result).

    Attributes:
        num_views: views made of each sample (2).
        noise_std: Gaussian noise scale, in units of each dimension's standard deviation.
        feature_drop: probability of zeroing one feature (inverted dropout).
    """

    num_views: int = 2
    noise_std: float = 0.1
    feature_drop: float = 0.1

    def __post_init__(self) -> None:
        if self.num_views < 2:
            raise fail("num_views", expected="at least 2 views", got=repr(self.num_views))
        if not (np.isfinite(self.noise_std) and self.noise_std >= 0):
            raise fail("noise_std", expected="a finite number >= 0", got=repr(self.noise_std))
        if not 0 <= self.feature_drop < 1:
            raise fail("feature_drop", expected="a probability in [0, 1)", got=repr(self.feature_drop))


def load_features(features: Any) -> np.ndarray:
    """A float32 ``(N, V, d)`` or ``(N, d)`` array from an array or a ``.npy`` path.

    Raises:
        InputError: unreadable file, wrong rank, V < 2, fewer than 2 samples, non-finite values.
    """
    if isinstance(features, (str, Path)):
        path = Path(features)
        if not path.is_file():
            raise InputError(f"features file {path} does not exist: pass a .npy array of shape "
                             "(N, V, d) or (N, d).")
        try:
            features = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"{path} is not a readable .npy array ({exc}): save features with "
                             "numpy.save.") from None
    if hasattr(features, "detach"):
        features = features.detach().float().cpu().numpy()
    array = np.asarray(features)
    if array.ndim not in (2, 3) or not np.issubdtype(array.dtype, np.number):
        raise fail("features", expected="a numeric array of shape (N, V, d) with V >= 2 views, or (N, d)",
                   got=describe(array))
    if array.ndim == 3 and array.shape[1] < 2:
        raise fail("features", expected="at least 2 views per sample in (N, V, d)",
                   got=describe(array), hint="Pass (N, d) to get feature-space augmented views.")
    if array.shape[0] < 2 or array.shape[-1] < 1:
        raise fail("features", expected="at least 2 samples of dimension >= 1", got=describe(array))
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise fail("features", expected="finite values", got="NaN or Inf entries")
    return array


class FeatureViews:
    """Draws batches of views: ``(B, V, d)`` float32 tensors on a device.

    Args:
        features: ``(N, V, d)`` or ``(N, d)`` float32 (see :func:`load_features`).
        augmentation: used only for ``(N, d)``.
        indices: the samples this process may draw (a rank's shard); all when None.
        generator: torch CPU generator (batch order, augmentation noise).
        device: where batches go.
    """

    def __init__(self, features: np.ndarray, *, augmentation: Augmentation, indices: np.ndarray | None,
                 generator: Any, device: Any) -> None:
        import torch

        self._torch = torch
        self.views_given = features.ndim == 3
        self.augmentation = None if self.views_given else augmentation
        self.indices = np.arange(features.shape[0]) if indices is None else np.asarray(indices)
        if self.indices.size == 0:
            raise fail("features", expected="at least one sample per process",
                       got=f"{features.shape[0]} samples for this many processes")
        self.data = torch.from_numpy(np.ascontiguousarray(features[self.indices]))
        self.scale = None if self.views_given else self.data.std(dim=0, keepdim=True)  # (1, d)
        self.generator = generator
        self.device = device

    @property
    def dim(self) -> int:
        return int(self.data.shape[-1])

    def batch(self, batch_size: int) -> Any:
        """``(B, V, d)`` float32 views of ``min(batch_size, n)`` samples drawn without replacement."""
        torch = self._torch
        n = self.data.shape[0]
        take = torch.randperm(n, generator=self.generator)[:min(batch_size, n)]
        x = self.data[take]
        if self.views_given:
            return x.to(self.device)
        aug = self.augmentation
        views = []
        for _ in range(aug.num_views):
            noise = torch.randn(x.shape, generator=self.generator) * self.scale * aug.noise_std
            view = x + noise
            if aug.feature_drop > 0:
                keep = torch.rand(x.shape, generator=self.generator) >= aug.feature_drop
                view = view * keep / (1.0 - aug.feature_drop)
            views.append(view)
        return torch.stack(views, dim=1).to(self.device)
