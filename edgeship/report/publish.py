"""The run report (report.html and report.md) from the results store."""

from __future__ import annotations

from pathlib import Path

from edgeship.errors import EdgeshipError


def write_report(results: Path, run: str | None = None) -> list[Path]:
    raise EdgeshipError("`invoke report` is not built yet in this checkout; the main job writes results/<run>/report.md")
