"""Bundled example checkpoints: audit something without downloading anything.

``example_path(name)`` returns a readable file in the real layout of its method. Generated
examples are written once into the cache folder (deterministic, from a fixed seed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..cache import cache_dir
from ..errors import InputError

__all__ = ["Example", "EXAMPLES", "EXAMPLE_NAMES", "DEFAULT_EXAMPLES", "example_path"]


@dataclass(frozen=True)
class Example:
    """A bundled example: ``file`` under ``examples/data`` or a ``generate(path)`` function."""

    name: str
    description: str
    synthetic: bool
    file: str | None = None
    generate: Callable[[Path], object] | None = None


def _generate_synthetic_dino(path: Path) -> object:
    from .synthetic import write_synthetic_dino

    return write_synthetic_dino(path)


EXAMPLES: dict[str, Example] = {
    "synthetic-dino": Example(
        name="synthetic-dino",
        description=("SYNTHETIC example, not a trained model: DINO ViT-S/16 layout, K=65536 x D=256, "
                     "1000 planted duplicate groups (one large, a long tail)"),
        synthetic=True,
        generate=_generate_synthetic_dino,
    ),
    "dino-digits": Example(
        name="dino-digits",
        description=("real DINO run on scikit-learn's handwritten digits without KoLeo-Proto "
                     "(tiny conv net, K=1024 x D=64, seed 0; benchmarks/koleo_demo.py): partial "
                     "prototype collapse at eps 0.025 (teacher 192 of 1024 unique, student 64)"),
        synthetic=False,
        file="dino_digits.pth",
    ),
    "dino-digits-koleo": Example(
        name="dino-digits-koleo",
        description=("real DINO run on scikit-learn's handwritten digits with KoLeo-Proto "
                     "(lambda 0.1; same data, seed and settings as dino-digits): the repaired run, "
                     "1024 of 1024 unique"),
        synthetic=False,
        file="dino_digits_koleo.pth",
    ),
}
EXAMPLE_NAMES: tuple[str, ...] = tuple(EXAMPLES)
#: What ``--example`` audits: the real trained pair, the collapsed run and its repair.
DEFAULT_EXAMPLES: tuple[str, ...] = ("dino-digits", "dino-digits-koleo")


def example_path(name: str, *, cache: Path | str | None = None) -> Path:
    """The path of bundled example ``name``, generating it into the cache on first use."""
    example = EXAMPLES.get(name)
    if example is None:
        raise InputError(f"unknown example {name!r}: expected one of {', '.join(EXAMPLE_NAMES)}.")
    if example.file is not None:
        return Path(__file__).parent / "data" / example.file
    target = cache_dir(cache) / "examples" / f"{name}.pth"
    if not target.exists():
        generate = example.generate
        if generate is None:
            raise InputError(f"example {name!r} has neither a file nor a generator.")
        # The generator writes through collapse_probe.output.save_torch: generated beside the
        # target and renamed into place, so concurrent first uses are safe.
        generate(target)
    return target
