"""The YOLO-shaped examples: the architecture's size, the in-graph box decoding, the exported ONNX
graph in ONNX Runtime, the example folder, and byte-identical rebuilds."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime
import pytest

from edgeship.examples import yolo

ANCHORS = sum((640 // stride) ** 2 for stride in yolo.STRIDES)  # 8400


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Each architecture built once for the module (about 6-12 s each)."""
    root = tmp_path_factory.mktemp("yolo")
    return {name: builder(root / name) for name, builder in yolo.BUILDERS.items()}


@pytest.mark.parametrize("name", sorted(yolo.ARCHITECTURES))
def test_parameter_count_matches_ultralytics_summary(name):
    count = yolo.parameter_count(yolo.yolo_network(name))
    reference = yolo.ARCHITECTURES[name].reference_parameters
    assert abs(count - reference) <= 0.05 * reference, f"{name}: {count} parameters, Ultralytics reports {reference}"


@pytest.mark.parametrize("name", sorted(yolo.ARCHITECTURES))
def test_uniform_box_logits_decode_to_boxes_centred_on_the_anchors(name):
    """With the box branches' last conv zeroed, every DFL softmax is uniform: each side is 7.5 cells
    away, so every box is centred on its anchor cell and 15 strides wide and high."""
    import torch

    torch.manual_seed(0)
    model = yolo.yolo_network(name, image_size=128).eval()
    head = model.layers[-1]
    for branch in head.cv2:
        torch.nn.init.zeros_(branch[-1].weight)
        torch.nn.init.zeros_(branch[-1].bias)
    with torch.no_grad():
        output = model(torch.rand(1, 3, 128, 128)).numpy()[0]
    expected_centres, expected_sizes = [], []
    for stride in yolo.STRIDES:
        cells = (np.arange(128 // stride) + 0.5) * stride
        y, x = np.meshgrid(cells, cells, indexing="ij")  # x varies fastest, as Ultralytics orders anchors
        expected_centres.append(np.stack((x.ravel(), y.ravel())))
        expected_sizes.append(np.full((2, x.size), 15.0 * stride))
    assert output.shape == (84, 16 * 16 + 8 * 8 + 4 * 4)
    np.testing.assert_allclose(output[:2], np.concatenate(expected_centres, 1), atol=1e-3)
    np.testing.assert_allclose(output[2:4], np.concatenate(expected_sizes, 1), rtol=1e-5)


@pytest.mark.parametrize("name", sorted(yolo.ARCHITECTURES))
def test_onnx_runs_and_gives_decoded_boxes_and_scores(built, name):
    path = built[name] / "model.onnx"
    model = onnx.load(str(path))
    assert [opset.version for opset in model.opset_import if opset.domain in ("", "ai.onnx")] == [13]
    op_types = {node.op_type for node in model.graph.node}
    assert op_types <= yolo.PORTABLE_OPS and not op_types & {"Mod", "NonZero", "Shape", "Gather"}

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape) for i in session.get_inputs()] == [("images", [1, 3, 640, 640])]
    images = np.load(built[name] / "eval.npz")["images"]
    (output,) = session.run(["output0"], {"images": images[:1]})
    assert output.shape == (1, 84, ANCHORS)
    scores = output[0, 4:]
    assert scores.min() >= 0.0 and scores.max() <= 1.0
    assert output[0, 2:4].min() >= 0.0  # widths and heights
    # centres lie near their anchors: inside the image give or take the largest possible distance
    assert -15 * 32 < output[0, :2].min() and output[0, :2].max() < 640 + 15 * 32


@pytest.mark.parametrize("name", sorted(yolo.ARCHITECTURES))
def test_example_folder_is_complete_and_says_random_weights(built, name):
    folder = built[name]
    calibration = sorted((folder / "calib").glob("*.npy"))
    assert len(calibration) == 16
    sample = np.load(calibration[0])
    assert sample.shape == (1, 3, 640, 640) and sample.dtype == np.float32 and 0.0 <= sample.min() and sample.max() <= 1.0
    # letterboxed: some crops are padded with Ultralytics' grey 114
    assert any(np.isclose(np.load(path)[0, :, 0, 0], 114 / 255).all() for path in calibration)
    with np.load(folder / "eval.npz") as eval_set:
        assert list(eval_set) == ["images"] and eval_set["images"].shape == (4, 3, 640, 640)
    assert json.loads((folder / "task.json").read_text()) == {"name": "detect", "decoder": "yolov8", "conf": 0.01, "iou": 0.45}
    assert json.loads((folder / "preprocess.json").read_text()) == {"color": "rgb", "scale": 1 / 255, "resize": "letterbox"}
    assert len((folder / "labels.txt").read_text().splitlines()) == 80
    metadata = json.loads((folder / "metadata.json").read_text())
    assert "RANDOM weights" in metadata["description"] and "for latency only" in metadata["description"]
    assert metadata["generator"] == yolo.GENERATOR
    assert metadata["architecture"]["parameters"] == yolo.ARCHITECTURES[name].reference_parameters
    assert metadata["architecture"]["gflops"] == pytest.approx(yolo.ARCHITECTURES[name].reference_gflops, rel=0.05)


def test_building_twice_gives_identical_model_bytes(built, tmp_path):
    again = yolo.build_yolov8n(tmp_path / "yolov8n")
    assert (again / "model.onnx").read_bytes() == (built["yolov8n"] / "model.onnx").read_bytes()
    assert (again / "eval.npz").read_bytes() == (built["yolov8n"] / "eval.npz").read_bytes()


@pytest.mark.parametrize("name", sorted(yolo.ARCHITECTURES))
def test_the_task_threshold_finds_boxes_to_judge_a_conversion_by(built, name):
    """The reference set's first photo (the worker keeps the first 3 of the 4 eval crops) has boxes at
    the task's conf: F1 against fp32 is taken over them, not over nothing."""
    from edgeship_runtime.tasks import validate
    from edgeship_runtime.tasks.detect import decode

    folder = built[name]
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    images = np.load(folder / "eval.npz")["images"]
    record = validate(json.loads((folder / "task.json").read_text()), [{"name": "output0", "shape": [1, 84, ANCHORS]}], None, "m")
    found = [len(decode(record, {"output0": session.run(["output0"], {"images": images[i:i + 1]})[0]})[0]["boxes"]) for i in range(3)]
    assert sum(found) >= 10, found
    at_ultralytics_default = validate({**record, "conf": 0.25}, [{"name": "output0", "shape": [1, 84, ANCHORS]}], None, "m")
    few = sum(len(decode(at_ultralytics_default, {"output0": session.run(["output0"], {"images": images[i:i + 1]})[0]})[0]["boxes"])
              for i in range(3))
    assert few <= 1, few  # why the example's threshold is not 0.25 (YOLOv8n finds none there, YOLO11n one)
