"""coral target in its image: full-int8 TFLite with uint8 I/O for the Edge TPU, the op placement
predicted from Coral's table (printed and in ops.json), the compiler step where the image has
edgetpu_compiler and "not compiled for the Edge TPU" where it has not; on both examples, the real
PP-OCR text orientation classifier and crafted models with an op the Edge TPU lacks. The board
runtime then runs a coral artifact as a board without an Edge TPU does: its own int8 model on
LiteRT's CPU, labelled as a fallback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from targets.coral import COMPILED_FILE, NOT_COMPILED
from tests.support import ROOT, run_cli, tiny_cnn

EXAMPLES = ("digits", "mobilenetv2", "ppocr-cls")


@pytest.fixture(scope="session")
def coral_image(docker_client):
    from edgeship.images.build import build
    from edgeship.images.locks import load_spec

    return build(docker_client, load_spec("coral"))


@pytest.fixture(scope="session")
def image_has_compiler(coral_image, docker_client) -> bool:
    """Whether this coral image was built with Google's edgetpu_compiler (docs/coral.md)."""
    output = docker_client.containers.run(coral_image.tags[0], ["python", "-c", "import shutil; print(shutil.which('edgetpu_compiler'))"],
                                          network_mode="none", remove=True)
    return output.decode().strip() != "None"


@pytest.fixture(scope="session")
def coral_artifacts(coral_image, example_dirs, docker_client, tmp_path_factory):
    """artifact(example) -> the example converted for coral (int8, with its data, task and shapes)."""
    from edgeship.convert import convert
    from edgeship.examples import build_examples, example_request

    out, done = tmp_path_factory.mktemp("coral-artifacts"), {}

    def artifact(example: str) -> Path:
        if example not in done:
            folder = example_dirs.get(example) or build_examples(ROOT / "examples", names=(example,))[0]
            done[example] = convert(example_request(folder, "coral", "int8", out, True), client=docker_client)
        return done[example]

    return artifact


def read(folder: Path, name: str) -> dict:
    return json.loads((folder / name).read_text())


@pytest.mark.parametrize("example", EXAMPLES)
def test_the_examples_and_ppocr_cls_convert_with_their_edge_tpu_placement_predicted(coral_artifacts, image_has_compiler, example):
    artifact = coral_artifacts(example)
    manifest, ops, shipped = read(artifact, "manifest.json"), read(artifact, "ops.json"), read(artifact, "edgetpu.json")
    predicted = ops["edgetpu"]["predicted"]
    output, figures = next(iter(manifest["accuracy"]["outputs"].items()))
    labelled = manifest["accuracy"].get("labelled")
    first = predicted["first_cpu_op"]
    print(f"{example}: {predicted['tpu_ops']} ops on the Edge TPU, {predicted['cpu_ops']} on the CPU, first CPU op "
          f"{first and (first['index'], first['op_name'])}, {len(predicted['compile_blockers'])} compile blockers; {output!r} cosine min "
          f"{figures['cosine_min']:.5f}, top-1 agreement {figures.get('top1_agreement')}"
          + (f", labelled {labelled['fp32']['accuracy']:.2%} -> {labelled['converted']['accuracy']:.2%}" if labelled else ""))

    # the tflite target's full-int8 model, shaped for the Edge TPU: uint8 I/O, batch 1, static shapes
    assert (manifest["target"], manifest["runtime_backend"], manifest["artifact"]["file"]) == ("coral", "edgetpu", "model.tflite")
    defaults = {"quant": "int8", "io_dtype": "uint8", "edgetpu_runtime": "14", "weights": "per-channel"}
    assert {key: manifest["options"][key] for key in defaults} == defaults
    for tensor in ops["inputs"] + ops["outputs"]:
        assert tensor["dtype"] == "uint8" and tensor["shape"][0] == 1 and all(d > 0 for d in tensor["shape"]), tensor
    assert manifest["accuracy"]["measured_with"].startswith("the int8 model.tflite on LiteRT's CPU kernels")

    # every op of the model has its predicted place, in execution order; the split is one boundary
    assert [entry["index"] for entry in predicted["ops"]] == list(range(ops["op_count"]))
    assert predicted["tpu_ops"] + predicted["cpu_ops"] == ops["op_count"]
    places = [entry["placement"] for entry in predicted["ops"]]
    split = predicted["split"]["index"] if predicted["split"] else len(places)
    assert all(place == "cpu" for place in places[split:]) and "cpu" not in places[1:split]
    assert shipped["predicted"]["tpu_ops"] == predicted["tpu_ops"] and "edgetpu.json" in manifest["files"]
    assert "edgetpu_compiler.log" in manifest["logs"] and "edgetpu_compiler.log" not in manifest["files"]

    if example in ("digits", "mobilenetv2"):  # convolutions, pooling, adds, fully connected: all in Coral's table
        assert predicted["cpu_ops"] == 0 and predicted["compile_blockers"] == []
    else:  # PP-OCR's MobileNetV3: hard-swish is not in the table, and its 2x1-stride depthwise convs become grouped convs
        assert (first["index"], first["op_name"]) == (3, "HARD_SWISH") and predicted["tpu_ops"] == 3
        grouped = [b for b in predicted["compile_blockers"] if b["reason"].startswith("grouped convolution")]
        assert grouped and all("strides 2x1" in b["reason"] for b in grouped)
    if example != "mobilenetv2":  # trained models keep their accuracy (MobileNetV2's weights are random)
        assert manifest["accuracy"]["passed"] and labelled["converted"]["accuracy"] >= labelled["fp32"]["accuracy"] - 0.02

    if image_has_compiler:
        assert shipped["compiled"] and COMPILED_FILE in manifest["files"]
    else:
        assert (shipped["compiled"], shipped["status"], shipped["file"]) == (False, NOT_COMPILED, None)
        assert COMPILED_FILE not in manifest["files"] and not (artifact / COMPILED_FILE).exists()
        assert (artifact / "edgetpu_compiler.log").read_text().startswith(NOT_COMPILED)


