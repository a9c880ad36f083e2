"""Where collapse-probe keeps downloaded and generated files."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir(override: Path | str | None = None) -> Path:
    """The cache folder: ``override``, else ``$COLLAPSE_PROBE_CACHE``, else
    ``$XDG_CACHE_HOME/collapse-probe``, else ``~/.cache/collapse-probe``. Not created here."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get("COLLAPSE_PROBE_CACHE")
    if env:
        return Path(env).expanduser()
    # Not platformdirs.user_cache_dir: on Linux it gives this very folder, but elsewhere a
    # different one per OS (~/Library/Caches, %LOCALAPPDATA%), and platformdirs is not a
    # dependency; one documented place everywhere, as torch.hub keeps ~/.cache/torch.
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "collapse-probe"
