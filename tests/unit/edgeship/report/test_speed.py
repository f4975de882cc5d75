"""edgeship/report/speed.py: an int8/fp16 row against its fp32 sibling on the same board and backend."""

from __future__ import annotations

import pytest

from edgeship.report import store
from edgeship.report.speed import mark_speed_vs_fp32
from tests.unit.edgeship.report.runs import make_run


def row(quant: str, p50: float | None, board: str | None = "controller", target: str = "onnx", backend: str = "onnxruntime",
        fallback: bool = False, model: str = "ppocr-det") -> dict:
    return {"model": model, "board": board, "target": target, "quant": quant, "backend": backend, "accelerator": "cpu",
            "fallback": fallback, "p50_ms": p50, "mean_ms": p50, "labels": []}


def test_an_int8_artifact_slower_than_fp32_is_labelled_and_a_faster_one_is_not():
    slow, fast, fp32 = row("int8", 78.5, model="ppocr-det"), row("int8", 9.0, model="ppocr-rec"), row("fp32", 63.9, model="ppocr-det")
    rows = [slow, fast, fp32, row("fp32", 15.0, model="ppocr-rec")]
    mark_speed_vs_fp32(rows)
    assert slow["speed_vs_fp32"] == pytest.approx(78.5 / 63.9) and slow["labels"] == ["not faster than fp32 (1.23x its latency)"]
    assert fast["speed_vs_fp32"] == pytest.approx(0.6) and fast["labels"] == []
    assert fp32["speed_vs_fp32"] is None and fp32["labels"] == []


@pytest.mark.parametrize("sibling", [
    row("fp32", 10.0, board="rpi5"),                     # another board
    row("fp32", 10.0, backend="openvino"),               # another runtime
    row("fp32", 10.0, target="jetson"),                  # another target's artifact
    row("fp32", 10.0, fallback=True),                    # a CPU fallback stands in for something else
    row("fp32", None),                                   # not measured
])
def test_only_the_same_board_target_and_backend_give_a_ratio(sibling):
    fp16 = row("fp16", 50.0)
    mark_speed_vs_fp32([fp16, sibling])
    assert fp16["speed_vs_fp32"] is None and fp16["labels"] == []


def test_the_comparison_rows_carry_the_ratio(tmp_path):
    results = tmp_path / "results"
    store.import_run(results, make_run(results, tmp_path / "artifacts", "20261130T100000Z"))
    rows = {(r["model"], r["board"], r["target"], r["quant"]): r for r in store.comparison_rows(results, "20261130T100000Z")}
    int8 = rows["digits", store.CONTROLLER, "tflite", "int8"]  # runs.py: 0.04 ms against fp32's 0.05 ms, seeded noise
    assert int8["speed_vs_fp32"] == pytest.approx(0.8, abs=0.05) and not any("not faster" in label for label in int8["labels"])
    assert rows["digits", "sim-rpi", "tflite", "int8"]["speed_vs_fp32"] is None  # its fp32 sibling ran on another board


def test_the_latency_cell_shows_the_ratio():
    from edgeship.report.publish import comparison_cells

    int8 = {**row("int8", 9.0), "speed_vs_fp32": 0.6, "p90_ms": 10.0, "emulated": False, "source": "controller", "published": []}
    assert comparison_cells(int8)["latency"].endswith("ms (0.60x fp32)")
    assert comparison_cells({**int8, "speed_vs_fp32": None})["latency"].endswith("ms")
