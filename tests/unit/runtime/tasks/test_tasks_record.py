from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.tasks import TASK_NAMES, default_tolerances, validate

RUNTIME = Path(__file__).resolve().parents[4] / "runtime"
LOGITS = [{"name": "logits", "shape": [1, 10]}]
YOLOV8 = [{"name": "output0", "shape": [1, 84, 8400]}]
DB = [{"name": "maps", "shape": ["?", 1, "?", "?"]}]
REC = [{"name": "softmax", "shape": ["?", 40, 5]}]
SSD = [{"name": "boxes", "shape": [1, 16, 4]}, {"name": "scores", "shape": [1, 16, 3]}]
IMAGE = [{"name": "image", "shape": [1, 3, 320, 256]}]


def test_defaults_are_filled_in_per_task_and_decoder():
    assert validate(None, LOGITS, None, "m.json") == {"name": "generic", "output": "logits"}
    assert validate("classify", LOGITS, None, "m.json") == {"name": "classify", "output": "logits"}
    assert validate({"name": "detect", "decoder": "db"}, DB, None, "m.json") == {
        "name": "detect", "output": "maps", "decoder": "db", "thresh": 0.3, "box_thresh": 0.6, "unclip_ratio": 1.5,
        "max_candidates": 1000, "min_size": 3.0}
    yolo = validate({"name": "detect", "decoder": "yolov8", "conf": 0.4, "classes": [f"c{i}" for i in range(80)]}, YOLOV8, None, "m.json")
    assert yolo["conf"] == 0.4 and yolo["iou"] == 0.45 and yolo["max_det"] == 300
    assert validate({"name": "segment"}, [{"name": "mask", "shape": [1, 1, 64, 64]}], None, "m.json")["threshold"] == 0.5


def test_ssd_finds_its_scores_output_background_and_input_size():
    ssd = validate({"name": "detect", "decoder": "ssd", "anchors": "anchors.npy", "score": "softmax"}, SSD, None, "m.json", inputs=IMAGE)
    assert ssd["output"] == "boxes" and ssd["scores_output"] == "scores"
    assert ssd["background"] is True and ssd["input_size"] == [320, 256] and ssd["scales"] == [10.0, 10.0, 5.0, 5.0]
    with pytest.raises(ArtifactError, match="needs \"input_size\""):
        validate({"name": "detect", "decoder": "ssd", "anchors": "anchors.npy"}, SSD, None, "m.json")
    with pytest.raises(ArtifactError, match="needs the parameter 'anchors'"):
        validate({"name": "detect", "decoder": "ssd"}, SSD, None, "m.json", inputs=IMAGE)


@pytest.mark.parametrize("record,outputs,labels,message", [
    ("track", LOGITS, None, "unknown task 'track'"),
    ({"name": "detect"}, YOLOV8, None, "detect needs \"decoder\""),
    ({"name": "detect", "decoder": "yolov9"}, YOLOV8, None, "one of db, yolov8"),
    ({"name": "detect", "decoder": "yolov8", "nms": 0.5}, YOLOV8, None, r"unknown parameter\(s\) \['nms'\]"),
    ({"name": "classify", "top": 5}, LOGITS, None, "its parameters are none"),
    ({"name": "detect", "decoder": "yolov8", "conf": 1.5}, YOLOV8, None, "conf=1.5 must be between 0 and 1"),
    ({"name": "detect", "decoder": "yolov8", "max_det": 2.5}, YOLOV8, None, "a whole number"),
    ({"name": "detect", "decoder": "yolov8", "classes": ["a", "b"]}, YOLOV8, None, "80 classes, but \"classes\" names 2"),
    ({"name": "classify", "output": "probs"}, LOGITS, None, "'probs' is not an output"),
    ("classify", [{"name": "map", "shape": [1, 21, 64, 64]}], None, "no class axis"),
    ("ocr-rec", REC, None, "needs the character list"),
    ("ocr-rec", REC, ["blank", "a", "b"], "list has 3 entries; it needs 5"),
    ("ocr-rec", LOGITS, ["blank"] * 10, "needs a CTC output"),
    ({"name": "detect", "decoder": "db"}, [{"name": "maps", "shape": [1, 2, 64, 64]}], None, r"db needs a probability map \[N, 1, H, W\]"),
    ({"name": "detect", "decoder": "yolov8"}, [{"name": "o", "shape": [1, 8400]}], None, r"yolov8 needs \[1, 4 \+ C, N\]"),
    ({"name": "detect", "decoder": "yolov5"}, [{"name": "o", "shape": [1, 25200, 5]}], None, r"yolov5 needs \[1, N, 5 \+ C\]"),
    ({"name": "detect", "decoder": "ssd", "anchors": "a.npy", "input_size": [1, 1]}, SSD[:1], None, "needs two outputs"),
    ({"name": "segment", "layout": "CHW"}, [{"name": "m", "shape": [1, 2, 8, 8]}], None, "layout='CHW' must be one of NCHW, NHWC"),
])
def test_records_that_cannot_work_are_refused_in_one_line(record, outputs, labels, message):
    with pytest.raises(ArtifactError, match=message) as caught:
        validate(record, outputs, labels, "model/manifest.json")
    assert str(caught.value).startswith("model/manifest.json: ") and "\n" not in str(caught.value)


