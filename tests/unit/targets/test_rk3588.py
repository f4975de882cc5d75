"""The rk3588 target's host-side parts: options, the toolkit's tables, build comparison."""

from __future__ import annotations

import numpy as np
import pytest

from targets import rk3588

# Lines as rknn-toolkit2 2.5.0's compiler prints them (digits int8 build on this machine).
LAYER_LOG = """\
D RKNN: [22:09:35.476]                                                         Network Layer Information Table
D RKNN: [22:09:35.476] ---------------------------------------------------------------------------------------------------
D RKNN: [22:09:35.476] ID   OpType             DataType Target InputShape                               OutputShape            Cycles(DDR/NPU/Total)    RW(KB)       FullName
D RKNN: [22:09:35.476] 0    InputOperator      INT8     NPU    \\                                        (1,1,8,8)              0/0/0                    0            InputOperator:input
D RKNN: [22:09:35.476] 1    ConvRelu           INT8     NPU    (1,1,8,8),(16,1,3,3),(16)                (1,16,8,8)             155/576/576              2            Conv:/0/Conv
D RKNN: [22:09:35.476] 3    MaxPool            INT8     NPU    (1,32,8,8)                               (1,32,4,4)             0/0/0                    2            MaxPool:/4/MaxPool
D RKNN: [22:09:35.476] 6    Reshape            INT8     CPU    (1,10,1,1),(2)                           (1,10)                 0/0/0                    0            Reshape:logits_mm_tp_rs
D RKNN: [22:09:35.476] 7    OutputOperator     INT8     CPU    (1,10)                                   \\                      0/0/0                    0            OutputOperator:logits
"""

ANALYSIS = """\
layer_name                                          simulator_error
                                             cos      euc        cos      euc
[Input] input                              1.00000 | 0.00000   1.00000 | 0.00000
[Conv] /0/Conv_output_0
[Clip] /2/Clip_output_0                    0.99994 | 5.61867   0.99994 | 5.61867
[Conv] logits_mm                           0.97414 | 2.18734   0.99996 | 0.08510
"""


def test_layer_table_names_the_cpu_layers():
    layers = rk3588.parse_layer_table(LAYER_LOG)
    assert [layer["op"] for layer in layers] == ["InputOperator", "ConvRelu", "MaxPool", "Reshape", "OutputOperator"]
    assert [layer["name"] for layer in layers if layer["target"] == "CPU"] == ["Reshape:logits_mm_tp_rs", "OutputOperator:logits"]


def test_accuracy_analysis_rows():
    rows = rk3588.parse_analysis(ANALYSIS)
    assert [row["layer"] for row in rows] == ["input", "/2/Clip_output_0", "logits_mm"]
    assert rows[-1] == {"layer": "logits_mm", "op": "Conv", "entire_cos": 0.97414, "entire_euc": 2.18734,
                        "single_cos": 0.99996, "single_euc": 0.0851}


@pytest.mark.parametrize("value, ok", [("123.675,116.28,103.53", True), ("0", True), ("", True), ("a,b", False), ("1,,2", False), ("nan", False)])
def test_mean_option_parses_numbers(value, ok):
    if ok:
        rk3588.parse_floats(value)
    else:
        with pytest.raises(ValueError):
            rk3588.parse_floats(value)


def test_std_of_zero_is_refused():
    with pytest.raises(ValueError, match="divides by zero"):
        rk3588.parse_std("58.4,0,57.4")


def test_free_form_option_error_is_one_line():
    import targets
    from edgeship.convert.request import resolve_options
    from edgeship.errors import EdgeshipError

    target = targets.get("rk3588")
    assert resolve_options(target, "int8", {"mean": "0", "std": "16"})["std"] == "16.0"
    with pytest.raises(EdgeshipError, match=r"option std='0' for target rk3588: a std of 0 divides by zero"):
        resolve_options(target, "fp16", {"std": "0"})
    with pytest.raises(EdgeshipError, match="choose one of: rk3588, rk3566"):
        resolve_options(target, "fp16", {"platform": "rk3399"})


def test_compare_builds_names_the_differing_bytes():
    base = bytearray(64)
    first, second = bytearray(base), bytearray(base)
    first[8:16] = (0x7F1E4E8B8212).to_bytes(8, "little")
    second[8:16] = (0x7F54D76B8212).to_bytes(8, "little")
    report = rk3588.compare_builds(bytes(first), bytes(second))
    assert not report["identical"] and report["address64_words"] == 2 and report["other_words"] == []
    assert report["runs"] == [{"start": 10, "end": 12, "first": "8b4e1e", "second": "6bd754"}]
    second[40] = 7  # a changed weight byte is not explained away
    assert rk3588.compare_builds(bytes(first), bytes(second))["other_words"] == [40]
    assert rk3588.compare_builds(bytes(first), bytes(first))["identical"]
    assert rk3588.compare_builds(b"ab", b"abc")["same_size"] is False


def test_folded_normalization_feeds_raw_values():
    from edgeship_runtime.backends.base import denormalize, to_layout

    normalized = np.full((1, 3, 2, 2), 0.5, np.float32)
    raw = denormalize(to_layout(normalized, [0, 2, 3, 1]), {"mean": [10.0, 20.0, 30.0], "std": [2.0, 4.0, 8.0]})
    assert raw.shape == (1, 2, 2, 3)
    assert raw[0, 0, 0].tolist() == [11.0, 22.0, 34.0]
