"""What the main job converts: picked from the targets' tables and the inventory's boards."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import targets
from edgeship.fleet.sim import board_modes
from edgeship.main_job import MICRO, conversion_requests
from tests.support import ROOT, stand_in_example_dirs

NAMES = ("digits", "ppocr-det", "ppocr-cls", "ppocr-rec", "mobilenetv2", "yolov8n", "yolo11n")


def modes_of(requests, model: str) -> set[tuple[str, str]]:
    return {(request.target, request.quant) for request in requests if request.model.parent.name == model}


def test_the_inventorys_boards_name_the_modes_they_run():
    assert board_modes(ROOT / "inventory.ini") == {("rk3588", "int8"), ("tflite", "fp32"), ("jetson", "fp16"), ("onnx", "fp32"),
                                                   ("coral", "int8"), ("tflite", "fp16"),
                                                   ("ncnn", "fp16"), ("mnn", "fp16"),  # the Pi's edgeship_extra_targets
                                                   ("openvino", "fp16")}  # the x86 board's own


def test_real_models_get_each_targets_default_int8_and_the_boards_modes_speed_models_no_int8_of_their_own(tmp_path):
    boards = {("rk3588", "int8"), ("tflite", "fp16")}
    requests = conversion_requests(stand_in_example_dirs(tmp_path, NAMES), Path("artifacts"), boards)
    assert len(requests) == len({(r.model, r.target, r.quant) for r in requests})  # nothing twice
    board_targets = [t for t in targets.TARGETS.values() if t.runtime_backend]  # mcu (no board runtime) takes only MICRO's models
    for model in ("digits", "ppocr-det", "ppocr-rec"):
        expected = {(t.name, t.default_quant) for t in board_targets}
        expected |= {(t.name, "int8") for t in board_targets if "int8" in t.quantizations} | boards
        expected |= {("mcu", "int8")} if model in MICRO else set()
        assert modes_of(requests, model) == expected, model
    speed = {(t.name, t.default_quant) for t in board_targets} | boards
    assert modes_of(requests, "mobilenetv2") == modes_of(requests, "yolov8n") == speed
    assert not modes_of(requests, "ppocr-cls")  # --full only
    assert modes_of(requests, "yolo11n") == {("tflite", "fp16")}  # only where a published CPU figure names the runtime (LiteRT)
    assert all(r.calib for r in requests if r.quant == "int8") and not any(r.calib for r in requests if r.quant in ("fp32", "fp16"))
    rescuing = {r.target for r in requests if r.options.get("rescue") == "auto"}
    assert rescuing == {"onnx", "tflite", "rk3588", "jetson"}  # every int8 that offers the rescue asks for it; coral's cannot
    assert all(r.quant == "int8" for r in requests if r.options)


def test_quick_leaves_out_the_speed_models_and_full_takes_every_mode(tmp_path):
    examples = stand_in_example_dirs(tmp_path, NAMES)
    quick = conversion_requests(examples, Path("artifacts"), set(), quick=True)
    assert Counter(r.model.parent.name for r in quick).keys() == {"digits", "ppocr-det", "ppocr-rec"}
    full = conversion_requests(examples, Path("artifacts"), set(), full=True)
    board_targets = [t for t in targets.TARGETS.values() if t.runtime_backend]
    every = {(t.name, quant) for t in board_targets for quant in t.quantizations}
    assert modes_of(full, "ppocr-cls") == every and modes_of(full, "yolo11n") == {(t.name, t.default_quant) for t in board_targets}
    assert modes_of(full, "digits") == every | {("mcu", "int8")}


def test_a_speed_model_a_toolchain_cannot_take_is_reported_and_does_not_fail_the_job():
    from edgeship.main_job import job_problems

    failures = ["conversion yolov8n for rk3588 int8 failed: ToolkitError: rknn-toolkit2 build raised ValueError: IndexError",
                "conversion ppocr-det for onnx int8 failed: image onnx did not build"]
    problems, speed = job_problems(failures, fleet_exit=0)
    assert speed == failures[:1] and problems == failures[1:]
    problems, speed = job_problems(failures[:1], fleet_exit=2)
    assert len(problems) == 1 and "ansible-playbook exit 2" in problems[0] and speed == failures[:1]
    assert job_problems([], 0) == ([], [])


def test_tflite_sources_get_fp16_and_the_boards_modes_where_a_target_takes_them(tmp_path):
    """MediaPipe's models: rk3588 fp16 and int8 (the hand model), tflite the modes its source
    allows that the boards run (fp32 on rk3588/coral boards, fp16 on the Pi): no int8 from a
    compiled .tflite there."""
    boards = board_modes(ROOT / "inventory.ini")
    requests = conversion_requests(stand_in_example_dirs(tmp_path, ("hand-landmark", "face-detection", "selfie-segmentation")),
                                   Path("artifacts"), boards)
    assert modes_of(requests, "hand-landmark") == {("rk3588", "fp16"), ("rk3588", "int8"), ("tflite", "fp16"), ("tflite", "fp32")}
    assert modes_of(requests, "face-detection") == {("rk3588", "fp16"), ("rk3588", "int8"), ("tflite", "fp16"), ("tflite", "fp32")}
    assert modes_of(requests, "selfie-segmentation") == modes_of(requests, "face-detection")  # its kernel rewritten on both targets


def test_the_stateful_vad_model_is_converted_for_the_targets_that_carry_its_state(tmp_path):
    requests = conversion_requests(stand_in_example_dirs(tmp_path, ("vad",)), Path("artifacts"), board_modes(ROOT / "inventory.ini"))
    assert modes_of(requests, "vad") == {("onnx", "fp32"), ("onnx", "int8"), ("openvino", "fp16"), ("rk3588", "fp16"), ("rk3588", "int8"),
                                         ("jetson", "fp16")}
    assert all(request.calib is not None for request in requests if request.quant == "int8")


def test_yolo11n_is_converted_for_the_boards_cpu_runtimes_that_ultralytics_published_pi5_figures_for(tmp_path):
    """The report's published Pi 5 table (LiteRT, ONNX Runtime, OpenVINO, ncnn, MNN) gets measured rows of
    the same network: yolo11n in each of the inventory's board modes on those runtimes, and nowhere else."""
    requests = conversion_requests(stand_in_example_dirs(tmp_path, ("yolo11n",)), Path("artifacts"), board_modes(ROOT / "inventory.ini"))
    assert modes_of(requests, "yolo11n") == {("tflite", "fp16"), ("tflite", "fp32"), ("onnx", "fp32"), ("ncnn", "fp16"), ("mnn", "fp16"),
                                             ("openvino", "fp16")}
    assert not any(r.calib for r in requests)
