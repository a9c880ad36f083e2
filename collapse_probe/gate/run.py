"""Run the gate: audit every configured checkpoint and hold each head to its floor.

Fails closed: a missing file, a glob that matches nothing, an unreadable checkpoint or a head
named in the configuration that no checkpoint has is a failed check, never a pass.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

from ..auditing.gate import STATUSES, gate_passes, head_status
from ..errors import CollapseProbeError, option_style
from ..runs.compute import reading
from .config import GateConfig

__all__ = ["GateCheck", "GateOutcome", "run_gate", "checkpoint_files", "STATUSES"]

log = logging.getLogger(__name__)

_GLOB_CHARS = frozenset("*?[")
_PATH_ENDINGS = (".pth", ".pt", ".tar", ".ckpt", ".npy", ".npz", ".safetensors")


@dataclass(frozen=True)
class GateCheck:
    """One checkpoint x head (or a checkpoint or configuration problem, then ``head`` may be "").

    Attributes:
        checkpoint: the file or name audited (or the configuration entry that failed).
        head: the head's name; "" for a problem with the checkpoint itself.
        status: one of :data:`STATUSES`: ``passed`` / ``failed`` for a gated head (the rule of
            :mod:`collapse_probe.auditing.gate`), ``failed`` for a checkpoint-level problem (head
            ""), ``not-gated`` for a head with no floor (neither in ``heads`` nor covered by
            ``fail_under``).
        message: one line saying what was measured or what went wrong.
        floor: the utilization floor applied (None when not gated or not measured).
        utilization, unique, num_prototypes: the measurement at ``eps`` (None when not measured).
        eps: the gate's threshold.
    """

    checkpoint: str
    head: str
    status: str
    message: str
    eps: float
    floor: float | None = None
    utilization: float | None = None
    unique: int | None = None
    num_prototypes: int | None = None

    @property
    def failed(self) -> bool:
        return self.status == "failed"


@dataclass(frozen=True)
class GateOutcome:
    """All checks of one gate run. ``passed``: no failure and at least one gated head passed."""

    config: GateConfig
    checks: tuple[GateCheck, ...]

    @property
    def failures(self) -> tuple[GateCheck, ...]:
        return tuple(c for c in self.checks if c.failed)

    @property
    def passed(self) -> bool:
        return gate_passes(c.status for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1


def run_gate(config: GateConfig, *, progress: Callable[[str], None] | None = None) -> GateOutcome:
    """Audit every checkpoint of ``config`` at ``config.eps`` and compare each head to its floor."""
    from ..auditing import audit

    checks: list[GateCheck] = []
    heads_seen: set[str] = set()
    read = config.read
    if read.cache_dir is not None:
        cache = Path(read.cache_dir).expanduser()
        read = replace(read, cache_dir=cache if cache.is_absolute() else config.base_dir / cache)
    for spec in config.checkpoints:
        sources, problem = _expand(spec, config.base_dir)
        if problem:
            checks.append(GateCheck(checkpoint=spec, head="", status="failed", message=problem,
                                    eps=config.eps))
            continue
        for source in sources:
            if progress is not None:
                progress(f"auditing {source}")
            try:
                reads = reading(source) if _exists(source) else nullcontext()
                with reads, option_style(_gate_option):
                    report = audit(source, eps=[config.eps], method=config.method, read=read)
            except (CollapseProbeError, OSError) as exc:
                # One file's problem is that file's failed check, never a crashed gate.
                checks.append(GateCheck(checkpoint=source, head="", status="failed",
                                        message=f"cannot audit: {_for_gate(exc)}",
                                        eps=config.eps))
                continue
            for checkpoint in report.checkpoints:
                for head in checkpoint.heads:
                    heads_seen.add(head.name)
                    checks.append(_check(source, head.name, head.result_at(config.eps).unique,
                                         head.num_prototypes, config))
    for name in config.heads:
        if name not in heads_seen:
            found = ", ".join(sorted(heads_seen)) or "none"
            checks.append(GateCheck(
                checkpoint=config.source or "config", head=name, status="failed", eps=config.eps,
                floor=config.heads[name],
                message=f"no checkpoint has a head named {name!r} (heads found: {found})."))
    outcome = GateOutcome(config=config, checks=tuple(checks))
    log.info("gate: %d checks, %d failed", len(checks), len(outcome.failures))
    return outcome


def _gate_option(name: str, value: object = None) -> str:
    """How gate messages name an option: as the key of the gate's configuration that does the
    same; the gate never unpickles fully, so trust points at ``audit``."""
    if name == "trust":
        return "`collapse-probe audit --trust-checkpoint` (the gate itself never unpickles fully)"
    if value is None:
        return f"{name} (in the gate configuration)"
    return f'{name} = "{value}" in the gate configuration'


def _for_gate(exc: BaseException) -> str:
    """The error's first line (its options were named as configuration keys while it was raised)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _check(source: str, head: str, unique: int, num_prototypes: int, config: GateConfig) -> GateCheck:
    utilization = unique / num_prototypes
    floor = config.floor_for(head)
    measured = (f"{unique}/{num_prototypes} unique = {100 * utilization:.2f} % at eps "
                f"{config.eps:g}")
    status = head_status(utilization, floor)
    if floor is None:
        message = f"{measured} (no floor for this head)"
    elif status == "failed":
        message = f"{measured} < floor {100 * floor:.2f} %"
    else:
        message = f"{measured} >= floor {100 * floor:.2f} %"
    return GateCheck(checkpoint=source, head=head, status=status, message=message, eps=config.eps,
                     floor=floor, utilization=utilization, unique=unique,
                     num_prototypes=num_prototypes)


def _exists(source: str) -> bool:
    try:
        return Path(source).exists()
    except OSError:
        return False


def _expand(spec: str, base_dir: Path) -> tuple[list[str], str]:
    """(sources to audit, "") or ([], why the entry fails)."""
    path = Path(spec).expanduser()
    full = path if path.is_absolute() else base_dir / path
    if any(ch in spec for ch in _GLOB_CHARS):
        matches = sorted(m for m in glob.glob(str(full), recursive=True) if Path(m).is_file())
        if not matches:
            return [], f"glob {spec!r} matched no file (relative to {base_dir})."
        return matches, ""
    try:
        os.lstat(full)  # a symlink loop or broken link is there: the audit names the problem
        exists = True
    except FileNotFoundError:
        exists = False
    except OSError as exc:  # a name too long for the file system, a permission error
        return [], f"checkpoint {spec!r} cannot be looked up ({exc.strerror or exc})."
    if exists:
        return [str(full)], ""
    if "/" in spec or "\\" in spec or spec.lower().endswith(_PATH_ENDINGS):
        return [], f"checkpoint {spec!r} does not exist (looked for {full})."
    return [spec], ""  # a zoo or example name: audit() resolves it (and fails if unknown)


def checkpoint_files(config: GateConfig) -> list[Path]:
    """The existing files the gate of ``config`` will read (paths and glob matches; zoo and
    example names are not files here). Outputs are checked against them before the run."""
    files: list[Path] = []
    for spec in config.checkpoints:
        sources, problem = _expand(spec, config.base_dir)
        files += [Path(s) for s in sources if not problem and Path(s).is_file()]
    return files
