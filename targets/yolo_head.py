"""Cut a YOLOv8/YOLO11 detection head before its DFL, as Rockchip's model zoo exports these models.

rknn-toolkit2 2.5.0 stops on the decoded head of an Ultralytics-style export (an IndexError in its
conv/reshape/split rule at the DFL), fp16 and int8 alike. Rockchip's own export
(airockchip/ultralytics_yolov8, RKOPT_README) leaves DFL and box decoding out of the model: the head
returns, per level, the box branch's 4 x reg_max distance logits and the class branch's sigmoid
scores, and the board decodes on the CPU (DFL only on the candidates above the threshold).

`find_head` recognises the head in an ONNX graph without names: the DFL is the 1x1 Conv whose
weights are 0, 1, ..., reg_max - 1; the head's last convolutions are the Convs met walking up from
the graph outputs before any other Conv; the box ones are those met walking up from the DFL, the
class ones the rest. `cut` writes a copy whose outputs are, per level (stride 8, 16, 32...),
`boxes_stride<S>` [1, 4 * reg_max, H, W] and `scores_stride<S>` [1, C, H, W] (a Sigmoid added after
the class conv). The runtime's `yolov8_dfl` decoder reads them (edgeship_runtime.tasks.decoders).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

WHY = ("rknn-toolkit2 2.5.0 fails on the DFL head of YOLOv8/YOLO11 exports (IndexError in its conv/reshape/split rule); "
       "cut before the DFL as Rockchip's rknn_model_zoo exports these models: DFL, box decoding and NMS run on the CPU "
       "in the runtime's yolov8_dfl decoder")
DECODER = "yolov8_dfl"


@dataclass(frozen=True)
class Level:
    stride: int
    grid: tuple[int, int]  # H, W of this level's maps
    box_conv: str  # the output tensors of the head's last convolutions in the source graph
    class_conv: str

    @property
    def boxes(self) -> str:
        return f"boxes_stride{self.stride}"

    @property
    def scores(self) -> str:
        return f"scores_stride{self.stride}"


@dataclass(frozen=True)
class Head:
    dfl_bins: int
    classes: int
    input_size: tuple[int, int]
    levels: tuple[Level, ...]

    def outputs(self) -> list[dict]:
        """The cut model's outputs, in graph order: per level its boxes then its scores."""
        specs = []
        for level in self.levels:
            specs.append({"name": level.boxes, "shape": [1, 4 * self.dfl_bins, *level.grid]})
            specs.append({"name": level.scores, "shape": [1, self.classes, *level.grid]})
        return specs

    def task(self, record: dict) -> dict:
        """The detect record of the cut model: the yolov8 record's thresholds and class names, the
        yolov8_dfl decoder reading each level's outputs."""
        kept = {key: record[key] for key in ("conf", "iou", "max_det", "classes") if key in record}
        return {"name": record["name"], **kept, "decoder": DECODER, "output": self.levels[0].boxes,
                "box_outputs": [level.boxes for level in self.levels], "score_outputs": [level.scores for level in self.levels]}

    def manifest_record(self, source_outputs: list[str], removed_nodes: int) -> dict:
        return {"rewrite": "yolo-head-cut", "why": WHY, "dfl_bins": self.dfl_bins, "classes": self.classes,
                "source_outputs": source_outputs, "removed_nodes": removed_nodes,
                "levels": [{"stride": level.stride, "grid": list(level.grid), "boxes": level.boxes, "scores": level.scores,
                            "box_conv": level.box_conv, "class_conv": level.class_conv} for level in self.levels],
                "fp32_reference": "the cut ONNX graph on ONNX Runtime (the same graph up to the cut as the source)"}


def _constant(model, name: str):
    import numpy as np
    from onnx import numpy_helper

    for initializer in model.graph.initializer:
        if initializer.name == name:
            return numpy_helper.to_array(initializer)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            return np.asarray(numpy_helper.to_array(node.attribute[0].t))
    return None


