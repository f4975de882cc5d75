"""Segmentation maps -> class masks, and the mean IoU of two sets of masks."""

from __future__ import annotations

import numpy as np


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
        self.pixels = self.equal = 0

    def add(self, predicted: np.ndarray, truth: np.ndarray) -> None:
        predicted, truth = np.asarray(predicted), np.asarray(truth)
        classes = [1] if self.foreground_only else np.union1d(np.unique(predicted), np.unique(truth)).tolist()
        for value in classes:
            in_predicted, in_truth = predicted == value, truth == value
            self.intersection[value] = self.intersection.get(value, 0) + int(np.count_nonzero(in_predicted & in_truth))
            self.union[value] = self.union.get(value, 0) + int(np.count_nonzero(in_predicted | in_truth))
        self.pixels += predicted.size
        self.equal += int(np.count_nonzero(predicted == truth))

    def figures(self) -> dict:
        per_class = {value: self.intersection[value] / self.union[value] for value in sorted(self.union) if self.union[value]}
        return {"mean_iou": float(np.mean(list(per_class.values()))) if per_class else 1.0,  # nothing anywhere: both agree
                "per_class_iou": {str(value): iou for value, iou in per_class.items()},
                "pixel_agreement": self.equal / self.pixels if self.pixels else 1.0}
