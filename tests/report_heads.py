"""Tiny heads with known verdicts, shared by the report, figure and verdict tests."""

from __future__ import annotations

import dataclasses

import numpy as np

from collapse_probe import audit
from collapse_probe.types import PrototypeSet


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def random_head(num: int = 300, dim: int = 32, seed: int = 0) -> np.ndarray:
    """Uniform random directions: what an untrained head looks like."""
    return np.random.default_rng(seed).standard_normal((num, dim))


def collapsed_head(num: int = 200, dim: int = 16, directions: int = 3, seed: int = 1) -> np.ndarray:
    """Copies of a few directions, with noise far below eps 0.025."""
    rng = np.random.default_rng(seed)
    base = unit(rng.standard_normal((directions, dim)))
    rows = base[np.arange(num) % directions] + 1e-6 * rng.standard_normal((num, dim))
    return rows * rng.uniform(0.5, 2.0, (num, 1))


def clustered(num: int, dim: int, clusters: int, spread: float, rng: np.random.Generator) -> np.ndarray:
    """Distinct points around a few cluster centres: structured, not random, no duplicates."""
    centres = unit(rng.standard_normal((clusters, dim)))
    return unit(centres[np.arange(num) % clusters] + spread * rng.standard_normal((num, dim)))


def healthy_head(num: int = 240, dim: int = 32, seed: int = 2) -> np.ndarray:
    return clustered(num, dim, 12, 0.12, np.random.default_rng(seed))


def partial_head(num: int = 200, dim: int = 32, unique: int = 60, seed: int = 3) -> np.ndarray:
    """``unique`` distinct structured directions, the rest copies of them (30 % unique by default)."""
    rng = np.random.default_rng(seed)
    distinct = clustered(unique, dim, 6, 0.12, rng)
    copies = distinct[rng.integers(0, unique, num - unique)] + 1e-6 * rng.standard_normal((num - unique, dim))
    return np.concatenate([distinct, copies])


def small_report(*, fail_under: float | None = 0.25, eps=(0.025, 0.5)):
    """Two checkpoints, four heads (one per verdict), a fixed tool version."""
    first = (PrototypeSet.from_array(partial_head(), name="head"),
             PrototypeSet.from_array(collapsed_head(), name="head_dense"))
    second = (PrototypeSet.from_array(healthy_head(), name="head"),
              PrototypeSet.from_array(random_head(), name="random_init"))
    report = audit([first, second], eps=list(eps), fail_under=fail_under)
    return dataclasses.replace(report, tool_version="0.0.0")
