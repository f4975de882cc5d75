"""Published figures of the CPU runtimes (Ultralytics' Raspberry Pi 5 table) and how a measured row that is
not that hardware is listed beside one: labelled with how it differs, never as a match."""

from __future__ import annotations

from edgeship.report.publish import _published_table
from edgeship.report.reference_figures import FIGURES, alongside, matching

PI5_ROW = {"model": "yolo11n", "board": "pi5", "source": "board", "board_model": "Raspberry Pi 5 Model B Rev 1.0",
           "compatible": ["raspberrypi,5-model-b", "brcm,bcm2712"], "accelerator": "cpu", "fallback": False, "target": "ncnn",
           "quant": "fp32", "backend": "ncnn", "mean_ms": 95.0, "input_shapes": {"images": [1, 3, 640, 640]}}


def test_the_pi5_table_holds_every_runtime_of_the_issue_with_its_source():
    pi5 = {figure.backends: figure.latency_ms for figure in FIGURES if figure.board == "Raspberry Pi 5 (CPU)" and figure.model == "yolo11n"}
    assert pi5 == {("openvino",): 81.192, ("ncnn",): 88.026, ("mnn",): 112.554, ("onnxruntime",): 168.082, ("litert",): 317.398}
    assert all("raspberry-pi.md" in f.url and "Ultralytics 8.3.39" in f.source for f in FIGURES if f.board == "Raspberry Pi 5 (CPU)")


def test_a_real_pi5_row_matches_its_runtimes_figure_and_no_other():
    assert [f.published_model for f in matching(PI5_ROW)] == ["YOLO11n NCNN (FP32)"]
    assert [f.published_model for f in matching({**PI5_ROW, "backend": "mnn", "target": "mnn"})] == ["YOLO11n MNN (FP32)"]
    assert alongside(next(f for f in FIGURES if f.published_model == "YOLO11n NCNN (FP32)"), PI5_ROW) is None  # a match, not a neighbour


def test_a_simulated_row_stands_beside_the_figure_labelled_as_not_the_hardware():
    ncnn = next(f for f in FIGURES if f.published_model == "YOLO11n NCNN (FP32)")
    simulated = {**PI5_ROW, "board": "sim-rpi", "simulated": True, "quant": "fp16"}
    assert matching(simulated) == []
    assert alongside(ncnn, simulated) == "simulated board: a container on this machine's CPU, not the hardware, fp16 here, fp32 published"
    assert alongside(ncnn, {**simulated, "backend": "mnn", "target": "mnn"}) is None  # another runtime
    assert alongside(ncnn, {**simulated, "model": "yolov8n"}) is None  # another network
    assert alongside(ncnn, {**simulated, "emulated": True, "quant": "fp32"}) == "emulated board (qemu), not the hardware"
    unrun = {"model": "yolov8n", "board": None, "source": None, "target": "rk3588", "quant": "int8", "backend": None, "mean_ms": None}
    rk3588 = next(f for f in FIGURES if f.model == "yolov8n" and f.accelerator == "rknpu")
    assert alongside(rk3588, unrun) == "converted here; no such hardware ran it"


def test_the_published_table_lists_the_simulated_rows_beside_their_figure():
    rows = [{**PI5_ROW, "board": "sim-rpi", "simulated": True, "quant": "fp16", "mean_ms": 412.0},
            {**PI5_ROW, "board": "sim-nuc", "simulated": True, "quant": "fp16", "backend": "openvino", "target": "openvino", "mean_ms": 150.0}]
    table = {row["published_model"]: row for row in _published_table(rows)}
    assert table["YOLO11n NCNN (FP32)"]["label"] == "published, not measured here"
    assert table["YOLO11n NCNN (FP32)"]["beside"] == (
        "no matching hardware in this run (a simulated board (a container on the controller), not the hardware); same network and runtime "
        "measured here: sim-rpi ncnn fp16 412 ms (simulated board: a container on this machine's CPU, not the hardware, fp16 here, fp32 published)")
    assert "sim-nuc openvino fp16 150 ms (simulated board" in table["YOLO11n OpenVINO (FP32)"]["beside"]
    assert "measured here" not in table["YOLO11n MNN (FP32)"]["beside"]  # no MNN row in this run
