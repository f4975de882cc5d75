"""The task record in an artifact's manifest ("task"): what the model is for and how to read its output.

    {"name": "detect", "output": "output0", "decoder": "yolov8", "conf": 0.25, "iou": 0.45, "max_det": 300}

`validate` completes a record with its defaults and checks it against the model's output shapes, so
a record that cannot work fails at conversion time, on the controller, not on the board.
"""

from __future__ import annotations

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.tasks.geometry import guess_layout

TASK_NAMES = ("classify", "detect", "segment", "ocr-rec", "generic")
DECODERS = ("db", "yolov8", "yolov5", "ssd")
REQUIRED = object()  # a parameter without a default

_YOLO = {"conf": (0.25, "fraction"), "iou": (0.45, "fraction"), "max_det": (300, "count"), "classes": (None, "names")}
# Per task (detect: per decoder), each parameter's default and kind (how `_check_value` reads it).
PARAMS: dict[str, dict[str, tuple]] = {
    "classify": {}, "generic": {}, "ocr-rec": {},
    "segment": {"threshold": (0.5, "fraction"), "layout": ("NCHW", ("NCHW", "NHWC"))},
    "db": {"thresh": (0.3, "fraction"), "box_thresh": (0.6, "fraction"), "unclip_ratio": (1.5, "positive"),
           "max_candidates": (1000, "count"), "min_size": (3.0, "positive")},
    "yolov8": _YOLO,
    "yolov5": _YOLO,
    # scores_output: the scores tensor (default: the other output); anchors: an .npy [N, 4] (ycenter, xcenter,
    # h, w; normalized) beside the artifact; input_size: [h, w] of the model input, read off its shape when given.
    "ssd": {**_YOLO, "scores_output": (None, "text"), "anchors": (REQUIRED, "text"), "scales": ([10.0, 10.0, 5.0, 5.0], "scales"),
            "score": ("sigmoid", ("sigmoid", "softmax")), "background": (None, "bool"), "input_size": (None, "size")},
}


