"""Comparing two runs of the results store: what got slower, bigger or less accurate."""

from __future__ import annotations

from pathlib import Path

from edgeship.errors import EdgeshipError


def compare_runs(results: Path, base: str | None, new: str | None, tag: str | None = None, thresholds: list[str] | None = None) -> int:
    raise EdgeshipError("`invoke compare` is not built yet in this checkout")
