"""jetson target, host side: the TensorRT op check on crafted models, the engine cache key,
the workspace option, and the labelled fallback that runs the artifact's own ONNX."""

from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import TensorProto, helper

from edgeship.errors import EdgeshipError
from targets.jetson import parse_workspace
from targets.tensorrt_ops import SUPPORTED, UNSUPPORTED, check_model, describe_problems


def _model(nodes, opset=17, inputs=None, outputs=None):
    graph = helper.make_graph(nodes, "g", inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 3])],
                              outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8  # any ONNX Runtime reads it
    return model


def test_supported_ops_pass_and_are_counted():
    report = check_model(_model([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Sigmoid", ["r"], ["y"])]))
    assert report["supported"] and report["unsupported"] == [] and report["tensorrt"] == "10.3"
    assert report["ops"] == {"Relu": {"count": 1, "supported": True}, "Sigmoid": {"count": 1, "supported": True}}


def test_an_unsupported_op_is_named_with_its_node():
    report = check_model(_model([helper.make_node("Relu", ["x"], ["r"], name="relu0"), helper.make_node("Det", ["r"], ["y"], name="det0")]))
    assert not report["supported"]
    assert report["unsupported"] == [{"node": "det0", "op": "Det", "reason": "not supported by TensorRT's ONNX parser"}]
    assert describe_problems(report) == "Det (not supported by TensorRT's ONNX parser; node 'det0')"


def test_ops_added_after_the_pinned_tensorrt_are_unsupported():
    report = check_model(_model([helper.make_node("HannWindow", ["x"], ["y"], name="w")]))
    assert report["unsupported"][0]["reason"] == "only from TensorRT 10.4"


def test_ops_inside_subgraphs_and_custom_domains_are_checked():
    then_branch = helper.make_graph([helper.make_node("Unique", ["x"], ["u"], name="inner_unique")], "then", [],
                                    [helper.make_tensor_value_info("u", TensorProto.FLOAT, None)])
    else_branch = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [],
                                    [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)])
    nodes = [helper.make_node("If", ["c"], ["y"], then_branch=then_branch, else_branch=else_branch, name="if0"),
             helper.make_node("FusedGemm", ["x"], ["z"], domain="com.microsoft", name="fused")]
    model = _model(nodes, inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [3]),
                                  helper.make_tensor_value_info("c", TensorProto.BOOL, [])])
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    found = {(u["node"], u["op"]) for u in check_model(model)["unsupported"]}
    assert found == {("inner_unique", "Unique"), ("fused", "com.microsoft.FusedGemm")}


def test_an_opset_beyond_the_parser_is_a_problem():
    report = check_model(_model([helper.make_node("Relu", ["x"], ["y"])], opset=22))
    assert not report["supported"] and "opset 22" in report["problems"][0] and "--opset 20" in report["problems"][0]


def test_the_supported_and_unsupported_tables_do_not_overlap():
    assert not SUPPORTED & set(UNSUPPORTED)
    assert {"Conv", "Gemm", "Clip", "GlobalAveragePool", "Reshape", "Relu", "Flatten"} <= SUPPORTED


@pytest.mark.parametrize("value,expected", [("1024", "1024"), ("16", "16")])
def test_workspace_takes_whole_mib(value, expected):
    assert parse_workspace(value) == expected


@pytest.mark.parametrize("value", ["0", "8", "1.5", "lots", "70000"])
def test_workspace_refuses_nonsense_in_one_line(value):
    from edgeship.convert.request import resolve_options
    from targets import TARGETS

    with pytest.raises(EdgeshipError) as error:
        resolve_options(TARGETS["jetson"], "fp16", {"workspace": value})
    assert "workspace" in str(error.value) and "\n" not in str(error.value)


def test_gpus_is_refused_for_targets_without_a_gpu_build(tmp_path):
    import onnx

    from edgeship.convert import Request, plan

    model = tmp_path / "m.onnx"
    onnx.save(_model([helper.make_node("Relu", ["x"], ["y"])]), str(model))
    with pytest.raises(EdgeshipError, match="--gpus is only used by targets that build on a GPU"):
        plan(Request(target="onnx", model=model, gpus=True))


# -- the engine cache key ------------------------------------------------------------------
BASE = dict(onnx_sha256="a" * 64, tensorrt_version="10.3.0.30", gpu_name="Orin (nvgpu)", compute_capability="8.7",
            precision="fp16", workspace_mib=1024)


# The key of BASE, as every board running this runtime has computed it: a change of the key's
# recipe orphans every engine in the boards' caches, so it must be a deliberate change here too.
BASE_KEY = "2ff159bb9eff32126b2b9afec3edfc9c9deef2921f1739bd5892b1006f108ecd"


