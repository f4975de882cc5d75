"""The YOLO head cut (targets/yolo_head.py) on the examples' own YOLOv8n/YOLO11n layers at 128x128: the cut
graph on ONNX Runtime, read by the yolov8_dfl decoder, finds the boxes the whole graph's yolov8 decoding finds."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest

from edgeship.examples import yolo
from edgeship_runtime.tasks import postprocess, validate
from edgeship_runtime.tasks.detect import decode
from targets.yolo_head import DECODER, cut, find_head

SIZE = 128
INPUTS = [{"name": "images", "shape": [1, 3, SIZE, SIZE]}]


def _export(name: str, path) -> None:
    import torch

    torch.manual_seed(0)
    model = yolo.yolo_network(name, image_size=SIZE).eval()
    torch.onnx.export(model, (torch.zeros(1, 3, SIZE, SIZE),), str(path), dynamo=False, opset_version=13,
                      input_names=["images"], output_names=["output0"], do_constant_folding=True)


@pytest.fixture(scope="module", params=sorted(yolo.ARCHITECTURES))
def exported(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param) / "model.onnx"
    _export(request.param, path)
    return path


def _run(path, image) -> dict:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, {"images": image})))


def test_the_cut_finds_each_levels_box_and_class_convs(exported, tmp_path):
    written, head, record = cut(str(exported), tmp_path / "cut.onnx")
    assert (head.dfl_bins, head.classes, head.input_size) == (16, 80, (SIZE, SIZE))
    assert [(level.stride, level.grid) for level in head.levels] == [(8, (16, 16)), (16, (8, 8)), (32, (4, 4))]
    model = onnx.load(str(written))
    assert [(o.name, [d.dim_value for d in o.type.tensor_type.shape.dim]) for o in model.graph.output] == [
        (spec["name"], spec["shape"]) for spec in head.outputs()]
    assert find_head(model) is None and "Sigmoid" in {node.op_type for node in model.graph.node}  # the DFL is gone, the scores stay
    assert record["rewrite"] == "yolo-head-cut" and record["source_outputs"] == ["output0"] and record["removed_nodes"] > 10


def test_the_cut_outputs_decode_to_the_whole_graphs_boxes(exported, tmp_path):
    written, head, _ = cut(str(exported), tmp_path / "cut.onnx")
    image = np.random.default_rng(0).random((1, 3, SIZE, SIZE), np.float32)
    whole, parts = _run(exported, image), _run(written, image)
    scores = whole["output0"][0, 4:].max(axis=0)
    conf = float(np.sort(scores)[-20])  # the 19 best candidates pass, whatever the random weights give
    whole_record = {"name": "detect", "decoder": "yolov8", "conf": conf, "iou": 0.95}  # iou 0.95: random weights' boxes overlap
    reference = validate(whole_record, [{"name": "output0", "shape": [1, 84, 336]}], None, "m", INPUTS)
    record = validate(head.task(reference), head.outputs(), None, "m", INPUTS)
    assert record["decoder"] == DECODER and record["conf"] == conf and record["input_size"] == [SIZE, SIZE]
    expected, found = decode(reference, whole)[0], decode(record, parts)[0]
    assert len(expected["boxes"]) > 1 and found["classes"].tolist() == expected["classes"].tolist()
    np.testing.assert_allclose(found["boxes"], expected["boxes"], atol=1e-2)
    np.testing.assert_allclose(found["scores"], expected["scores"], rtol=1e-4)
    # what the camera demo shows per frame: the same boxes from the cut outputs
    np.testing.assert_allclose([box["box"] for box in postprocess(record, parts, None)["boxes"]], expected["boxes"], atol=1e-2)


def test_a_model_without_a_dfl_head_is_left_alone(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "plain",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], [weight])
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph), str(path))
    assert find_head(onnx.load(str(path))) is None
    assert cut(str(path), tmp_path / "cut.onnx") is None and not (tmp_path / "cut.onnx").exists()


def test_the_rk3588_converter_switches_the_job_to_the_cut_before_anything_runs(exported, tmp_path):
    """No toolkit needed: the job's outputs and task become the cut's when the converter is made, the fp32
    reference runs the cut graph, and a model that is not a yolov8 detect task keeps its own."""
    import targets
    from targets.job import Job, Source

    def job(task: dict) -> Job:
        return Job(target="rk3588", source=Source(path=str(exported), file="model.onnx", format="onnx"), quant="fp16",
                   options={"platform": "rk3588"}, inputs=INPUTS, outputs=[{"name": "output0", "shape": [1, 84, 336]}],
                   task=task, out=str(tmp_path))

    target = targets.get("rk3588")
    detect = validate({"name": "detect", "decoder": "yolov8", "conf": 0.01}, [{"name": "output0", "shape": [1, 84, 336]}], None, "m", INPUTS)
    cut_job = job(detect)
    converter = target.converter(target, cut_job, tmp_path)
    assert converter.head_cut is not None and converter.head_cut[1]["rewrite"] == "yolo-head-cut"
    assert cut_job.task["decoder"] == DECODER and cut_job.task["conf"] == 0.01 and len(cut_job.outputs) == 6
    image = np.random.default_rng(1).random((1, 3, SIZE, SIZE), np.float32)
    (reference,) = converter.reference([{"images": image}])
    assert list(reference) == cut_job.output_names and reference["boxes_stride8"].shape == (1, 64, 16, 16)
    plain_job = job({"name": "generic"})
    assert target.converter(target, plain_job, tmp_path).head_cut is None and plain_job.output_names == ["output0"]


def test_invoke_convert_says_the_head_was_cut(exported, tmp_path):
    from targets.rk3588 import RK3588Converter

    _, head, record = cut(str(exported), tmp_path / "cut.onnx")
    manifest = {"accuracy": {}, "rewrites": {"yolo_head": record}, "task": {"decoder": DECODER}}
    lines = RK3588Converter.summary(tmp_path, manifest, {})
    assert lines == [f"YOLO head cut before its DFL ({record['removed_nodes']} nodes): outputs per stride 8, 16, 32, "
                     "decoded on the CPU by yolov8_dfl"]
    assert RK3588Converter.summary(tmp_path, {"accuracy": {}, "task": {}}, {}) == []
