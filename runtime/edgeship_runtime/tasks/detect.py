"""detect: boxes from a detector head (decoders in `decoders`, a sub-registry: db, yolov8, yolov8_dfl, yolov5, ssd);
detection F1 against fp32's boxes and against labelled boxes, at IoU 0.5."""

from __future__ import annotations

import numpy as np

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.tasks.base import Gate, Headline, Task, not_measurable
from edgeship_runtime.tasks.classify import name_of
from edgeship_runtime.tasks.decoders import DECODERS, decode, nms
from edgeship_runtime.tasks.geometry import detection_scores, match_boxes

__all__ = ["DECODERS", "Detect", "decode", "nms"]
IOU_THRESHOLD = 0.5
F1_KEYS = ("precision", "recall", "f1")


class Detect(Task):
    name = kind = "detect"
    headline = Headline("f1", "detection F1", "f1", "detection F1")
    extra = "vision"
    variant_key = "decoder"
    variants = {name: decoder.params for name, decoder in DECODERS.items()}
    gates = {"min_f1": Gate("f1", "detection F1 against fp32 at IoU 0.5")}
    tolerances = {"fp32": {"min_f1": 0.99}, "fp16": {"min_f1": 0.97}, "dynamic": {"min_f1": 0.90}, "int8": {"min_f1": 0.90}}
    tolerance_reasons = {
        "fp32": "fp32 should find the same boxes; 0.99 leaves one box in a hundred to ties at a threshold",
        "fp16": "fp16 moves scores by ~1e-3, which flips the odd box sitting on the conf threshold",
        "dynamic": "int8 weights move boxes by a pixel or two and scores by a few percent",
        "int8": "int8 moves boxes by a pixel or two and scores by a few percent; 0.90 is what a usable int8 detector keeps",
    }
    label_format = "float rows [M, 6]: sample index, x1, y1, x2, y2 in model-input pixels, class id"
    finds_boxes = True

    def check_shapes(self, record, shapes, labels, where, inputs) -> None:
        DECODERS[record["decoder"]].check(record, shapes, where, inputs)

    def metrics(self, record, reference, converted, artifact_dir) -> dict:
        tp = fp = fn = reference_boxes = converted_boxes = 0
        for ref, out in zip(reference, converted):
            for truth, found in zip(decode(record, ref, artifact_dir), decode(record, out, artifact_dir)):
                match = match_boxes(found["boxes"], truth["boxes"], IOU_THRESHOLD, found["classes"], truth["classes"])
                tp, fp, fn = tp + match["tp"], fp + match["fp"], fn + match["fn"]
                reference_boxes, converted_boxes = reference_boxes + len(truth["boxes"]), converted_boxes + len(found["boxes"])
        counts = {"reference_boxes": reference_boxes, "converted_boxes": converted_boxes, "iou_threshold": IOU_THRESHOLD}
        if not reference_boxes:  # F1 over no boxes is not a score (a random-weight detector finds nothing)
            return not_measurable("fp32 finds no box on any sample", *F1_KEYS, tp=tp, fp=fp, fn=fn, **counts)
        return {**detection_scores(tp, fp, fn), **counts}

    def check_labels(self, record, labels, samples, where) -> None:
        found, expected = f"{where}: labels are {labels.dtype} {list(labels.shape)}", f"task {self.name!r} takes {self.label_format}"
        if labels.dtype.kind not in "iuf" or labels.ndim != 2 or labels.shape[1] != 6 or not np.isfinite(labels).all():
            raise ArtifactError(f"{found}; {expected}")
        index, classes = labels[:, 0], labels[:, 5]
        if np.any(index != np.round(index)) or np.any(index < 0) or np.any(index >= samples):
            raise ArtifactError(f"{found} with sample indices outside 0..{samples - 1} or not whole; {expected}")
        if np.any(classes != np.round(classes)) or np.any(classes < 0):
            raise ArtifactError(f"{found} with class ids that are negative or not whole; {expected}")
        if np.any(labels[:, 3] < labels[:, 1]) or np.any(labels[:, 4] < labels[:, 2]):
            raise ArtifactError(f"{found} with boxes whose x2 < x1 or y2 < y1; {expected}")

    def against_labels(self, record, outputs, labels, char_list, artifact_dir) -> dict:
        detections = [found for sample in outputs for found in decode(record, sample, artifact_dir)]
        tp = fp = fn = 0
        for index, found in enumerate(detections):
            truth = labels[labels[:, 0] == index]
            match = match_boxes(found["boxes"], truth[:, 1:5], IOU_THRESHOLD, found["classes"], truth[:, 5].astype(np.int64))
            tp, fp, fn = tp + match["tp"], fp + match["fp"], fn + match["fn"]
        counts = {"samples": len(detections), "iou_threshold": IOU_THRESHOLD, "reference_boxes": tp + fn}
        if not tp + fn:
            return not_measurable("the labels hold no box", *F1_KEYS, tp=tp, fp=fp, fn=fn, **counts)
        return {**detection_scores(tp, fp, fn), **counts}

    def postprocess(self, record, outputs, labels, artifact_dir) -> dict:
        found = decode(record, {name: np.asarray(value)[:1] for name, value in outputs.items()}, artifact_dir)[0]
        named = DECODERS[record["decoder"]].labelled or name_of(record.get("classes") or labels)
        quads = found["quads"]
        boxes = [{"box": [float(v) for v in box], "quad": quads[i].tolist() if quads is not None else None,
                  "score": float(found["scores"][i]), "class": int(found["classes"][i]), "label": named(int(found["classes"][i]))}
                 for i, box in enumerate(found["boxes"])]
        best = boxes[0] if boxes else None
        # "label"/"confidence" summarize the frame for a one-line banner: the best box, or nothing found.
        result = {"kind": self.kind, "boxes": boxes, "label": f"{len(boxes)} found, best {best['label']}" if best else "nothing found",
                  "confidence": best["score"] if best else 0.0}
        landmarks = found.get("landmarks")
        if landmarks is not None and landmarks.size:  # an ssd decoder's keypoints (a face's eyes, nose, mouth, ears): drawn as points
            result["points"] = np.asarray(landmarks, np.float64).reshape(-1, 2).round(2).tolist()
        return result


TASKS = (Detect(),)
