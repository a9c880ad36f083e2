"""A tiny conv backbone and the DINO head (mlp -> bottleneck -> L2 norm -> weight-normed prototypes).

Parameter names follow facebookresearch/dino, so a saved network has ``backbone.*``,
``head.mlp.{0,2,4}.*`` and ``head.last_layer.weight_g`` [K, 1] / ``head.last_layer.weight_v`` [K, D].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["build_net", "DinoNet", "DinoHead", "WeightNormLinear"]


class WeightNormLinear(nn.Module):
    """Bias-free ``Linear(dim, K)`` with rows ``g_k * v_k / ||v_k||``, stored as ``weight_g`` /
    ``weight_v`` exactly like ``torch.nn.utils.weight_norm`` (which DINO uses) stores them."""

    def __init__(self, dim: int, num_prototypes: int) -> None:
        super().__init__()
        init = nn.Linear(dim, num_prototypes, bias=False).weight.detach()
        self.weight_v = nn.Parameter(init.clone())
        self.weight_g = nn.Parameter(init.norm(dim=1, keepdim=True).clone())

    @property
    def weight(self) -> torch.Tensor:
        """(K, D): the effective prototype matrix."""
        return self.weight_g * self.weight_v / self.weight_v.norm(dim=1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight)


class DinoHead(nn.Module):
    """DINO's projection head: 3-layer MLP to a bottleneck, L2 norm, K prototypes."""

    def __init__(self, in_dim: int, num_prototypes: int, *, hidden_dim: int = 256,
                 bottleneck_dim: int = 64, norm_last_layer: bool = True) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(),
                                 nn.Linear(hidden_dim, hidden_dim), nn.GELU(),
                                 nn.Linear(hidden_dim, bottleneck_dim))
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                nn.init.trunc_normal_(layer.weight, std=0.02)
                nn.init.zeros_(layer.bias)
        self.last_layer = WeightNormLinear(bottleneck_dim, num_prototypes)
        self.last_layer.weight_g.data.fill_(1.0)
        if norm_last_layer:  # DINO's default: unit prototypes, only directions are learned
            self.last_layer.weight_g.requires_grad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_layer(F.normalize(self.mlp(x), dim=-1))


class Standardize(nn.Module):
    """Fixed pixel standardisation (digits: mean 0.30, std 0.38 of [0, 1] intensities)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - 0.30) / 0.38


class DinoNet(nn.Module):
    """``backbone`` (8x8 image -> feature) followed by ``head`` (feature -> K logits)."""

    def __init__(self, num_prototypes: int, *, feature_dim: int = 128, hidden_dim: int = 256,
                 bottleneck_dim: int = 64) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            Standardize(), nn.Conv2d(1, 32, 3, padding=1), nn.GELU(),
            nn.Conv2d(32, 64, 3, padding=1, stride=2), nn.GELU(),
            nn.Flatten(), nn.Linear(64 * 4 * 4, feature_dim), nn.GELU(),
            nn.Linear(feature_dim, feature_dim))
        # Zero biases: default bias init gives every digit nearly the same feature
        # (cosine 0.99 at init), which centering then flattens into uniform collapse.
        for layer in self.backbone:
            if getattr(layer, "bias", None) is not None:
                nn.init.zeros_(layer.bias)
        self.head = DinoHead(feature_dim, num_prototypes, hidden_dim=hidden_dim,
                             bottleneck_dim=bottleneck_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def build_net(num_prototypes: int, *, feature_dim: int = 128, hidden_dim: int = 256,
              bottleneck_dim: int = 64) -> DinoNet:
    """A fresh :class:`DinoNet` with ``num_prototypes`` prototypes of dimension ``bottleneck_dim``."""
    return DinoNet(num_prototypes, feature_dim=feature_dim, hidden_dim=hidden_dim,
                   bottleneck_dim=bottleneck_dim)

