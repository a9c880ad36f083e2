"""Multi-crop augmentation for tiny grayscale images, batched: one affine warp per crop."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["MultiCrop"]


@dataclass(frozen=True)
class MultiCrop:
    """DINO's multi-crop for 8x8 digits: ``num_global`` large and ``num_local`` small crops.

    Every crop is resampled to ``size`` x ``size`` (small crops are zoomed in, so one backbone
    sees one resolution). Scales are fractions of the image area, as in DINO's
    ``global_crops_scale`` / ``local_crops_scale``.
    """

    num_global: int = 2
    num_local: int = 4
    global_scale: tuple[float, float] = (0.5, 1.0)
    local_scale: tuple[float, float] = (0.15, 0.45)
    max_rotation_deg: float = 15.0
    max_aspect_log: float = math.log(4 / 3)
    noise_std: float = 0.05
    contrast: tuple[float, float] = (0.7, 1.3)
    size: int = 8

    def crops(self, images: torch.Tensor, *, scale: tuple[float, float],
              generator: torch.Generator) -> torch.Tensor:
        """(B, H, W) images in [0, 1] -> (B, 1, size, size) randomly cropped, rotated, noised."""
        import torch
        import torch.nn.functional as F

        batch = images.shape[0]

        def uniform(low: float, high: float) -> torch.Tensor:
            return low + (high - low) * torch.rand(batch, generator=generator)

        area = uniform(*scale)
        log_aspect = uniform(-self.max_aspect_log, self.max_aspect_log)
        # half-extent of the crop in the [-1, 1] coordinates of grid_sample
        sx = torch.sqrt(area * torch.exp(log_aspect)).clamp(max=1.0)
        sy = torch.sqrt(area / torch.exp(log_aspect)).clamp(max=1.0)
        # the crop centre may move as far as it stays (mostly) inside the image
        tx = (1.0 - sx) * uniform(-1.0, 1.0)
        ty = (1.0 - sy) * uniform(-1.0, 1.0)
        angle = torch.deg2rad(uniform(-self.max_rotation_deg, self.max_rotation_deg))
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack([torch.stack([sx * cos, -sy * sin, tx], dim=1),
                             torch.stack([sx * sin, sy * cos, ty], dim=1)], dim=1)
        grid = F.affine_grid(theta, [batch, 1, self.size, self.size], align_corners=False)
        out = F.grid_sample(images[:, None], grid, mode="bilinear", padding_mode="zeros",
                            align_corners=False)
        gain = uniform(*self.contrast)[:, None, None, None]
        out = out * gain + self.noise_std * torch.randn(out.shape, generator=generator)
        return out.clamp(0.0, 1.0)

    def __call__(self, images: torch.Tensor, *, generator: torch.Generator) -> list[torch.Tensor]:
        """All views of a batch: ``num_global`` global crops first, then the local crops."""
        views = [self.crops(images, scale=self.global_scale, generator=generator)
                 for _ in range(self.num_global)]
        views += [self.crops(images, scale=self.local_scale, generator=generator)
                  for _ in range(self.num_local)]
        return views
