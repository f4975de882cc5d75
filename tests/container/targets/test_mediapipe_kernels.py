"""MediaPipe's Convolution2DTransposeBias rewritten into TRANSPOSE_CONV + ADD (targets/mediapipe_kernels.py),
in the real images:

- the rewrite computes what MediaPipe's kernel computes: LiteRT's TRANSPOSE_CONV + ADD against the numpy
  reference of the kernel's semantics, on the selfie model's own layer (its input as the model computes
  it on the eval photos, its own float16 weights) and on made-up kernels whose SAME padding is odd, VALID
  and non-square (no runtime here has MediaPipe's kernel, so its semantics are the judge);
- selfie-segmentation -> rk3588 fp16 on the toolkit's simulator passes by mean IoU against fp32 (the
  rewritten model in fp32), and the manifest records the rewrite;
- selfie-segmentation -> tflite fp32 is the rewritten model with its weights widened: no custom op left,
  the outputs fp32's exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import ROOT

REWRITE = [{"op": "Convolution2DTransposeBias", "count": 1, "into": "TRANSPOSE_CONV + ADD"}]

# Runs inside the tflite image with targets/ mounted: prints one JSON line of relative errors.
KERNEL_CHECK = r'''
import json, sys
from pathlib import Path
import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils
from targets import mediapipe_kernels as kernels

def run(path, inputs, keep=()):
    # the reference kernels, every tensor kept (XNNPACK would hide the layer's input)
    it = Interpreter(model_path=str(path), num_threads=1, experimental_preserve_all_tensors=True,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    index = {d["name"]: d["index"] for d in it.get_tensor_details()}
    it.set_tensor(it.get_input_details()[0]["index"], inputs); it.invoke()
    return {name: it.get_tensor(index[name]).copy() for name in keep}, it.get_tensor(it.get_output_details()[0]["index"])

def relative(found, expected):
    return float(np.abs(found - expected).max() / max(np.abs(expected).max(), 1e-12))

def custom_model(path, x_shape, weights, bias, raw):
    model = schema.ModelT(); model.version = 3
    code = schema.OperatorCodeT(); code.builtinCode = code.deprecatedBuiltinCode = 32
    code.customCode = "Convolution2DTransposeBias"; code.version = 1
    model.operatorCodes, model.buffers = [code], [schema.BufferT()]
    def tensor(name, shape, data=None):
        t = schema.TensorT(); t.name, t.shape, t.type, t.buffer = name, np.asarray(shape, np.int32), 0, 0
        if data is not None:
            b = schema.BufferT(); b.data = np.frombuffer(np.asarray(data, np.float32).tobytes(), np.uint8)
            model.buffers.append(b); t.buffer = len(model.buffers) - 1
        return t
    params = kernels.parse_transpose_conv_options(raw)
    out = [x_shape[0], kernels.output_size(x_shape[1], weights.shape[1], params.stride_h, params.padding),
           kernels.output_size(x_shape[2], weights.shape[2], params.stride_w, params.padding), weights.shape[0]]
    graph = schema.SubGraphT()
    graph.tensors = [tensor("x", x_shape), tensor("w", weights.shape, weights), tensor("b", bias.shape, bias), tensor("y", out)]
    op = schema.OperatorT(); op.opcodeIndex = 0; op.inputs = np.asarray([0, 1, 2], np.int32); op.outputs = np.asarray([3], np.int32)
    op.customOptions = np.frombuffer(raw, np.uint8); op.customOptionsFormat = 0
    graph.operators, graph.inputs, graph.outputs = [op], np.asarray([0], np.int32), np.asarray([3], np.int32)
    model.subgraphs = [graph]
    path.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
    return params

work = Path(sys.argv[1]); results = {}
rewritten, record = kernels.builtin_source(Path("/in/model.tflite"), work)
with np.load("/in/eval.npz") as data:
    photos = data["input_1"][:4]
for number, photo in enumerate(photos):
    kept, _ = run(rewritten, photo[None], ("add_13__xeno_compat__1", "segment", "segment/Kernel_dequantize", "segment/Bias_dequantize"))
    expected = kernels.transpose_conv_bias_reference(kept["add_13__xeno_compat__1"], kept["segment/Kernel_dequantize"],
                                                     kept["segment/Bias_dequantize"], kernels.TransposeConvParams("SAME", 2, 2))
    results[f"selfie layer, photo {number}"] = relative(kept["segment"], expected)
rng = np.random.default_rng(3)
for name, x_shape, kernel, words in [("3x4 SAME stride 2, odd padding", (1, 4, 5, 3), (6, 3, 4, 3), (1, 2, 2)),
                                     ("4x4 SAME stride 2", (2, 5, 5, 2), (3, 4, 4, 2), (1, 2, 2)),
                                     ("3x2 VALID strides 1x2", (1, 4, 3, 3), (2, 3, 2, 3), (2, 2, 1)),
                                     ("5x4 SAME strides 2x3", (1, 3, 4, 2), (4, 4, 5, 2), (1, 3, 2))]:
    weights, bias = rng.standard_normal(kernel).astype(np.float32), rng.standard_normal(kernel[0]).astype(np.float32)
    folder = work / f"case-{len(results)}"
    folder.mkdir()
    source = folder / "custom.tflite"
    params = custom_model(source, x_shape, weights, bias, np.asarray(words, "<i4").tobytes())
    x = rng.standard_normal(x_shape).astype(np.float32)
    model, _ = kernels.builtin_source(source, folder)
    _, found = run(model, x)
    results[name] = relative(found, kernels.transpose_conv_bias_reference(x, weights, bias, params))
    results[name + " (bias left out)"] = relative(found, kernels.transpose_conv_bias_reference(x, weights, 0 * bias, params))
print("kernel-check: " + json.dumps({"record": record, "errors": results}))
'''


@pytest.fixture(scope="module")
def selfie() -> Path:
    from edgeship.examples import build_examples

    (folder,) = build_examples(ROOT / "examples", ["selfie-segmentation"])
    return folder


@pytest.fixture(scope="module")
def convert_selfie(selfie, docker_client):
    from edgeship.convert import convert
    from edgeship.examples import example_request
    from edgeship.images.build import build
    from edgeship.images.locks import load_spec

    done: dict[tuple[str, str], Path] = {}

    def run(target: str, quant: str) -> Path:
        if (target, quant) not in done:
            build(docker_client, load_spec(target))
            request = example_request(selfie, target, quant, ROOT / "artifacts" / "tests", False)
            assert request.model.name == "model.tflite"
            done[target, quant] = convert(request, client=docker_client)
        return done[target, quant]

    return run


def manifest_of(artifact: Path) -> dict:
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["source"]["format"] == "tflite" and manifest["task"]["name"] == "segment"
    assert manifest["rewrites"]["kernels"] == REWRITE
    assert "the fp32 reference is the rewritten model run in fp32" in manifest["rewrites"]["fp32_reference"]
    return manifest


def test_the_rewrite_computes_mediapipes_kernel(selfie, tflite_image, docker_client, tmp_path):
    work = tmp_path / "work"
    work.mkdir(mode=0o777)
    work.chmod(0o777)  # the image's user writes the rewritten models here
    output = docker_client.containers.run(
        tflite_image.tags[0], ["python", "-c", KERNEL_CHECK, "/work"], network_mode="none", remove=True,
        environment={"PYTHONPATH": "/opt/edgeship/src"},
        volumes={str(ROOT / "targets"): {"bind": "/opt/edgeship/src/targets", "mode": "ro"},
                 str(ROOT / "runtime" / "edgeship_runtime"): {"bind": "/opt/edgeship/src/edgeship_runtime", "mode": "ro"},
                 str(selfie / "model.tflite"): {"bind": "/in/model.tflite", "mode": "ro"},
                 str(selfie / "eval.npz"): {"bind": "/in/eval.npz", "mode": "ro"}, str(work): {"bind": "/work", "mode": "rw"}}).decode()
    line = next(line for line in output.splitlines() if line.startswith("kernel-check: "))
    found = json.loads(line.removeprefix("kernel-check: "))
    for name, error in found["errors"].items():
        print(f"{name}: max error {error:.2e} of the largest output")
    assert found["record"] == REWRITE
    checked = {name: error for name, error in found["errors"].items() if "bias left out" not in name}
    assert len(checked) == 8 and all(error < 1e-5 for error in checked.values()), checked
    # the comparison sees a wrong sum: the same outputs against the kernel without its bias
    assert all(error > 1e-3 for name, error in found["errors"].items() if "bias left out" in name)


def test_rk3588_fp16_passes_by_mean_iou_against_fp32_and_records_the_rewrite(convert_selfie):
    artifact = convert_selfie("rk3588", "fp16")
    manifest = manifest_of(artifact)
    accuracy = manifest["accuracy"]
    metrics = accuracy["metrics"]
    print(f"selfie-segmentation rk3588 fp16: mean IoU {metrics['mean_iou']:.4f}, pixel agreement {metrics['pixel_agreement']:.4f}; "
          f"passed {accuracy['passed']}")
    assert accuracy["tolerances"]["min_iou"] == 0.97
    assert metrics["mean_iou"] >= 0.97 and accuracy["passed"], accuracy.get("failed")
    ops = json.loads((artifact / "ops.json").read_text())
    assert ops["rewrites"]["kernels"] == REWRITE


def test_tflite_fp32_is_the_rewritten_model_with_its_outputs(convert_selfie):
    artifact = convert_selfie("tflite", "fp32")
    manifest = manifest_of(artifact)
    ops = json.loads((artifact / "ops.json").read_text())
    assert ops["ops"]["TRANSPOSE_CONV"] == 1 and "DEQUANTIZE" not in ops["ops"]
    assert not [name for name in ops["ops"] if name not in ("DELEGATE",) and not name.isupper()]  # no custom op left
    assert manifest["accuracy"]["passed"] and manifest["accuracy"]["metrics"]["mean_iou"] == 1.0
    assert all(figures["max_abs_error"] == 0.0 for figures in manifest["accuracy"]["outputs"].values())


def test_fp32_finds_the_person_in_the_photos_with_one(convert_selfie, selfie):
    """What the example says of its photos, on fp32's masks (the rewritten model's)."""
    import numpy as np

    names = json.loads((selfie / "metadata.json").read_text())["eval"]["names"]
    with np.load(convert_selfie("tflite", "fp32") / "reference" / "outputs.npz") as data:
        person = {name: float(np.mean(mask > 0.5)) for name, mask in zip(names, data["activation_10"])}
    print("person fraction per photo (fp32): " + ", ".join(f"{name} {fraction:.2f}" for name, fraction in person.items()))
    assert all(person[name] >= 0.2 for name in names if name.startswith(("astronaut", "camera"))), person
    assert person["rocket"] < 0.01 and person["rocket-crop"] < 0.01, person


def test_the_boards_check_judges_the_rk3588_artifact_by_mean_iou(convert_selfie):
    """edgeship-runtime check on the toolkit simulator's recorded outputs (no NPU here), as a board runs it;
    a mask turned inside out fails it by mean IoU."""
    from edgeship_runtime.artifact import Artifact
    from edgeship_runtime.check import check
    from tests.container.targets.test_rk3588_faces import SimulatorReplay

    artifact = Artifact.open(convert_selfie("rk3588", "fp16"))
    report = check(artifact, SimulatorReplay)
    print("board check (simulator outputs):", report["metrics"]["mean_iou"])
    assert report["passed"] and report["task"] == "segment" and report["samples"] == 12 and report["metrics"]["mean_iou"] >= 0.97

    class Inverted(SimulatorReplay):
        def change(self, outputs: dict) -> dict:
            return {name: 1.0 - value for name, value in outputs.items()}

    failed = check(artifact, Inverted)
    assert not failed["passed"] and failed["metrics"]["mean_iou"] < 0.5
    assert any("mean IoU" in reason for reason in failed["failed"]), failed["failed"]
