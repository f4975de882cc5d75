"""Converting a model for a target: the request and its host-side checks (request, inputs,
model_checks), the cache (cache, and hits for a request answered at once), the sandboxed
container run (container), the whole run (run) and what `invoke convert` prints (summary).

The names below are imported on first use: a cache hit (convert/hits.py) imports this package
without the model checks, onnx, numpy and the targets they pull in."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# summary first, as a name: the submodule of the same name would shadow a lazy one
from edgeship.convert.summary import summary

if TYPE_CHECKING:
    from edgeship.convert.request import Plan, Request, find_target, parse_options, plan
    from edgeship.convert.run import convert

_HOMES = {"Plan": "request", "Request": "request", "find_target": "request", "parse_options": "request", "plan": "request",
          "convert": "run"}

__all__ = ["Plan", "Request", "convert", "find_target", "parse_options", "plan", "summary"]


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