def _dfl_conv(model):
    """The Conv whose weights are [1, B, 1, 1] = 0..B-1 (the DFL's expectation), or None."""
    import numpy as np

    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2:
            continue
        weight = _constant(model, node.input[1])
        if weight is None or weight.ndim != 4 or weight.shape[0] != 1 or weight.shape[2:] != (1, 1) or weight.shape[1] < 2:
            continue
        bias = _constant(model, node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if np.array_equal(weight.reshape(-1), np.arange(weight.shape[1])) and (bias is None or not np.any(bias)):
            return node
    return None


def _last_convs(model, starts: list[str], skip: str) -> list:
    """The Conv nodes met walking up from the tensors `starts`, stopping at each Conv (except the one writing `skip`).
    Nodes are known by their first output (node names may be empty)."""
    producers = {output: node for node in model.graph.node for output in node.output}
    found, seen, pending = [], set(), list(starts)
    while pending:
        node = producers.get(pending.pop())
        if node is None or node.output[0] in seen:
            continue
        seen.add(node.output[0])
        if node.op_type == "Conv" and node.output[0] != skip:
            found.append(node)
            continue
        pending.extend(name for name in node.input if name)
    return found


def find_head(model) -> Head | None:
    """The YOLOv8/YOLO11 DFL head of an ONNX model with static shapes, or None when it has none."""
    import onnx

    dfl = _dfl_conv(model)
    if dfl is None:
        return None
    heads = _last_convs(model, [output.name for output in model.graph.output], dfl.output[0])
    box_names = {node.output[0] for node in _last_convs(model, [dfl.input[0]], dfl.output[0])}
    boxes = [node for node in heads if node.output[0] in box_names]
    classes = [node for node in heads if node.output[0] not in box_names]
    if not boxes or len(boxes) != len(classes):
        return None
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {value.name: [dim.dim_value if dim.HasField("dim_value") else None for dim in value.type.tensor_type.shape.dim]
              for value in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}
    image = shapes.get(model.graph.input[0].name, [])
    height, width = (image[2], image[3]) if len(image) == 4 else (None, None)
    if height is None or width is None:
        return None
    bins = int(_constant(model, dfl.input[1]).shape[1])

    def grid_of(node):
        shape = shapes.get(node.output[0])
        return (shape[1], tuple(shape[2:])) if shape and len(shape) == 4 and None not in shape else (None, None)

    by_grid = {grid_of(node)[1]: node for node in classes}
    levels, class_counts = [], set()
    for box in boxes:
        channels, grid = grid_of(box)
        partner = by_grid.get(grid)
        if channels != 4 * bins or partner is None or grid is None or height % grid[0] or width % grid[1]:
            return None
        class_counts.add(grid_of(partner)[0])
        levels.append(Level(height // grid[0], grid, box.output[0], partner.output[0]))
    if len(class_counts) != 1 or len({level.stride for level in levels}) != len(levels):
        return None
    return Head(bins, class_counts.pop(), (height, width), tuple(sorted(levels, key=lambda level: level.stride)))


def cut(model_path: str, out: Path) -> tuple[Path, Head, dict] | None:
    """(the cut copy written to `out`, its head, the manifest record), or None when the model has no DFL head."""
    import onnx
    from onnx import helper

    model = onnx.load(model_path)
    head = find_head(model)
    if head is None:
        return None
    source_outputs = [output.name for output in model.graph.output]
    producers = {node.output[0]: node for node in model.graph.node}
    renamed: dict[str, str] = {}
    for level in head.levels:
        renamed[level.box_conv] = level.boxes
        producers[level.box_conv].output[0] = level.boxes
        model.graph.node.append(helper.make_node("Sigmoid", [level.class_conv], [level.scores], name=f"yolo_head_cut_sigmoid_{level.stride}"))
    for node in model.graph.node:  # a kept node reading a renamed tensor (none in Ultralytics' heads) reads the new name
        node.input[:] = [renamed.get(name, name) for name in node.input]
    del model.graph.output[:]
    for spec in head.outputs():
        model.graph.output.append(helper.make_tensor_value_info(spec["name"], onnx.TensorProto.FLOAT, spec["shape"]))
    removed = _prune(model)
    onnx.checker.check_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return out, head, head.manifest_record(source_outputs, removed)


def _prune(model) -> int:
    """Drop the nodes, initializers and value infos the outputs no longer need; the count of nodes dropped."""
    producers = {output: node for node in model.graph.node for output in node.output}
    needed, pending = set(), [output.name for output in model.graph.output]
    kept_nodes = set()
    while pending:
        name = pending.pop()
        if name in needed:
            continue
        needed.add(name)
        node = producers.get(name)
        if node is not None and node.output[0] not in kept_nodes:
            kept_nodes.add(node.output[0])
            pending.extend(input_name for input_name in node.input if input_name)
    kept = [node for node in model.graph.node if node.output[0] in kept_nodes]  # their order: still topological
    removed = len(model.graph.node) - len(kept)
    del model.graph.node[:]
    model.graph.node.extend(kept)
    initializers = [init for init in model.graph.initializer if init.name in needed]
    del model.graph.initializer[:]
    model.graph.initializer.extend(initializers)
    infos = [info for info in model.graph.value_info if info.name in needed]
    del model.graph.value_info[:]
    model.graph.value_info.extend(infos)
    return removed