def _check_value(key: str, value, kind, where: str):
    """The parameter's value in its canonical type, or ArtifactError."""
    def bad(expected: str):
        return ArtifactError(f"{where}: task parameter {key}={value!r} must be {expected}")
    if isinstance(kind, tuple):
        if value not in kind:
            raise bad("one of " + ", ".join(kind))
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if kind == "text":
        if not isinstance(value, str) or not value:
            raise bad("a non-empty string")
        return value
    if kind == "names":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad("a list of class names")
        return value
    if kind in ("scales", "size"):
        count, cast = (4, float) if kind == "scales" else (2, int)
        numbers = isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        if not numbers or len(value) != count or not all(v > 0 for v in value):
            raise bad(f"a list of {count} positive numbers")
        return [cast(v) for v in value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad("a number")
    if kind == "fraction" and not 0 <= value <= 1:
        raise bad("between 0 and 1")
    if kind == "positive" and not value > 0:
        raise bad("above 0")
    if kind == "count":
        if value != int(value) or value < 1:
            raise bad("a whole number of at least 1")
        return int(value)
    return float(value)


def _dims(shape) -> list:
    """Shape with every dynamic dimension ("?", a name, None, -1) as None."""
    return [d if isinstance(d, int) and not isinstance(d, bool) and d >= 0 else None for d in shape]


def _image_size(inputs: list[dict] | None) -> list[int] | None:
    if not inputs:
        return None
    shape = _dims(inputs[0]["shape"])
    layout = guess_layout(shape)
    size = (shape[2:4] if layout == "NCHW" else shape[1:3]) if layout else [None]
    return None if None in size else [int(side) for side in size if side is not None]


def validate(record: dict | str | None, outputs: list[dict], labels: list[str] | None, where: str,
             inputs: list[dict] | None = None) -> dict:
    """The complete record (defaults filled in), or ArtifactError naming `where`, the value and the fix.
    `outputs` (and `inputs`, used for ssd's input size) are the model's specs [{"name", "shape"}]."""
    record = {"name": "generic"} if record is None else {"name": record} if isinstance(record, str) else record
    if not isinstance(record, dict):
        raise ArtifactError(f"{where}: task must be a task name or an object such as {{\"name\": \"classify\"}}, not {record!r}")
    name = record.get("name")
    if name not in TASK_NAMES:
        raise ArtifactError(f"{where}: unknown task {name!r}; the tasks are {', '.join(TASK_NAMES)}")
    output_names = [item["name"] for item in outputs]
    if not output_names:
        raise ArtifactError(f"{where}: the model has no outputs for task {name!r}")
    result = {"name": name, "output": record.get("output", output_names[0])}
    if result["output"] not in output_names:
        raise ArtifactError(f"{where}: task output {result['output']!r} is not an output of the model; the outputs are {output_names}")
    params_of = name
    if name == "detect":
        result["decoder"] = params_of = record.get("decoder")
        if params_of not in DECODERS:
            raise ArtifactError(f"{where}: detect needs \"decoder\": one of {', '.join(DECODERS)} (got {params_of!r})")
    allowed = PARAMS[params_of]
    unknown = sorted(set(record) - set(allowed) - {"name", "output", "decoder"})
    if unknown:
        raise ArtifactError(f"{where}: unknown parameter(s) {unknown} for task {params_of!r}; its parameters are {sorted(allowed) or 'none'}")
    for key, (default, kind) in allowed.items():
        if key in record and record[key] is not None:
            result[key] = _check_value(key, record[key], kind, where)
        elif default is REQUIRED:
            raise ArtifactError(f"{where}: task {params_of!r} needs the parameter {key!r}")
        else:
            result[key] = default
    shapes = {item["name"]: _dims(item["shape"]) for item in outputs}
    _check_shapes(result, shapes, labels, where, inputs)
    return result


def _check_shapes(record: dict, shapes: dict, labels, where: str, inputs) -> None:
    name, output = record["name"], record["output"]
    shape = shapes[output]
    what = f"{where}: task {record.get('decoder', name)!r} reads output {output!r} of shape {['?' if d is None else d for d in shape]}"
    if name == "classify":
        if len(shape) < 2 or any(d not in (1, None) for d in shape[1:-1]) or shape[-1] == 1:
            raise ArtifactError(f"{what}, which has no class axis; classify needs [N, C] (C >= 2), or generic/segment/detect for other outputs")
    elif name == "segment":
        if len(shape) not in (3, 4):
            raise ArtifactError(f"{what}; segment needs [N, H, W] or [N, C, H, W] ([N, H, W, C] with \"layout\": \"NHWC\")")
    elif name == "ocr-rec":
        if len(shape) != 3:
            raise ArtifactError(f"{what}; ocr-rec needs a CTC output [N, T, K]")
        if not labels:
            raise ArtifactError(f"{where}: ocr-rec needs the character list as the artifact's labels (index 0 the CTC blank); pass --labels")
        if shape[2] is not None and len(labels) != shape[2]:
            raise ArtifactError(f"{what}, but the character list has {len(labels)} entries; it needs {shape[2]} (the blank, the characters "
                                "and, for PP-OCR, a final ' ')")
    elif record.get("decoder") == "db":
        if len(shape) != 4 or shape[1] not in (1, None):
            raise ArtifactError(f"{what}; db needs a probability map [N, 1, H, W]")
    elif record.get("decoder") in ("yolov8", "yolov5"):
        head = {"yolov8": ("[1, 4 + C, N]", 1, 4), "yolov5": ("[1, N, 5 + C]", 2, 5)}[record["decoder"]]
        if len(shape) != 3 or (shape[head[1]] is not None and shape[head[1]] <= head[2]):
            raise ArtifactError(f"{what}; {record['decoder']} needs {head[0]}")
        classes = record["classes"]
        if classes is not None and shape[head[1]] is not None and len(classes) != shape[head[1]] - head[2]:
            raise ArtifactError(f"{what}: {shape[head[1]] - head[2]} classes, but \"classes\" names {len(classes)}")
    elif record.get("decoder") == "ssd":
        _check_ssd(record, shapes, what, where, inputs)


def _check_ssd(record: dict, shapes: dict, what: str, where: str, inputs) -> None:
    others = [n for n in shapes if n != record["output"]]
    if record["scores_output"] is None:
        if not others:
            raise ArtifactError(f"{where}: ssd needs two outputs (boxes [1, N, 4] and scores [1, N, C]); the model has one")
        record["scores_output"] = others[0]
    if record["scores_output"] not in others:
        raise ArtifactError(f"{where}: ssd scores_output {record['scores_output']!r} is not another output of the model; "
                            f"the outputs are {list(shapes)}")
    boxes, scores = shapes[record["output"]], shapes[record["scores_output"]]
    if len(boxes) != 3 or boxes[2] not in (4, None):
        raise ArtifactError(f"{what}; ssd needs box offsets [1, N, 4] there (\"output\") and the scores in \"scores_output\"")
    if len(scores) != 3 or (None not in (boxes[1], scores[1]) and boxes[1] != scores[1]):
        raise ArtifactError(f"{where}: ssd scores {record['scores_output']!r} {scores} do not fit boxes {record['output']!r} {boxes}; "
                            "the scores need [1, N, C] with the same N")
    if record["background"] is None:
        record["background"] = record["score"] == "softmax"  # softmax heads carry a background column 0
    if record["input_size"] is None:
        record["input_size"] = _image_size(inputs)
        if record["input_size"] is None:
            raise ArtifactError(f"{where}: ssd needs \"input_size\": [height, width] of the model input (its boxes are normalized)")
