from __future__ import annotations

import numpy as np
import pytest

import targets
from edgeship.convert import parse_options, resolve_options
from edgeship.errors import EdgeshipError
from edgeship.lockfile import IMAGES_DIR
from edgeship_runtime.backends.base import from_layout, to_layout
from targets.tflite import channel_last_perm


def test_every_target_has_an_image_folder_and_its_functions():
    for target in targets.TARGETS.values():
        folder = IMAGES_DIR / target.image
        for name in ("Dockerfile", "requirements.in", "requirements.lock", "image.toml", "smoke.py"):
            assert (folder / name).is_file(), f"{folder / name} missing"
        assert target.default_quant in target.quantizations
        assert set(target.needs_calibration) <= set(target.quantizations)
        native = set(target.source_formats) - {"onnx"}
        for spec in (target.convert, target.op_report, target.io_map) + ((target.inspect, target.reference) if native else ()):
            module, _, function = spec.partition(":")
            assert module.startswith("targets.") and function


def test_unknown_target_lists_the_known_ones():
    with pytest.raises(EdgeshipError, match=r"unknown target 'jetsn'; choose one of: .*tflite"):
        targets.get("jetsn")


def test_options_follow_the_table():
    tflite = targets.get("tflite")
    assert resolve_options(tflite, "int8", {}) == {"io_dtype": "int8"}
    assert resolve_options(tflite, "int8", parse_options(["io-dtype=uint8"])) == {"io_dtype": "uint8"}
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
