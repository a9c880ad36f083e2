"""The gate's configuration: ``[tool.collapse-probe]`` in ``pyproject.toml`` or a standalone TOML.

Example::

    [tool.collapse-probe]
    checkpoints = ["runs/vits16/checkpoint.pth", "runs/*/checkpoint0100.pth", "dino_vits16"]
    eps = 0.025              # the gate's distance threshold (default 0.025)
    method = "components"    # or "greedy"
    network = "teacher"      # or "student"
    fail_under = 0.01        # floor for every head not listed below (optional)

    [tool.collapse-probe.heads]
    head = 0.01              # per-head floors: utilization U/K in [0, 1]
    head_dense = 0.005

A standalone file holds the same keys at its top level (or under ``[tool.collapse-probe]``).
Relative paths and globs are relative to the configuration file's folder.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError, option
from ..options import NETWORKS, ReadOptions
from ..thresholds import GATE_EPS
from ..types import METHODS

__all__ = ["GateConfig", "load_gate_config", "parse_gate_config", "CONFIG_KEYS", "SECTION"]

SECTION = "tool.collapse-probe"
#: Every key the section accepts.
CONFIG_KEYS: tuple[str, ...] = ("checkpoints", "heads", "fail_under", "eps", "method", "network",
                                "format", "key", "cache_dir")


@dataclass(frozen=True)
class GateConfig:
    """A validated gate configuration.

    Attributes:
        checkpoints: paths, globs (``*``, ``?``, ``[``) or zoo / example names, as written.
        heads: head name -> utilization floor in [0, 1].
        fail_under: floor for heads not in ``heads``; None: such heads are not gated.
        eps: the gate's distance threshold on unit vectors.
        method: how to group (see :func:`collapse_probe.audit`).
        read: how to read the checkpoints: network, format, key and the cache folder of zoo
            downloads, relative to ``base_dir`` (never ``trust``: the gate does not unpickle).
        base_dir: the folder relative paths and globs are resolved against.
        source: the file the configuration came from ("" when built in code).
    """

    checkpoints: tuple[str, ...]
    heads: Mapping[str, float] = field(default_factory=dict)
    fail_under: float | None = None
    eps: float = GATE_EPS
    method: str = "components"
    read: ReadOptions = field(default_factory=ReadOptions)
    base_dir: Path = Path(".")
    source: str = ""

    def floor_for(self, head: str) -> float | None:
        """The floor of ``head``: its own entry, else ``fail_under``, else None (not gated)."""
        return self.heads.get(head, self.fail_under)


def load_gate_config(path: Path | str | None = None, *, cwd: Path | str | None = None) -> GateConfig:
    """Read the gate configuration.

    Args:
        path: a ``pyproject.toml`` (its ``[tool.collapse-probe]`` table) or a standalone TOML
            file; None: ``pyproject.toml`` in ``cwd``.
        cwd: the folder to look in when ``path`` is None (default: the current folder).

    Raises:
        ConfigError: the file is missing, not TOML, lacks the section, or the section is invalid.
    """
    if path is None:
        path = Path(cwd if cwd is not None else Path.cwd()) / "pyproject.toml"
        if not path.is_file():
            raise ConfigError(f"no pyproject.toml in {path.parent}: run in the project folder "
                              f"or pass {option('config', '<file>')}.")
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist.")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}).") from None
    section = data.get("tool", {}).get("collapse-probe") if isinstance(data.get("tool"), dict) else None
    if section is None:
        if path.name == "pyproject.toml":
            raise ConfigError(f"{path} has no [{SECTION}] table: add one (see the README's "
                              "\"CI gate\" section).")
        section = data
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [{SECTION}] must be a table.")
    return parse_gate_config(section, base_dir=path.parent.resolve(), source=str(path))


def parse_gate_config(section: Mapping[str, Any], *, base_dir: Path | str = ".",
                      source: str = "") -> GateConfig:
    """Validate a configuration table (already parsed TOML). Raises ConfigError with one line."""
    where = f"{source}: " if source else ""

    def error(message: str) -> ConfigError:
        return ConfigError(where + message)

    unknown = [k for k in section if k not in CONFIG_KEYS]
    if unknown:
        parts = []
        for name in unknown:
            close = difflib.get_close_matches(name, CONFIG_KEYS, n=1, cutoff=0.6)
            parts.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise error(f"unknown key{'s' if len(parts) > 1 else ''} in [{SECTION}]: "
                    f"{', '.join(parts)}; known keys: {', '.join(CONFIG_KEYS)}.")

    checkpoints = section.get("checkpoints")
    if isinstance(checkpoints, str):
        checkpoints = [checkpoints]
    if (not isinstance(checkpoints, list) or not checkpoints
            or not all(isinstance(c, str) and c.strip() for c in checkpoints)):
        raise error("`checkpoints` must be a non-empty list of paths, globs or zoo names, got "
                    f"{_show(section.get('checkpoints'))}.")

    heads_raw = section.get("heads", {})
    if not isinstance(heads_raw, dict):
        raise error(f"`heads` must be a table of head name = floor, got {_show(heads_raw)}.")
    heads = {str(name): _fraction(value, f"heads.{name}", error) for name, value in heads_raw.items()}

    fail_under = section.get("fail_under")
    if fail_under is not None:
        fail_under = _fraction(fail_under, "fail_under", error)
    if fail_under is None and not heads:
        raise error("nothing to gate: set `fail_under` (every head) or floors in "
                    f"[{SECTION}.heads].")

    eps = section.get("eps", GATE_EPS)
    if not _is_number(eps) or not 0.0 < float(eps) <= 2.0:
        raise error(f"`eps` must be a distance in (0, 2] between unit vectors (e.g. 0.025), "
                    f"got {_show(eps)}.")
    method = _choice(section.get("method", "components"), "method", METHODS, error)
    network = _choice(section.get("network", "teacher"), "network", NETWORKS, error)
    texts = {}
    for name in ("format", "key", "cache_dir"):
        value = section.get(name)
        if value is not None and not (isinstance(value, str) and value):
            raise error(f"`{name}` must be a non-empty string, got {_show(value)}.")
        texts[name] = value
    try:
        read = ReadOptions(network=network, format=texts["format"], key=texts["key"],
                           cache_dir=texts["cache_dir"])
    except InputError as exc:
        raise error(f"`format`: {exc}") from None
    return GateConfig(checkpoints=tuple(checkpoints), heads=heads, fail_under=fail_under,
                      eps=float(eps), method=method, read=read, base_dir=Path(base_dir),
                      source=source)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(float(value)))


def _fraction(value: Any, name: str, error: Any) -> float:
    if not _is_number(value) or not 0.0 <= float(value) <= 1.0:
        raise error(f"`{name}` must be a utilization fraction in [0, 1] (5 % is 0.05), "
                    f"got {_show(value)}.")
    return float(value)


def _choice(value: Any, name: str, choices: tuple[str, ...], error: Any) -> str:
    if value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1) if isinstance(value, str) else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise error(f"`{name}` must be one of {', '.join(repr(c) for c in choices)}, "
                    f"got {_show(value)}{hint}.")
    return str(value)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
