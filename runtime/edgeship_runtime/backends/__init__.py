"""Backends by name. Each module imports its vendor SDK only when a backend loads."""

from __future__ import annotations

import importlib

from edgeship_runtime.errors import ArtifactError

BACKENDS = {
    "litert": "edgeship_runtime.backends.litert:LiteRTBackend",
    "edgetpu": "edgeship_runtime.backends.litert:EdgeTPUBackend",
    "onnxruntime": "edgeship_runtime.backends.onnxruntime:OnnxRuntimeBackend",
    "rknnlite": "edgeship_runtime.backends.rknnlite:RKNNLiteBackend",
    "tensorrt": "edgeship_runtime.backends.tensorrt:TensorRTBackend",
}


def backend_class(name: str):
    if name not in BACKENDS:
        raise ArtifactError(f"unknown runtime backend {name!r}; this runtime knows {', '.join(sorted(BACKENDS))}: upgrade edgeship-runtime")
    module, _, attribute = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def open_backend(artifact, threads=None, **options):
    """An unloaded backend for the artifact's manifest `runtime_backend`."""
    return backend_class(artifact.backend)(artifact, threads=threads, **options)
