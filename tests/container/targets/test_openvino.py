"""openvino target: ONNX to OpenVINO IR (fp32, fp16 weights, NNCF int8) in its image, accuracy
through the board runtime's OpenVINO backend, on the real example models; and that backend run
the way a board runs it (inside the image, which has OpenVINO, with the runtime mounted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import ROOT, run_cli

MODES = ("fp32", "fp16", "int8")


@pytest.fixture(scope="session")
def openvino_image(docker_client):
    from edgeship.images.build import build
    from edgeship.images.locks import load_spec

    return build(docker_client, load_spec("openvino"))


@pytest.fixture(scope="session")
def openvino_artifacts(openvino_image, example_dirs, docker_client, tmp_path_factory):
    """artifact(example, quant) -> artifact dir; each converted once per session."""
    from edgeship.convert import Request, convert

    out, done = tmp_path_factory.mktemp("openvino-artifacts"), {}

    def artifact(example: str, quant: str) -> Path:
        if (example, quant) not in done:
            folder = example_dirs[example]
            done[example, quant] = convert(Request(target="openvino", model=folder / "model.onnx", quant=quant, out=out,
                                                   calib=folder / "calib" if quant == "int8" else None, eval=folder / "eval.npz",
                                                   labels=folder / "labels.txt"), client=docker_client)
        return done[example, quant]

    return artifact


def manifest_of(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def board_runtime(docker_client, image, artifact: Path, *args: str) -> tuple[int, str, str]:
    """`edgeship-runtime ARGS` inside the openvino image (OpenVINO and numpy, as a board installs
    them), the runtime package mounted from this checkout, the network off."""
    from docker.types import Mount

    mounts = [Mount("/opt/edgeship/src/edgeship_runtime", str(ROOT / "runtime" / "edgeship_runtime"), type="bind", read_only=True),
              Mount("/artifact", str(artifact), type="bind", read_only=True)]
    container = docker_client.containers.run(image.tags[0], ["python", "-m", "edgeship_runtime.cli", *args], detach=True, user="0",
                                             network_mode="none", read_only=True, tmpfs={"/tmp": "rw"}, mounts=mounts,
                                             environment={"PYTHONPATH": "/opt/edgeship/src", "HOME": "/tmp"})
    try:
        code = container.wait(timeout=600)["StatusCode"]
        return code, container.logs(stdout=True, stderr=False).decode(), container.logs(stdout=False, stderr=True).decode()
    finally:
        container.remove(force=True)


@pytest.mark.parametrize("example", ["digits", "mobilenetv2"])
@pytest.mark.parametrize("quant", MODES)
def test_both_examples_convert_to_ir_in_every_mode_and_keep_their_figures(openvino_artifacts, example, quant):
    artifact = openvino_artifacts(example, quant)
    manifest = manifest_of(artifact)
    ops = json.loads((artifact / "ops.json").read_text())
    figures = manifest["accuracy"]["outputs"]["logits"]
    weights = (artifact / "model.bin").stat().st_size
    labelled = manifest["accuracy"].get("labelled")
    print(f"{example} {quant}: cosine min {figures['cosine_min']:.5f}, top-1 agreement {figures['top1_agreement']:.1%}"
          + (f", labelled {labelled['fp32']['accuracy']:.2%} -> {labelled['converted']['accuracy']:.2%}" if labelled else "")
          + f", model.xml {ops['graph_file_size']} B + model.bin {weights} B, {ops['op_count']} ops")

    # the IR and its weights ship together, hashed; the toolchain is the one boards are pinned to
    assert manifest["runtime_backend"] == "openvino" and manifest["artifact"]["file"] == "model.xml"
    assert (artifact / "model.xml").read_text().startswith("<?xml") and "model.bin" in manifest["files"]
    assert manifest["toolchain"]["openvino"] == "2026.4.1" and manifest["toolchain"]["nncf"] == "3.4.0"
    # the artifact's size is what ships to run it: the graph and its weights
    assert manifest["artifact"]["size"] == ops["file_size"] == ops["graph_file_size"] + weights == (artifact / "model.xml").stat().st_size + weights
    # ONNX names and layout kept; float32 I/O in every mode
    assert manifest["artifact_io"]["mapping"]["inputs"]["input"] == {"name": "input", "shape": manifest["inputs"][0]["shape"], "perm": None}
    assert manifest["artifact_io"]["mapping"]["outputs"]["logits"]["name"] == "logits"
    assert [(t["name"], t["dtype"]) for t in ops["inputs"] + ops["outputs"]] == [("input", "float32"), ("logits", "float32")]
    # what each mode puts in the IR: fp16 weight constants behind Convert, int8 FakeQuantize
    assert ops["ops"]["Convolution"] >= 2 and ("FakeQuantize" in ops["ops"]) == (quant == "int8")
    if quant == "fp16":
        fp32_weights = (openvino_artifacts(example, "fp32") / "model.bin").stat().st_size
        assert ops["ops"]["Convert"] > 0 and abs(weights / fp32_weights - 0.5) < 0.01
    if quant == "int8":
        assert weights < (openvino_artifacts(example, "fp16") / "model.bin").stat().st_size
    # the figures: the backend computes at f32, so fp32 is ONNX Runtime to rounding
    if quant == "fp32":
        assert figures["cosine_min"] > 0.99999 and figures["top1_agreement"] == 1.0
    if quant in ("fp32", "fp16") or example == "digits":
        assert manifest["accuracy"]["passed"], manifest["accuracy"]["failed"]
    else:  # MobileNetV2 with random weights: near-uniform logits; ONNX Runtime's int8 misses the same tolerance
        assert figures["cosine_min"] > 0.9
    if example == "digits":
        assert labelled["samples"] == 360 and abs(labelled["converted"]["accuracy"] - labelled["fp32"]["accuracy"]) <= 0.01


def test_the_cli_prints_the_ir_and_the_labelled_accuracy(openvino_image, example_dirs, tmp_path):
    digits = example_dirs["digits"]
    result = run_cli("convert", "--target", "openvino", "--model", str(digits / "model.onnx"), "--eval", str(digits / "eval.npz"),
                     "--labels", str(digits / "labels.txt"), "--out", str(tmp_path / "a"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    artifact = Path(result.stdout.strip().splitlines()[-1])
    assert artifact.name.startswith("digits-openvino-fp16-")  # fp16 is the default mode
    assert "OpenVINO IR: 21 ops (Add 4, Convert 8, Convolution 2, MatMul 2, MaxPool 1, Relu 3, Reshape 1); model.xml " in result.stdout
    assert "accuracy against the eval labels (360 samples): fp32 97.78%, converted 97.78%" in result.stdout


def test_same_inputs_give_the_same_bytes(openvino_artifacts, example_dirs, docker_client, tmp_path):
    """NNCF's nodes have no names of their own; named by place, two processes write the same IR."""
    from edgeship.convert import Request, convert

    digits = example_dirs["digits"]
    again = convert(Request(target="openvino", model=digits / "model.onnx", quant="int8", calib=digits / "calib", eval=digits / "eval.npz",
                            labels=digits / "labels.txt", out=tmp_path), client=docker_client)
    assert manifest_of(again)["files"] == manifest_of(openvino_artifacts("digits", "int8"))["files"]


