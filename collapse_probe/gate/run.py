"""Run the gate: audit every configured checkpoint and hold each head to its floor.

Fails closed: a missing file, a glob that matches nothing, an unreadable checkpoint or a head
named in the configuration that no checkpoint has is a failed check, never a pass.
"""

from __future__ import annotations

import glob
import logging
import os
import re
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from ..errors import CollapseProbeError
from ..trend.compute import reading
from .config import GateConfig

__all__ = ["GateCheck", "GateOutcome", "run_gate", "checkpoint_files", "STATUSES"]

log = logging.getLogger(__name__)

#: ``passed`` / ``failed``: a gated head, or a checkpoint-level problem (``failed``, head "");
#: ``not-gated``: a head with no floor (neither in ``heads`` nor covered by ``fail_under``).
STATUSES: tuple[str, ...] = ("passed", "failed", "not-gated")

_GLOB_CHARS = frozenset("*?[")
_PATH_ENDINGS = (".pth", ".pt", ".tar", ".ckpt", ".npy", ".npz", ".safetensors")


@dataclass(frozen=True)
class GateCheck:
    """One checkpoint x head (or a checkpoint or configuration problem, then ``head`` may be "").

    Attributes:
        checkpoint: the file or name audited (or the configuration entry that failed).
        head: the head's name; "" for a problem with the checkpoint itself.
        status: one of :data:`STATUSES`.
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
        return not self.failures and any(c.status == "passed" for c in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1


def run_gate(config: GateConfig, *, progress: Callable[[str], None] | None = None) -> GateOutcome:
    """Audit every checkpoint of ``config`` at ``config.eps`` and compare each head to its floor."""
    from ..audit import audit

    checks: list[GateCheck] = []
    heads_seen: set[str] = set()
    cache_dir = None
    if config.cache_dir is not None:
        cache = Path(config.cache_dir).expanduser()
        cache_dir = cache if cache.is_absolute() else config.base_dir / cache
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
                with reading(source) if _exists(source) else nullcontext():
                    report = audit(source, eps=[config.eps], method=config.method,
                                   network=config.network, format=config.format,
                                   key=config.key, cache_dir=cache_dir)
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


# Command-line options named by loader messages, and what the gate configuration has instead.
_OPTION_HINTS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"([Pp])ass --trust-checkpoint \(trust=True\)[^.;]*"),
     lambda match: ("T" if match[1] == "P" else "t") + "he gate never unpickles fully: if you "
     "trust the file's source, check it with `collapse-probe audit --trust-checkpoint`"),
    # Not the hint just written above.
    (re.compile(r"(?<!audit )--trust-checkpoint"), "`collapse-probe audit --trust-checkpoint`"),
    (re.compile(r"leave --(format|key|network) out"), r"leave \1 out of the gate configuration"),
    (re.compile(r"--(format|network) ([\w-]+(?:\.[\w-]+)*)"), r'\1 = "\2" in the gate configuration'),
    (re.compile(r"--key (<[^>]+>|[\w-]+(?:\.[\w-]+)*)"), r'key = "\1" in the gate configuration'),
    (re.compile(r"--(format|key|network)\b"), r"\1 in the gate configuration"),
)


def _for_gate(exc: BaseException) -> str:
    """The error's first line, with command-line options the gate does not have replaced by
    the configuration keys that do the same."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    for pattern, replacement in _OPTION_HINTS:
        text = pattern.sub(replacement, text)
    return text


def _check(source: str, head: str, unique: int, num_prototypes: int, config: GateConfig) -> GateCheck:
    utilization = unique / num_prototypes
    floor = config.floor_for(head)
    measured = (f"{unique}/{num_prototypes} unique = {100 * utilization:.2f} % at eps "
                f"{config.eps:g}")
    if floor is None:
        status, message = "not-gated", f"{measured} (no floor for this head)"
    elif utilization < floor:
        status, message = "failed", f"{measured} < floor {100 * floor:.2f} %"
    else:
        status, message = "passed", f"{measured} >= floor {100 * floor:.2f} %"
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