def test_dynamic_dimensions_fit_any_value():
    assert validate("ocr-rec", [{"name": "o", "shape": ["batch", "?", "?"]}], ["blank", "a"], "m.json")["name"] == "ocr-rec"
    assert validate({"name": "detect", "decoder": "yolov5"}, [{"name": "o", "shape": [1, "n", "?"]}], None, "m.json")["decoder"] == "yolov5"


def test_tolerances_per_task_and_mode():
    assert default_tolerances("classify", "int8") == {"min_cosine": 0.98, "min_top1_agreement": 0.90, "max_range_error": 0.1}
    assert default_tolerances("classify", "fp32") == {"min_cosine": 0.9999, "min_top1_agreement": 0.99, "max_range_error": 0.001}
    assert default_tolerances("generic", "fp16") == {"min_cosine": 0.999, "min_snr_db": 25.0, "max_range_error": 0.01}
    # a task with its own metric carries the generic gates too: the fallback when its metric is not measurable
    assert default_tolerances("detect", "fp16") == {"min_f1": 0.97, "min_cosine": 0.999, "min_snr_db": 25.0, "max_range_error": 0.01}
    assert set(default_tolerances("segment", "int8")) == {"min_iou", "min_cosine", "min_snr_db", "max_range_error"}
    assert set(default_tolerances("ocr-rec", "dynamic")) == {"min_char_agreement", "min_cosine", "min_snr_db", "max_range_error"}
    assert all(default_tolerances(task, quant) for task in TASK_NAMES for quant in ("fp32", "fp16", "dynamic", "int8"))
    tolerances = default_tolerances("detect", "int8")
    tolerances["min_f1"] = 0.5
    assert default_tolerances("detect", "int8")["min_f1"] == 0.9  # callers get a copy
    with pytest.raises(ArtifactError, match="quantization mode 'int4'"):
        default_tolerances("detect", "int4")


def test_importing_needs_numpy_only_and_missing_extras_name_the_pip_extra():
    script = """
import sys
sys.modules['cv2'] = None              # as on a board without OpenCV
sys.modules['rapidfuzz'] = None
import numpy as np
import edgeship_runtime.tasks as tasks
from edgeship_runtime.errors import RuntimeUnavailable
from edgeship_runtime.tasks.detect import nms
from edgeship_runtime.tasks.text import agreement
for call in (lambda: nms(np.zeros((1, 4)), np.ones(1), 0.5), lambda: agreement(['ab'], ['ab'], 'ocr-rec')):
    try:
        call()
    except RuntimeUnavailable as error:
        print(error)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env={"PYTHONPATH": str(RUNTIME)}, check=True)
    lines = result.stdout.splitlines()
    assert lines == ["non-maximum suppression needs OpenCV: pip install 'edgeship-runtime[vision]'",
                     "ocr-rec needs rapidfuzz: pip install 'edgeship-runtime[vision]'"]
