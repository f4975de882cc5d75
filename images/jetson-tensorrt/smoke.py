"""Smoke test of the jetson-tensorrt image, after the jetson image's own: TensorRT's Python
bindings import (they load TensorRT's libraries; no GPU is needed for that)."""

import tensorrt

print("tensorrt", tensorrt.__version__)