def test_invoke_convert_prints_the_placement_and_in_one_line_how_to_get_the_compiler(coral_image, image_has_compiler, example_dirs, tmp_path):
    digits = example_dirs["digits"]
    result = run_cli("convert", "--target", "coral", "--model", str(digits / "model.onnx"), "--calib", str(digits / "calib"),
                     "--eval", str(digits / "eval.npz"), "--labels", str(digits / "labels.txt"), "--out", str(tmp_path), cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert any(line.startswith("edgeship: Edge TPU placement predicted from Coral's op table (runtime 14): 9 of 9 ops on the Edge TPU")
               for line in lines), result.stdout
    about_compiler = [line for line in lines if line.startswith("edgeship: ") and ("edgetpu_compiler" in line or NOT_COMPILED in line)]
    assert len(about_compiler) == 1, about_compiler
    if not image_has_compiler:
        assert NOT_COMPILED in about_compiler[0] and "docs/coral.md" in about_compiler[0]


def crafted(folder: Path, middle: list, middle_weights=(), channels_after: int = 8) -> Path:
    """input [1,3,16,16] -> Conv 8 -> Relu -> `middle` -> Conv 8 -> Relu -> GlobalAveragePool -> Flatten -> Gemm 4,
    seeded weights, with 8 calibration samples beside it."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.3, name) for name, shape in (
        ("w1", (8, 3, 3, 3)), ("b1", (8,)), ("w2", (8, channels_after, 3, 3)), ("b2", (8,)), ("fc_w", (8, 4)), ("fc_b", (4,)))]
    nodes = [helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c1"], ["r1"]),
             *middle,
             helper.make_node("Conv", ["m", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("GlobalAveragePool", ["r2"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"])]
    graph = helper.make_graph(nodes, "crafted", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4])], weights + list(middle_weights))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    folder.mkdir(parents=True)
    onnx.save(model, str(folder / "model.onnx"))
    (folder / "calib").mkdir()
    for index in range(8):
        np.save(folder / "calib" / f"{index:03d}.npy", rng.uniform(0, 1, (1, 3, 16, 16)).astype(np.float32))
    return folder


def transposed_conv_weights():
    rng = np.random.default_rng(1)
    return [numpy_helper.from_array(rng.standard_normal((8, 8, 2, 2)).astype(np.float32) * 0.3, "wt"),
            numpy_helper.from_array(rng.standard_normal(8).astype(np.float32) * 0.1, "bt")]


@pytest.mark.parametrize("case", ["leaky relu", "transposed conv on runtime 12"])
def test_a_model_with_an_op_the_edge_tpu_lacks_is_predicted_to_split_exactly_there(coral_image, docker_client, tmp_path, case):
    from edgeship.convert import Request, convert

    if case == "leaky relu":  # LEAKY_RELU has an int8 kernel in TFLite but is not in Coral's table
        folder, op, options = crafted(tmp_path / "leaky", [helper.make_node("LeakyRelu", ["r1"], ["m"], alpha=0.1)]), "LEAKY_RELU", {}
    else:  # TRANSPOSE_CONV maps from runtime 13 on; int8 I/O, since the uint8 input's QUANTIZE also needs 13
        # (onnx2tf reads a ConvTranspose only with its kernel_shape attribute)
        folder = crafted(tmp_path / "transposed", [helper.make_node("ConvTranspose", ["r1", "wt", "bt"], ["m"], strides=[2, 2], kernel_shape=[2, 2])],
                         transposed_conv_weights())
        op, options = "TRANSPOSE_CONV", {"edgetpu_runtime": "12", "io_dtype": "int8"}
    artifact = convert(Request(target="coral", model=folder / "model.onnx", quant="int8", calib=folder / "calib", options=options,
                               out=tmp_path / "out"), client=docker_client)
    predicted = read(artifact, "ops.json")["edgetpu"]["predicted"]
    names = [entry["op"] for entry in predicted["ops"]]
    print(case, list(zip(names, [entry["placement"] for entry in predicted["ops"]])))

    at = names.index(op)
    assert predicted["split"]["index"] == at and predicted["split"]["op_name"] == op
    assert [entry["placement"] for entry in predicted["ops"]] == ["tpu"] * at + ["cpu"] * (len(names) - at)
    assert predicted["first_cpu_op"]["index"] == at and predicted["tpu_ops"] == at
    if case != "leaky relu":
        assert "maps only from Edge TPU runtime 13 (target runtime 12" in predicted["split"]["reason"]


def test_a_batch_other_than_one_is_refused_in_one_line(coral_image, docker_client, tmp_path):
    from edgeship.convert import Request, convert
    from edgeship.errors import EdgeshipError

    model = tiny_cnn(tmp_path / "dynamic.onnx", batch="N")
    calib = tmp_path / "calib"
    calib.mkdir()
    np.save(calib / "0.npy", np.zeros((2, 1, 8, 8), np.float32))
    with pytest.raises(EdgeshipError, match=r"input 'input' has shape \[2, 1, 8, 8\]: the Edge TPU runs batch 1 only; convert with "
                                            r"--input-shape input:1,1,8,8"):
        convert(Request(target="coral", model=model, quant="int8", calib=calib, input_shapes=["input:2,1,8,8"], out=tmp_path / "out"),
                client=docker_client)


def runtime(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeship_runtime.cli", *[str(a) for a in args]], capture_output=True, text=True, timeout=600)


def test_a_board_without_an_edge_tpu_runs_the_coral_artifact_on_the_cpu_labelled(coral_artifacts):
    artifact = coral_artifacts("digits")
    detect = json.loads(runtime("detect").stdout)
    assert detect["accelerators"]["edgetpu"]["present"] is False and "edgetpu" not in detect["available"]

    refused = runtime("check", artifact)
    assert refused.returncode == 2 and "runs on edgetpu (edgetpu), which this board lacks" in refused.stderr
    check = runtime("check", artifact, "--allow-cpu-fallback")
    report = json.loads(check.stdout)
    assert check.returncode == 0 and report["passed"] and report["backend"] == "litert"
    assert report["fallback"]["cpu_fallback"] is True and report["fallback"]["requested"]["backend"] == "edgetpu"
    assert report["fallback"]["used"]["artifact_sha256"] == report["fallback"]["requested"]["artifact_sha256"]
    compiled = COMPILED_FILE in read(artifact, "manifest.json")["files"]
    assert report["compatibility"]["status"] == ("no-runtime" if compiled else "not-compiled")
    bench = json.loads(runtime("bench", artifact, "--allow-cpu-fallback", "--min-runs", 5, "--min-s", 0.1).stdout)
    assert bench["accelerator"] == "cpu" and bench["backend"] == "litert" and bench["fallback"]["cpu_fallback"] is True


@pytest.mark.edgetpu_compiler
def test_the_compiler_in_the_image_compiles_digits_as_predicted(coral_artifacts, image_has_compiler):
    if not image_has_compiler:
        pytest.skip("this coral image has no edgetpu_compiler (docs/coral.md: give it Google's .deb)")
    artifact = coral_artifacts("digits")
    record = read(artifact, "ops.json")["edgetpu"]
    assert record["compiled"] and (artifact / COMPILED_FILE).is_file() and COMPILED_FILE in read(artifact, "manifest.json")["files"]
    assert record["compiler"]["version"].startswith("16.") and record["comparison"]["agree"] is True, record["comparison"]
    assert "Operator" in (artifact / "edgetpu_compiler.log").read_text()