def test_the_cache_key_is_stable_across_releases():
    from edgeship_runtime.trt_engine import cache_key

    assert cache_key(**BASE) == BASE_KEY
    assert cache_key(**{**BASE, "workspace_mib": "1024", "compute_capability": 8.7}) == BASE_KEY  # as read from JSON or a driver


@pytest.mark.parametrize("field,other", [("onnx_sha256", "b" * 64), ("tensorrt_version", "10.3.0.26"), ("gpu_name", "NVIDIA H100 80GB HBM3"),
                                         ("compute_capability", "9.0"), ("precision", "int8"), ("workspace_mib", 2048)])
def test_each_input_of_the_engine_changes_the_key(field, other):
    from edgeship_runtime.trt_engine import cache_key

    assert cache_key(**{**BASE, field: other}) != cache_key(**BASE)


def test_calibration_data_keys_int8_engines_only():
    from edgeship_runtime.trt_engine import cache_key

    int8 = {**BASE, "precision": "int8"}
    assert cache_key(**int8, calibration_sha256="c" * 64) != cache_key(**int8, calibration_sha256="d" * 64)
    assert cache_key(**BASE, calibration_sha256="c" * 64) == cache_key(**BASE)  # fp16 ignores calibration


def test_an_unknown_precision_is_refused():
    from edgeship_runtime.errors import ArtifactError
    from edgeship_runtime.trt_engine import cache_key

    with pytest.raises(ArtifactError, match="precision 'int4'"):
        cache_key(**{**BASE, "precision": "int4"})


def test_the_engine_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    from edgeship_runtime.trt_engine import cache_dir

    monkeypatch.setenv("EDGESHIP_ENGINE_CACHE", str(tmp_path / "engines"))
    assert cache_dir() == tmp_path / "engines"
    assert cache_dir(tmp_path / "explicit") == tmp_path / "explicit"


# -- fallback: the artifact's own ONNX on ONNX Runtime's CPU provider -----------------------
def _jetson_artifact(tmp_path):
    import onnx

    folder = tmp_path / "digits-jetson-fp16-0123"
    folder.mkdir()
    onnx.save(_model([helper.make_node("Relu", ["x"], ["y"])], inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                     outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])]), str(folder / "model.onnx"))
    from edgeship_runtime.artifact import sha256_file

    manifest = {"target": "jetson", "runtime_backend": "tensorrt", "options": {"quant": "fp16"},
                "artifact": {"file": "model.onnx", "sha256": sha256_file(folder / "model.onnx")},
                "source": {"sha256": "s" * 64}, "inputs": [{"name": "x", "shape": [1, 3]}], "outputs": [{"name": "y", "shape": [1, 3]}],
                "files": {"model.onnx": sha256_file(folder / "model.onnx")}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_without_a_gpu_the_fallback_runs_the_same_onnx_on_the_cpu_and_says_so(tmp_path):
    from edgeship_runtime.select import choose

    folder = _jetson_artifact(tmp_path)
    artifact, cls, record = choose(folder, allow_cpu_fallback=True, available=["cpu"])
    assert cls.name == "onnxruntime" and artifact.path == folder and artifact.model_file == folder / "model.onnx"
    assert record["cpu_fallback"] and record["requested"]["backend"] == "tensorrt" and record["used"]["backend"] == "onnxruntime"
    assert "nvidia_gpu" in record["reason"] and "CPU provider" in record["reason"]
    with cls(artifact, threads=1) as backend:
        out = backend.infer({"x": np.array([[-1.0, 0.5, 2.0]], np.float32)})
    assert out["y"].tolist() == [[0.0, 0.5, 2.0]]


def test_without_a_gpu_and_no_fallback_flag_it_fails_clearly(tmp_path):
    from edgeship_runtime.errors import RuntimeUnavailable
    from edgeship_runtime.select import choose

    with pytest.raises(RuntimeUnavailable, match="lacks.*--allow-cpu-fallback$"):
        choose(_jetson_artifact(tmp_path), allow_cpu_fallback=False, available=["cpu"])


def test_prepare_reports_a_board_without_a_gpu(tmp_path, capsys):
    from edgeship_runtime.cli import main

    folder = _jetson_artifact(tmp_path)
    assert main(["prepare", str(folder)]) == 2
    assert "no NVIDIA GPU" in capsys.readouterr().err
    assert main(["prepare", "--allow-cpu-fallback", str(folder)]) == 0
    document = json.loads(capsys.readouterr().out)
    entry = document["artifacts"][0]
    assert document["prepared"] == 0 and entry["cpu_fallback"] and "ONNX Runtime" in entry["skipped"]
