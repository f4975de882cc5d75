"""A board that runs one model on several runtimes (edgeship_extra_targets): a bench row per runtime, each
with the board's check of its own artifact (the checks table keeps one per board and model)."""

from __future__ import annotations

import json

from edgeship.report import store
from tests.unit.edgeship.report.runs import check_document, make_run

RUN = "20261130T100000Z"


def test_each_runtime_of_a_model_on_one_board_shows_its_own_check(tmp_path):
    results, artifacts = tmp_path / "results", tmp_path / "artifacts"
    folder = make_run(results, artifacts, RUN, real_board=False)
    board = json.loads((folder / "sim-rpi.json").read_text())
    digits = next(result for result in board["results"] if result["model"] == "digits")
    # the same model again on another runtime (onnx fp32, converted in the run), whose own check failed, read after the first
    onnx = json.loads(json.dumps(digits))
    conversion = next(row for row in json.loads((folder / "report.json").read_text())["conversions"]
                      if (row["model"], row["target"], row["quant"]) == ("digits", "onnx", "fp32"))
    onnx["bench"]["artifact"] = {**onnx["bench"]["artifact"], "target": "onnx", "quant": "fp32", "backend": "onnxruntime",
                                 "artifact_sha256": conversion["sha256"]}
    onnx["bench"]["backend"] = "onnxruntime"
    onnx["check"] = check_document(onnx["bench"]["artifact"], "onnxruntime", passed=False)
    board["results"].append(onnx)
    (folder / "sim-rpi.json").write_text(json.dumps(board))

    store.import_run(results, folder)
    rows = {(row["target"], row["quant"]): row for row in store.comparison_rows(results, RUN)
            if row["board"] == "sim-rpi" and row["model"] == "digits"}
    assert set(rows) == {("tflite", "int8"), ("onnx", "fp32")}
    assert rows[("tflite", "int8")]["check_passed"] == 1  # not the onnx check, though that one was read last
    assert rows[("onnx", "fp32")]["check_passed"] == 0
    assert rows[("onnx", "fp32")]["backend"] == "onnxruntime"
