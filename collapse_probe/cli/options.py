"""Options shared by the commands that read checkpoints (``audit``, ``report``), defined once."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

__all__ = [
    "Method", "Network", "Space", "Sources", "Example", "Eps", "Cosine", "MethodOption", "NetworkOption",
    "Format", "Key", "FailUnder", "GateEps", "Trust", "CacheDir", "Quiet", "HealthyFloor",
    "CollapsedMaxUnique", "verdict_policy", "checkpoint_names", "read_options",
]


class Method(str, Enum):
    components = "components"
    greedy = "greedy"


class Network(str, Enum):
    teacher = "teacher"
    student = "student"


class Space(str, Enum):
    """The space of user-supplied features."""

    backbone = "backbone"
    bottleneck = "bottleneck"


Sources = Annotated[Optional[list[str]], typer.Argument(
    metavar="PATH_OR_ZOO_NAME...",
    help="Checkpoint files, zoo names (see `zoo list`) or bundled example names.")]
Example = Annotated[bool, typer.Option(
    "--example", help="Use the bundled examples: real DINO runs on scikit-learn digits, "
    "without and with KoLeo-Proto (no download). Name synthetic-dino for a 65536-prototype one.")]
Eps = Annotated[Optional[list[float]], typer.Option(
    "--eps", help="Distance threshold on unit vectors (repeatable). "
    "Default sweep: 0.025 0.05 0.1 0.25 0.5.")]
Cosine = Annotated[Optional[list[float]], typer.Option(
    "--cosine", help="Cosine threshold (repeatable); cos = 1 - eps^2/2.")]
MethodOption = Annotated[Method, typer.Option(
    "--method", help="components: single linkage at eps; greedy: eps-net in index order.")]
NetworkOption = Annotated[Network, typer.Option("--network", help="Which network's head to read.")]
Format = Annotated[Optional[str], typer.Option(
    "--format", help="Checkpoint format; auto-detected by default.")]
Key = Annotated[Optional[str], typer.Option(
    "--key", help="Explicit key path of the prototype tensor.")]
FailUnder = Annotated[Optional[float], typer.Option(
    "--fail-under", metavar="FRACTION",
    help="Exit 1 unless every head's utilization at --gate-eps reaches FRACTION.")]
GateEps = Annotated[float, typer.Option("--gate-eps", help="Distance threshold of the gate.")]
Trust = Annotated[bool, typer.Option(
    "--trust-checkpoint",
    help="Allow arbitrary pickled code in the file. Only for files from a source you trust.")]
CacheDir = Annotated[Optional[Path], typer.Option(
    "--cache-dir", envvar="COLLAPSE_PROBE_CACHE", help="Where zoo downloads and examples are kept.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress messages.")]
HealthyFloor = Annotated[float, typer.Option(
    "--healthy-floor", metavar="FRACTION",
    help="Verdict: utilization at the gate eps below FRACTION is partial-collapse (default 0.5).")]
CollapsedMaxUnique = Annotated[int, typer.Option(
    "--collapsed-max-unique", metavar="N",
    help="Verdict: at most N unique prototypes at the gate eps is collapsed (default 10).")]


def verdict_policy(*, healthy_floor: float, collapsed_max_unique: int, gate_eps: float):  # noqa: ANN201
    """The VerdictPolicy the verdict options describe (read at the gate's eps)."""
    from ..auditing import VerdictPolicy

    return VerdictPolicy(eps=gate_eps, healthy_floor=healthy_floor,
                         collapsed_max_unique=collapsed_max_unique)


def checkpoint_names(sources: list[str] | None, example: bool, *, hint: str) -> list[str]:
    """The checkpoints a command was given, plus the bundled examples with ``--example``."""
    from ..examples import DEFAULT_EXAMPLES
    from ..validation import fail

    names = list(sources or [])
    if example:
        names += [n for n in DEFAULT_EXAMPLES if n not in names]
    if not names:
        raise fail("checkpoint", expected="at least one path or zoo name", got="none", hint=hint)
    return names


def read_options(*, checkpoint_format: str | None, network: Network | str, key: str | None,
                 trust: bool, cache_dir: Path | None = None):  # noqa: ANN201 - the core's ReadOptions
    """The :class:`~collapse_probe.options.ReadOptions` the reading options describe: built once
    per command and passed whole to the core."""
    from ..options import ReadOptions

    network = network.value if isinstance(network, Network) else network
    return ReadOptions(format=checkpoint_format, network=network, key=key, trust=trust,
                       cache_dir=cache_dir)
