"""Fixtures every tier shares, and the hardware markers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import tiny_cnn


@pytest.fixture
def tiny_model(tmp_path) -> Path:
    return tiny_cnn(tmp_path / "tiny.onnx")


def _hardware() -> set[str]:
    from edgeship_runtime.detect import detect

    return set(detect()["available"])


def pytest_collection_modifyitems(config, items):
    """Tests marked gpu / npu / edgetpu run only where detect() finds that accelerator."""
    needs = {"gpu": "nvidia_gpu", "npu": "rknpu", "edgetpu": "edgetpu"}
    present = _hardware()
    for item in items:
        for marker, accelerator in needs.items():
            if marker in item.keywords and accelerator not in present:
                item.add_marker(pytest.mark.skip(reason=f"needs {accelerator}; this machine has {sorted(present)}"))
