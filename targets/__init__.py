"""The table of hardware targets, found by discovery: every module of this package that
defines `TARGET` is one. Adding a target means adding one module here and one image folder
under images/ (see docs/adding-a-target.md)."""

from __future__ import annotations

import importlib
import pkgutil

from targets.base import Converter, Option, Target, TargetError


def _discover() -> dict[str, Target]:
    found = {}
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        target = getattr(module, "TARGET", None)
        if isinstance(target, Target):
            found[target.name] = target
    return found


TARGETS: dict[str, Target] = _discover()


def get(name: str) -> Target:
    """The target called `name`, or a TargetError listing the known ones."""
    try:
        return TARGETS[name]
    except KeyError:
        raise TargetError(f"unknown target {name!r}; choose one of: {', '.join(sorted(TARGETS))} (see `invoke targets`)") from None


__all__ = ["TARGETS", "Converter", "Option", "Target", "TargetError", "get"]
