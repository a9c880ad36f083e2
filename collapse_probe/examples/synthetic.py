"""A synthetic DINO checkpoint with planted duplicate groups, in the real DINO layout.

It stands in for a real checkpoint when there is nothing to download: a ViT-S/16-style
teacher and student (``module.``-prefixed) with a weight-normed last layer whose K prototypes
are copies, with tiny noise, of a few hundred directions, in sizes skewed the way collapsed
heads are (one large group, a long tail of small ones).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

__all__ = ["planted_head", "write_synthetic_dino"]


def planted_head(*, num_prototypes: int, num_groups: int, dim: int, noise: float,
                 seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Prototypes in ``num_groups`` planted groups.

    Returns:
        weights: (K, D) float32, rows with random norms in [0.5, 2] (so direction matters).
        groups: (K,) int64, the planted group of each row (0..num_groups-1, by first member).
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((num_groups, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    # Zipf-like sizes: every group gets one member, the rest follows a power law.
    weights = 1.0 / np.arange(1, num_groups + 1) ** 1.1
    extra = rng.multinomial(num_prototypes - num_groups, weights / weights.sum())
    sizes = 1 + extra
    groups = rng.permutation(np.repeat(np.arange(num_groups), sizes))
    # noise * sqrt(2 * dim) ~ the expected distance between two members: keep it far below
    # the smallest threshold (0.025) and group centres (~1.41 apart) far above the largest.
    vectors = centres[groups] + noise * rng.standard_normal((num_prototypes, dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    norms = rng.uniform(0.5, 2.0, size=(num_prototypes, 1))
    _, first = np.unique(groups, return_index=True)
    rank = np.empty(num_groups, dtype=np.int64)
    rank[np.argsort(first)] = np.arange(num_groups)
    return (vectors * norms).astype(np.float32), rank[groups]


def _network(torch, rng: np.random.Generator, head_weights: np.ndarray, *, prefix: str,
             hidden: int, embed_dim: int) -> dict:
    """A ViT-style network: a few small backbone tensors and the DINO head (old weight norm)."""
    dim = head_weights.shape[1]

    def t(*shape: int):
        return torch.from_numpy(rng.standard_normal(shape).astype(np.float32) * 0.02)

    net = {
        "backbone.cls_token": t(1, 1, embed_dim),
        "backbone.pos_embed": t(1, 197, embed_dim),
        "backbone.patch_embed.proj.weight": t(embed_dim, 3, 16, 16),
        "backbone.patch_embed.proj.bias": t(embed_dim),
        "backbone.norm.weight": torch.ones(embed_dim),
        "backbone.norm.bias": torch.zeros(embed_dim),
        "head.mlp.0.weight": t(hidden, embed_dim), "head.mlp.0.bias": t(hidden),
        "head.mlp.2.weight": t(hidden, hidden), "head.mlp.2.bias": t(hidden),
        "head.mlp.4.weight": t(dim, hidden), "head.mlp.4.bias": t(dim),
    }
    g = np.linalg.norm(head_weights, axis=1, keepdims=True)
    net["head.last_layer.weight_g"] = torch.from_numpy(g.astype(np.float32))
    net["head.last_layer.weight_v"] = torch.from_numpy(head_weights)
    return {prefix + k: v for k, v in net.items()}


def write_synthetic_dino(path: Path, *, num_prototypes: int = 65536, num_groups: int = 1000,
                         dim: int = 256, noise: float = 2e-4, seed: int = 0) -> np.ndarray:
    """Write the synthetic checkpoint to ``path``; return the planted (K,) teacher groups."""
    import torch

    weights, groups = planted_head(num_prototypes=num_prototypes, num_groups=num_groups,
                                   dim=dim, noise=noise, seed=seed)
    rng = np.random.default_rng(seed + 1)
    hidden, embed_dim = 64, 48
    student_weights = weights + 1e-3 * rng.standard_normal(weights.shape).astype(np.float32)
    checkpoint = {
        "student": _network(torch, rng, student_weights, prefix="module.", hidden=hidden,
                            embed_dim=embed_dim),
        "teacher": _network(torch, rng, weights, prefix="", hidden=hidden, embed_dim=embed_dim),
        "epoch": 100,
        "args": argparse.Namespace(arch="vit_small", patch_size=16, out_dim=num_prototypes,
                                   norm_last_layer=True, synthetic=True, seed=seed),
        "dino_loss": {"center": torch.zeros(1, num_prototypes)},
    }
    from ..output import save_torch

    save_torch(checkpoint, path)  # whole or not at all (concurrent first uses are safe)
    return groups
