"""RKNN Lite's compatibility check on the board (manifest toolkit version and chip vs the board's
librknnrt), which refuses a release before activation."""

from __future__ import annotations

import pytest

from edgeship_runtime.backends.rknnlite import RKNNLiteBackend
from edgeship_runtime.errors import ArtifactError

compatibility = RKNNLiteBackend.compatibility


def _manifest(toolkit="2.5.0", platform="rk3588"):
    return {"artifact": {"file": "model.rknn"}, "runtime_backend": "rknnlite", "toolchain": {"rknn-toolkit2": toolkit},
            "options": {"quant": "int8", "platform": platform}}


def _board(version=None, compatible=("radxa,rock-5b", "rockchip,rk3588")):
    return {"board": {"model": "Radxa ROCK 5B", "compatible": list(compatible)},
            "accelerators": {"rknpu": {"present": version is not None, "librknnrt": "/usr/lib/librknnrt.so" if version else None,
                                       "librknnrt_version": version}}}


def test_matching_librknnrt_is_accepted():
    assert compatibility(_manifest(), _board("2.5.0"))["status"] == "ok"
    assert compatibility(_manifest(), _board("2.6.1"))["status"] == "newer-runtime"
    assert compatibility(_manifest(), _board(None))["status"] == "no-runtime"


@pytest.mark.parametrize("runtime", ["1.6.0", "2.3.2"])
def test_older_librknnrt_is_refused_with_the_classic_message(runtime):
    with pytest.raises(ArtifactError) as refused:
        compatibility(_manifest(), _board(runtime))
    message = str(refused.value)
    assert "rknn-toolkit2 2.5.0" in message and f"is version {runtime}" in message
    assert "Invalid RKNN model version" in message and "install librknnrt 2.5.x" in message
    assert "\n" not in message


def test_model_for_another_chip_is_refused():
    with pytest.raises(ArtifactError, match=r"compiled for rk3588 but this board is rk3566.*--option platform=rk3566"):
        compatibility(_manifest(), _board("2.5.0", ("radxa,zero3", "rockchip,rk3566")))
    assert compatibility(_manifest(platform="rk3568"), _board("2.5.0", ("rockchip,rk3566",)))["status"] == "ok"
    assert compatibility(_manifest(), _board("2.5.0", ("xunlong,orangepi-5", "rockchip,rk3588s")))["status"] == "ok"  # RK3588S


def test_other_backends_have_nothing_to_match():
    from edgeship_runtime.backends import backend_class

    assert backend_class("litert").compatibility({"runtime_backend": "litert"}, _board()) is None