def test_the_board_runtime_checks_and_benches_the_ir_like_the_conversion_measured_it(openvino_artifacts, openvino_image, docker_client):
    artifact = openvino_artifacts("mobilenetv2", "fp16")
    code, out, err = board_runtime(docker_client, openvino_image, artifact, "check", "/artifact", "--threads", "1")
    assert code == 0, err[-2000:]
    report = json.loads(out)
    assert report["passed"] and report["integrity"]["passed"]  # model.bin is verified with model.xml
    assert report["outputs"]["logits"]["vs_x86_converted"]["max_abs_error"] <= 1e-5

    code, out, err = board_runtime(docker_client, openvino_image, openvino_artifacts("digits", "fp32"), "bench", "/artifact", "--threads", "1",
                                   "--batches", "1,4", "--min-runs", "10", "--min-s", "0.2", "--warmup-s", "0.1")
    assert code == 0, err[-2000:]
    assert [row["batch"] for row in json.loads(out)["batch_sweep"]] == [1, 4]  # the IR is reshaped and compiled again


def test_left_to_itself_the_plugin_computes_in_bf16_where_it_can_and_misses_fp32(openvino_artifacts, openvino_image, docker_client):
    """Why the backend fixes f32: on a CPU with AVX512_BF16/AMX the plugin's own default is bf16."""
    capabilities = docker_client.containers.run(openvino_image.tags[0], ["python", "-c", "import openvino as ov; "
                                                "print(' '.join(ov.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES')))"],
                                                network_mode="none", remove=True, environment={"HOME": "/tmp"}).decode().split()
    if "BF16" not in capabilities:
        pytest.skip(f"this CPU has no bf16 ({capabilities}): the plugin computes in f32 anyway")
    artifact = openvino_artifacts("mobilenetv2", "fp32")
    code, out, err = board_runtime(docker_client, openvino_image, artifact, "check", "/artifact", "--threads", "1",
                                   "--backend-option", "precision=bf16")
    figures = json.loads(out)["outputs"]["logits"]
    print(f"mobilenetv2 fp32 IR at bf16: cosine min {figures['cosine_min']:.5f}, top-1 agreement {figures['top1_agreement']:.1%}")
    assert code != 0 and figures["cosine_min"] < 0.9999  # below the fp32 tolerance the default f32 meets


def test_a_wrong_precision_and_a_missing_openvino_are_one_line_each(openvino_artifacts, openvino_image, docker_client):
    artifact = openvino_artifacts("digits", "fp16")
    code, _, err = board_runtime(docker_client, openvino_image, artifact, "check", "/artifact", "--backend-option", "precision=f8")
    assert code == 2 and err.strip() == "edgeship-runtime: error: openvino: --backend-option precision=f8 is not one of f32, f16, bf16"

    import importlib.util

    from edgeship_runtime.artifact import Artifact
    from edgeship_runtime.backends import open_backend
    from edgeship_runtime.errors import RuntimeUnavailable

    if importlib.util.find_spec("openvino") is not None:
        pytest.skip("openvino is installed on this host")
    with pytest.raises(RuntimeUnavailable, match=r"pip install 'edgeship-runtime\[openvino\]'"):
        open_backend(Artifact.open(artifact)).load()
