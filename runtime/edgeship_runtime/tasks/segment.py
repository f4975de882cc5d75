"""segment: per-pixel class maps -> class masks; mean IoU against fp32's masks and against label maps."""

from __future__ import annotations

import numpy as np

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.tasks.base import Gate, Headline, Task, not_measurable, shape_text
from edgeship_runtime.tasks.classify import name_of


def binary(record: dict, output: np.ndarray) -> bool:
    """True when the output is a one-channel probability map (thresholded), False for per-class logits (argmax)."""
    shape = np.shape(output)
    return len(shape) == 3 or shape[1 if record["layout"] == "NCHW" else 3] == 1


def masks(record: dict, output: np.ndarray) -> np.ndarray:
    """A batch of outputs ([N, H, W], [N, 1|C, H, W] or NHWC) -> integer masks [N, H, W]."""
    output = np.asarray(output)
    one_channel = binary(record, output)  # read in the record's layout, before moving channels first
    if output.ndim == 4 and record["layout"] == "NHWC":
        output = output.transpose(0, 3, 1, 2)
    if one_channel:
        return (output.reshape(output.shape[0], *output.shape[-2:]) > record["threshold"]).astype(np.int64)
    return output.argmax(axis=1).astype(np.int64)


class IoU:
    """Intersection and union per class, summed over images (dataset-level IoU, as mIoU is usually
    reported). With `foreground_only` (one-channel maps) only class 1 counts: a mostly empty image
    would otherwise score well on its background alone."""

    def __init__(self, foreground_only: bool):
        self.foreground_only = foreground_only
        self.intersection: dict[int, int] = {}
        self.union: dict[int, int] = {}
        self.pixels = self.equal = self.truth_foreground = 0

    def add(self, predicted: np.ndarray, truth: np.ndarray) -> None:
        predicted, truth = np.asarray(predicted), np.asarray(truth)
        classes = [1] if self.foreground_only else np.union1d(np.unique(predicted), np.unique(truth)).tolist()
        for value in classes:
            in_predicted, in_truth = predicted == value, truth == value
            self.intersection[value] = self.intersection.get(value, 0) + int(np.count_nonzero(in_predicted & in_truth))
            self.union[value] = self.union.get(value, 0) + int(np.count_nonzero(in_predicted | in_truth))
        self.pixels += predicted.size
        self.truth_foreground += int(np.count_nonzero(truth == 1)) if self.foreground_only else int(truth.size)
        self.equal += int(np.count_nonzero(predicted == truth))

    def figures(self, truth: str) -> dict:
        """mean IoU, per class and pixel agreement; not measurable when `truth` (what the masks were
        compared with, for the reason) has no foreground (one-channel maps) or no pixel at all."""
        if not self.truth_foreground:
            return not_measurable(f"{truth} have no {'foreground ' if self.foreground_only else ''}pixel", "mean_iou", "pixel_agreement",
                                  per_class_iou={})
        per_class = {value: self.intersection[value] / self.union[value] for value in sorted(self.union) if self.union[value]}
        return {"mean_iou": float(np.mean(list(per_class.values()))),
                "per_class_iou": {str(value): iou for value, iou in per_class.items()},
                "pixel_agreement": self.equal / self.pixels}

class Segment(Task):
    name = kind = "segment"
    headline = Headline("mean_iou", "mean IoU", "mean_iou", "mean IoU")
    extra = "vision"
    params = {"threshold": (0.5, "fraction"), "layout": ("NCHW", ("NCHW", "NHWC"))}
    gates = {"min_iou": Gate("mean_iou", "mean IoU against fp32's masks")}
    tolerances = {"fp32": {"min_iou": 0.99}, "fp16": {"min_iou": 0.97}, "dynamic": {"min_iou": 0.90}, "int8": {"min_iou": 0.90}}
    tolerance_reasons = {
        "fp32": "the same graph: only a boundary pixel tied to the last bit may flip",
        "fp16": "fp16 moves the logits by ~1e-3: boundary pixels flip, the regions stay",
        "dynamic": "int8 weights move boundaries by a pixel or two; 0.90 keeps every region's shape",
        "int8": "as dynamic: 0.90 is what a usable int8 segmenter keeps",
    }
    label_format = "integer class maps [N, H, W] (one per sample)"

    def check_shapes(self, record, shapes, labels, where, inputs) -> None:
        shape = shapes[record["output"]]
        if len(shape) not in (3, 4):
            raise ArtifactError(f"{where}: task {self.name!r} reads output {record['output']!r} of shape {shape_text(shape)}; "
                                "segment needs [N, H, W] or [N, C, H, W] ([N, H, W, C] with \"layout\": \"NHWC\")")

    def metrics(self, record, reference, converted, artifact_dir) -> dict:
        output = record["output"]
        iou = IoU(foreground_only=binary(record, reference[0][output]))
        for ref, out in zip(reference, converted):
            for truth, found in zip(masks(record, ref[output]), masks(record, out[output])):
                iou.add(found, truth)
        return iou.figures("fp32's masks")

    def check_labels(self, record, labels, samples, where) -> None:
        found = f"{where}: labels are {labels.dtype} {list(labels.shape)}"
        if labels.ndim == 0 or labels.shape[0] != samples:
            raise ArtifactError(f"{found} for {samples} samples; task {self.name!r} takes {self.label_format}")
        if labels.dtype.kind not in "iu" or labels.ndim != 3 or (labels.size and labels.min() < 0):
            raise ArtifactError(f"{found}; task {self.name!r} takes {self.label_format}, each >= 0")

    def against_labels(self, record, outputs, labels, char_list, artifact_dir) -> dict:
        output = record["output"]
        iou = IoU(foreground_only=binary(record, outputs[0][output]))
        found_masks = [mask for sample in outputs for mask in masks(record, sample[output])]
        for mask, truth in zip(found_masks, labels):
            if mask.shape != truth.shape:
                raise ArtifactError(f"against_labels: label maps are {list(truth.shape)}, the model's masks {list(mask.shape)}; "
                                    "labels must be at the model output's resolution")
            iou.add(mask, truth)
        return {**iou.figures("the label maps"), "samples": len(found_masks)}

    def postprocess(self, record, outputs, labels, artifact_dir) -> dict:
        mask = masks(record, np.asarray(outputs[record["output"]])[:1])[0]
        values, counts = np.unique(mask, return_counts=True)
        named = name_of(labels)
        classes = [{"class": int(v), "label": named(int(v)), "pixels": int(n), "fraction": float(n / mask.size)}
                   for v, n in sorted(zip(values, counts), key=lambda pair: -pair[1])]
        foreground = [c for c in classes if c["class"] != 0]
        return {"kind": self.kind, "mask": mask.astype(np.uint8 if mask.max(initial=0) < 256 else np.int32), "shape": list(mask.shape),
                "classes": classes, "label": foreground[0]["label"] if foreground else named(0),
                "confidence": foreground[0]["fraction"] if foreground else 1.0}


TASKS = (Segment(),)
