"""The table of hardware targets. Adding a target: one module here and one folder in images/."""

from __future__ import annotations

from targets import jetson, onnx, rk3588, tflite
from targets.base import Option, Target

TARGETS: dict[str, Target] = {target.name: target for target in (tflite.TARGET, onnx.TARGET, rk3588.TARGET, jetson.TARGET)}


def get(name: str) -> Target:
    """The target called `name`, or an EdgeshipError listing the known ones."""
    from edgeship.errors import EdgeshipError

    try:
        return TARGETS[name]
    except KeyError:
        raise EdgeshipError(f"unknown target {name!r}; choose one of: {', '.join(sorted(TARGETS))} (see `invoke targets`)") from None


__all__ = ["TARGETS", "Option", "Target", "get"]
