"""ncnn target: ONNX to ncnn param/bin through pnnx in its image (fp32, fp16 weights), accuracy
by task against fp32 through the board runtime's ncnn backend, on the real example models; the
backend run the way a board runs it (inside the image, which has ncnn, with the runtime
mounted). int8 is refused on the host: ncnn2table/ncnn2int8 are in no wheel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import ROOT


@pytest.fixture(scope="session")
def ncnn_image(docker_client):
    from edgeship.images.build import build
    from edgeship.images.locks import load_spec

    return build(docker_client, load_spec("ncnn"))


def manifest_of(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def board_runtime(docker_client, image, artifact: Path, *args: str) -> tuple[int, str, str]:
    """`edgeship-runtime ARGS` inside the ncnn image (ncnn and numpy, as a board installs them),
    the runtime package mounted from this checkout, the network off."""
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


@pytest.mark.parametrize("example", ["digits", "ppocr-det", "ppocr-rec", "yolov8n"])
def test_the_examples_convert_to_fp16_param_and_bin_and_keep_their_task_figures(ncnn_image, convert_example, example):
    artifact = convert_example(example, "ncnn", "fp16")
    manifest = manifest_of(artifact)
    ops = json.loads((artifact / "ops.json").read_text())
    accuracy = manifest["accuracy"]
    print(f"{example} ncnn fp16: task {accuracy.get('task')}, passed {accuracy['passed']}, metrics {json.dumps(accuracy.get('metrics'))[:400]}, "
          f"{ops['op_count']} layers, model.param {ops['graph_file_size']} B + model.bin {ops['weights_file_size']} B")

    # the graph and its weights ship together, hashed; the toolchain is the one boards are pinned to
    assert manifest["runtime_backend"] == "ncnn" and manifest["artifact"]["file"] == "model.param"
    assert (artifact / "model.param").read_text().startswith("7767517\n") and "model.bin" in manifest["files"]
    assert manifest["toolchain"]["pnnx"] == "20261020" and manifest["toolchain"]["ncnn"] == "1.0.20261020"
    assert manifest["artifact"]["size"] == ops["file_size"]
    # pnnx's blob names stand for the source's tensors, in the graph's order
    assert [m["name"] for m in manifest["artifact_io"]["mapping"]["inputs"].values()] == [f"in{i}" for i in range(len(manifest["inputs"]))]
    assert [m["name"] for m in manifest["artifact_io"]["mapping"]["outputs"].values()] == [f"out{i}" for i in range(len(manifest["outputs"]))]
    assert not any(name.startswith(("F.", "Tensor.", "torch.", "pnnx.")) for name in ops["ops"])
    # where pnnx 20261020 gets a graph wrong, what was done about it is in the manifest
    rewrites = manifest.get("rewrites") or {}
    if example == "ppocr-det":  # Paddle's HardSigmoid slope; the BN-folded last conv's tiny weights at fp16
        assert any("HardSigmoid alpha 0.2" in line for line in rewrites["nodes"])
        assert any("Conv weights at most" in line for line in rewrites["nodes"])
    if example == "ppocr-rec":  # the cleaned graph's attention left Tensor.reshape/torch.unbind: pnnx read the source
        assert rewrites["pnnx_read"] == "source"
    if example in ("digits", "yolov8n"):
        assert not rewrites
    # judged by the model's task against fp32, and within its tolerances
    assert accuracy["task"] == manifest["task"]["name"] and accuracy["metrics"]
    assert accuracy["passed"], accuracy["failed"]


def test_digits_fp32_matches_onnx_runtime_and_fp16_halves_the_weights(ncnn_image, convert_example):
    fp32, fp16 = convert_example("digits", "ncnn", "fp32"), convert_example("digits", "ncnn", "fp16")
    figures = manifest_of(fp32)["accuracy"]["outputs"]["logits"]
    assert figures["cosine_min"] > 0.99999 and figures["top1_agreement"] == 1.0
    labelled = manifest_of(fp16)["accuracy"]["labelled"]
    assert labelled["samples"] == 360 and abs(labelled["converted"]["accuracy"] - labelled["fp32"]["accuracy"]) <= 0.01
    ratio = (fp16 / "model.bin").stat().st_size / (fp32 / "model.bin").stat().st_size
    assert abs(ratio - 0.5) < 0.01, ratio


def test_the_board_runtime_checks_and_benches_the_model_and_records_how_it_ran(ncnn_image, convert_example, docker_client):
    artifact = convert_example("ppocr-rec", "ncnn", "fp16")
    code, out, err = board_runtime(docker_client, ncnn_image, artifact, "check", "/artifact", "--threads", "1")
    assert code == 0, err[-2000:]
    report = json.loads(out)
    assert report["passed"] and report["integrity"]["passed"]  # model.bin is verified with model.param

    code, out, err = board_runtime(docker_client, ncnn_image, convert_example("digits", "ncnn", "fp16"), "bench", "/artifact",
                                   "--threads", "2", "--batches", "1,4", "--min-runs", "10", "--min-s", "0.2", "--warmup-s", "0.1")
    assert code == 0, err[-2000:]
    bench = json.loads(out)
    assert bench["engine"] == {"ncnn": "1.0.20261020", "threads": 2, "vulkan": False, "precision": "fp16-storage",
                               "fp16_storage": True, "fp16_arithmetic": False}
    assert bench["batch_sweep"][1]["skipped"].startswith("ncnn cannot change the batch size")


def test_vulkan_without_a_device_and_a_wrong_precision_are_one_line_each(ncnn_image, convert_example, docker_client):
    artifact = convert_example("digits", "ncnn", "fp16")
    code, _, err = board_runtime(docker_client, ncnn_image, artifact, "check", "/artifact", "--backend-option", "precision=int8")
    assert code == 2 and err.strip() == ("edgeship-runtime: error: ncnn: --backend-option precision=int8 is not one of fp32, fp16-storage, "
                                         "fp16-arithmetic")
    code, _, err = board_runtime(docker_client, ncnn_image, artifact, "check", "/artifact", "--backend-option", "vulkan=1")
    assert code == 2 and err.strip() == ("edgeship-runtime: error: ncnn: --backend-option vulkan=1 but this board has no Vulkan loader "
                                         "(libvulkan.so.1); install the GPU's Vulkan driver or run without vulkan=1")
