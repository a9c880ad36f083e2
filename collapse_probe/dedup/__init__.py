"""Exact duplicate counting: which prototypes are copies of which, at one or many thresholds."""

from .api import deduplicate, sweep

__all__ = ["deduplicate", "sweep"]
