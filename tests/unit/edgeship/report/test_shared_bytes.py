"""Two targets' artifacts with the same bytes (jetson fp16 ships the ONNX file onnx fp32 ships) keep
their own rows: backend, image and conversion figures come from their own manifest and row."""

from __future__ import annotations

import json

from edgeship.report import store
from tests.unit.edgeship.report.runs import make_run, manifest

RUN = "20261130T100000Z"


def shared_bytes_run(tmp_path):
    """make_run's run plus a jetson fp16 conversion of digits whose file is onnx fp32's, byte for byte,
    listed after it (so its manifest is the one read last)."""
    results, artifacts = tmp_path / "results", tmp_path / "artifacts"
    folder = make_run(results, artifacts, RUN)
    report = json.loads((folder / "report.json").read_text())
    onnx_row = next(row for row in report["conversions"] if (row["model"], row["target"], row["quant"]) == ("digits", "onnx", "fp32"))
    jetson_folder = manifest(artifacts, "digits", "jetson", "fp16", "tensorrt", onnx_row["size_bytes"], onnx_row["sha256"])
    report["conversions"].append({**onnx_row, "target": "jetson", "quant": "fp16", "artifact": str(jetson_folder), "seconds": 99.0,
                                  "host_mean_ms": None, "host_p90_ms": None, "host_p10_ms": None, "host_p50_ms": None, "host_runs": None,
                                  "host_check_passed": None, "host_note": "needs cuda"})
    (folder / "report.json").write_text(json.dumps(report))
    store.import_run(results, folder)
    return results, onnx_row


def test_a_controller_row_takes_its_own_targets_backend_and_image_not_the_twin_files(tmp_path):
    results, onnx_row = shared_bytes_run(tmp_path)
    controller = {(row["target"], row["quant"]): row for row in store.table_rows(results, "benches", RUN)
                  if row["board"] == store.CONTROLLER and row["model"] == "digits"}
    assert controller["onnx", "fp32"]["backend"] == "onnxruntime"  # was tensorrt: jetson's manifest, matched by the bytes
    conversions = {(row["target"], row["quant"]): row for row in store.table_rows(results, "conversions", RUN) if row["model"] == "digits"}
    assert conversions["onnx", "fp32"]["image_tag"] == "edgeship/onnx:abc123"
    assert conversions["jetson", "fp16"]["image_tag"] == "edgeship/jetson:abc123"
    assert conversions["onnx", "fp32"]["artifact_sha256"] == conversions["jetson", "fp16"]["artifact_sha256"] == onnx_row["sha256"]


def test_the_comparison_never_gives_one_targets_row_the_others_conversion(tmp_path):
    results, onnx_row = shared_bytes_run(tmp_path)
    rows = [row for row in store.comparison_rows(results, RUN) if row["model"] == "digits"]
    onnx = next(row for row in rows if row["board"] == store.CONTROLLER and row["target"] == "onnx")
    assert onnx["backend"] == "onnxruntime" and onnx["convert_s"] == onnx_row["seconds"]  # not jetson's 99 s
    jetson = [row for row in rows if row["target"] == "jetson"]
    assert [(row["board"], row["quant"], row["convert_s"], row["labels"]) for row in jetson] == [
        (None, "fp16", 99.0, ["not benchmarked (needs cuda)"])]


def test_an_artifact_key_needs_every_part():
    assert store.artifact_key("onnx", "fp32", "digits", "ab" * 32) == ("onnx", "fp32", "digits", "ab" * 32)
    assert store.artifact_key("onnx", "fp32", "digits", None) is None
    assert store.artifact_key("onnx", "", "digits", "ab" * 32) is None
    assert store.artifact_key("jetson", "fp16", "digits", "ab" * 32) != store.artifact_key("onnx", "fp32", "digits", "ab" * 32)
