"""Where things are: the repository (images/, playbooks/, runtime/, targets/) and the cache."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_root() -> Path:
    """~/.cache/edgeship, or $EDGESHIP_CACHE (images' wheelhouses, runtime wheels, bundles, models)."""
    base = os.environ.get("EDGESHIP_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "edgeship")
    return Path(base)
