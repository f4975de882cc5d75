from __future__ import annotations

import numpy as np
import pytest

import targets
from edgeship.convert.request import find_target, parse_options, resolve_options
from edgeship.errors import EdgeshipError
from edgeship.images.locks import load_spec
from edgeship_runtime.backends import backend_class
from edgeship_runtime.backends.base import from_layout, to_layout
from targets.base import Converter
from targets.tflite import channel_last_perm

REQUIRED = ("convert", "op_report", "io_map")
NATIVE = ("inspect", "reference")  # what a target that reads non-ONNX sources must add


def _overrides(cls: type, name: str) -> bool:
    return getattr(cls, name) is not getattr(Converter, name)


@pytest.mark.parametrize("name", sorted(targets.TARGETS))
def test_every_target_has_a_converter_its_images_and_its_backend(name):
    target = targets.TARGETS[name]
    assert issubclass(target.converter, Converter)
    missing = [method for method in REQUIRED if not _overrides(target.converter, method)]
    if set(target.source_formats) - {"onnx"}:
        missing += [method for method in NATIVE if not _overrides(target.converter, method)]
    assert not missing, f"{target.converter.__name__} leaves {missing} to the base class"
    assert target.default_quant in target.quantizations
    assert set(target.needs_calibration) <= set(target.quantizations)
    assert all(target.tolerances("generic", quant) for quant in target.quantizations)
    if target.runtime_backend:  # "": no board runtime (mcu: C source for a firmware build)
        backend_class(target.runtime_backend)  # the board runtime knows the backend
    for image in filter(None, (target.image, target.gpu_image)):
        spec = load_spec(image)
        assert spec.requirements_in.is_file()
        assert spec.smoke and all((spec.folder / smoke).is_file() for smoke in spec.smoke)
        if spec.lock.is_file():
            continue
        # A lock that needs an index this machine cannot reach (NVIDIA's, for TensorRT) may be
        # missing; asking for it must then say where to make it.
        assert spec.extra_index_urls, f"{spec.lock} is missing"
        with pytest.raises(EdgeshipError, match=rf"images.lock --target {image}` on a host that reaches {spec.extra_index_urls[0]}"):
            spec.lock_sha256()


def test_targets_are_found_by_discovery_and_unknown_ones_listed():
    assert {"tflite", "onnx", "rk3588", "jetson"} <= set(targets.TARGETS)
    with pytest.raises(EdgeshipError, match=r"unknown target 'jetsn'; choose one of: .*tflite"):
        find_target("jetsn")
    with pytest.raises(targets.TargetError):
        targets.get("jetsn")


def test_options_follow_the_table():
    tflite = targets.get("tflite")
    rescue_defaults = {"rescue": "off", "rescue_budget": "layers:8"}  # int8's rescue options (targets/rescue.py), off unless asked
    assert resolve_options(tflite, "int8", {}) == {"io_dtype": "int8", **rescue_defaults}
    assert resolve_options(tflite, "int8", parse_options(["io-dtype=uint8"])) == {"io_dtype": "uint8", **rescue_defaults}
    assert resolve_options(tflite, "fp32", {}) == {}
    with pytest.raises(EdgeshipError, match="has no option 'threads'"):
        resolve_options(tflite, "fp32", {"threads": "4"})
    with pytest.raises(EdgeshipError, match="not KEY=VALUE"):
        parse_options(["io_dtype"])


def test_channel_last_permutation_round_trips():
    assert channel_last_perm([1, 3, 224, 224], [1, 3, 224, 224]) is None
    perm = channel_last_perm([1, 3, 224, 224], [1, 224, 224, 3])
    assert perm == [0, 2, 3, 1]
    assert channel_last_perm(["?", 10], [1, 10]) is None
    value = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    moved = to_layout(value, channel_last_perm([2, 3, 4, 5], [2, 4, 5, 3]))
    assert moved.shape == (2, 4, 5, 3)
    np.testing.assert_array_equal(from_layout(moved, [0, 2, 3, 1]), value)
    with pytest.raises(ValueError, match="cannot map"):
        channel_last_perm([1, 3, 8, 8], [1, 8, 3, 9])


def test_the_worker_exit_says_whose_fix_it_is(capsys):
    """A RequestError is the user's line as it is, exit 2 (not remembered); anything else is the
    toolchain's, with its type, exit 3 (remembered for the cache key)."""
    from targets.base import REQUEST_EXIT, TOOLCHAIN_EXIT, RequestError, worker_exit
    from targets.jetson import UnsupportedByTensorRT

    for error, status, line in [(UnsupportedByTensorRT("m.onnx: TensorRT cannot import: Det\nmore"), REQUEST_EXIT,
                                 "edgeship-worker-error: m.onnx: TensorRT cannot import: Det"),
                                (RequestError("option mean has 2 values"), REQUEST_EXIT, "edgeship-worker-error: option mean has 2 values"),
                                (IndexError("list index out of range"), TOOLCHAIN_EXIT,
                                 "edgeship-worker-error: IndexError: list index out of range")]:
        try:
            raise error
        except Exception as raised:
            assert worker_exit(raised) == status
        assert capsys.readouterr().out.strip().splitlines()[-1] == line
