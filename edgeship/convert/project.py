"""A project's conversions file (edgeship.toml): its matrix built and locked, and verified anywhere."""

from __future__ import annotations

from pathlib import Path

from edgeship.errors import EdgeshipError


def build_all(config: Path, out: Path | None, entries: list[str]) -> None:
    raise EdgeshipError("`invoke build` is not built yet in this checkout; convert with `invoke convert`")


def verify_all(config: Path, entries: list[str]) -> int:
    raise EdgeshipError("`invoke verify` is not built yet in this checkout")
