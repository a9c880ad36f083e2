"""What to read from a checkpoint, as one bundle (:class:`ReadOptions`) that every command and
API function passes whole, from the command line down to the reader."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["ReadOptions", "NETWORKS"]

#: Which copy of the model to read.
NETWORKS: tuple[str, ...] = ("teacher", "student")


@dataclass(frozen=True)
class ReadOptions:
    """How to read a checkpoint.

    Attributes:
        format: a family name (``dino``, ``ibot``, ... see :data:`collapse_probe.FORMATS`),
            ``key`` (an explicit tensor path) or ``array`` (a raw ``.npy`` / ``.npz`` / ``.pt``
            tensor); None detects the layout from the file.
        network: ``teacher`` (default) or ``student``.
        key: an explicit key path to the prototypes (a tensor or a layer prefix, dots between
            nested dicts); with a family ``format`` it is looked up inside the chosen network.
            For ``.npz`` archives, the array's name.
        trust: unpickle with full pickle, which runs any code the file holds (only for files
            from a trusted source). Without it, plain data loads and unknown classes become
            inert placeholders.
        cache_dir: where zoo downloads and generated examples are kept (None: the default cache).
    """

    format: str | None = None
    network: str = "teacher"
    key: str | None = None
    trust: bool = False
    cache_dir: Path | str | None = None

    def __post_init__(self) -> None:
        from .errors import InputError
        from .families import FORMATS

        if self.format is not None and self.format not in FORMATS:
            raise InputError(f"unknown format {self.format!r}: expected one of {', '.join(FORMATS)}.")
        if self.network not in NETWORKS:
            raise InputError(f"unknown network {self.network!r}: expected one of {', '.join(NETWORKS)}.")
