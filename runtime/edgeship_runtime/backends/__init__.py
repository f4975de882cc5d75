"""Backends by name, found by discovery: each module of this package lists its backend
classes in `BACKENDS`. Modules import their vendor SDK only when a backend loads."""

from __future__ import annotations

import functools
import importlib
import pkgutil

from edgeship_runtime.backends.base import Backend
from edgeship_runtime.errors import ArtifactError


@functools.cache
def _registry() -> dict[str, type[Backend]]:
    found: dict[str, type[Backend]] = {}
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for cls in getattr(module, "BACKENDS", ()):
            found[cls.name] = cls
    return found


def all_backends() -> list[type[Backend]]:
    return list(_registry().values())


def backend_class(name: str) -> type[Backend]:
    registry = _registry()
    if name == "":  # the mcu target's artifacts: C source a microcontroller's firmware includes
        raise ArtifactError("the artifact names no runtime backend: it is for a microcontroller's firmware build (model_data.cc and "
                            "model_data.h), which edgeship-runtime does not run; convert the model for a board's target instead")
    if name not in registry:
        raise ArtifactError(f"unknown runtime backend {name!r}; this runtime knows {', '.join(sorted(registry))}: upgrade edgeship-runtime")
    return registry[name]


def open_backend(artifact, threads=None, **options) -> Backend:
    """An unloaded backend for the artifact's manifest `runtime_backend`."""
    return backend_class(artifact.backend)(artifact, threads=threads, **options)
