"""Ground truth in an eval set (`labels` in the .npz): its format per task, and the task metric against it.

    classify  int [N]                   the class id of each sample
    detect    float [M, 6]              one row per box: sample index, x1, y1, x2, y2 (model-input pixels), class
    segment   int [N, H, W]             the class id of each pixel (one-channel models: 0 background, 1 foreground)
    ocr-rec   unicode strings [N]       the text of each sample
    generic   none
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeship_runtime.errors import ArtifactError

FORMATS = {
    "classify": "integer class ids [N] (one per sample)",
    "detect": "float rows [M, 6]: sample index, x1, y1, x2, y2 in model-input pixels, class id",
    "segment": "integer class maps [N, H, W] (one per sample)",
    "ocr-rec": "unicode strings [N] (one per sample)",
}


def check_labels(record: dict, labels: np.ndarray, samples: int, where: str) -> None:
    """ArtifactError (one line: where, what is wrong, the format expected) unless `labels` fit the task."""
    name = record["name"]
    if labels is None:
        return
    if name == "generic":
        raise ArtifactError(f"{where}: labels were given, but task 'generic' has no ground truth to compare with; "
                            "drop them or set the task (classify, detect, segment, ocr-rec)")
    labels = np.asarray(labels)
    expected = f"task {name!r} takes {FORMATS[name]}"
    found = f"{where}: labels are {labels.dtype} {list(labels.shape)}"
    per_sample = name != "detect"
    if per_sample and (labels.ndim == 0 or labels.shape[0] != samples):
        raise ArtifactError(f"{found} for {samples} samples; {expected}")
    if name == "classify" and (labels.dtype.kind not in "iu" or labels.ndim != 1 or (labels.size and labels.min() < 0)):
        raise ArtifactError(f"{found}; {expected}, each >= 0")
    if name == "segment" and (labels.dtype.kind not in "iu" or labels.ndim != 3 or (labels.size and labels.min() < 0)):
        raise ArtifactError(f"{found}; {expected}, each >= 0")
    if name == "ocr-rec" and (labels.dtype.kind != "U" or labels.ndim != 1):
        raise ArtifactError(f"{found}; {expected} (numpy dtype '<U...', not objects or bytes)")
    if name == "detect":
        if labels.dtype.kind not in "iuf" or labels.ndim != 2 or labels.shape[1] != 6 or not np.isfinite(labels).all():
            raise ArtifactError(f"{found}; {expected}")
        index, classes = labels[:, 0], labels[:, 5]
        if np.any(index != np.round(index)) or np.any(index < 0) or np.any(index >= samples):
            raise ArtifactError(f"{found} with sample indices outside 0..{samples - 1} or not whole; {expected}")
        if np.any(classes != np.round(classes)) or np.any(classes < 0):
            raise ArtifactError(f"{found} with class ids that are negative or not whole; {expected}")
        if np.any(labels[:, 3] < labels[:, 1]) or np.any(labels[:, 4] < labels[:, 2]):
            raise ArtifactError(f"{found} with boxes whose x2 < x1 or y2 < y1; {expected}")


def _rows(outputs: list[dict], output: str) -> list[np.ndarray]:
    """Every image of every sample, in order (a sample may carry a batch of several)."""
    return [row for sample in outputs for row in np.asarray(sample[output])]


def against_labels(record: dict, outputs: list[dict[str, np.ndarray]], labels: np.ndarray,
                   char_list: list[str] | None = None, artifact_dir: Path | None = None) -> dict:
    """The task metric of one model's outputs (one dict per sample) against ground truth checked by
    `check_labels`: classify accuracy; detect precision/recall/F1 at IoU 0.5; segment mean IoU;
    ocr-rec character accuracy (1 - CER, floored at 0) and exact-match rate."""
    name, output, labels = record["name"], record["output"], np.asarray(labels)
    if name == "generic":
        raise ArtifactError("against_labels: task 'generic' has no ground truth; set the artifact's task to use labels")
    if name == "classify":
        predictions = np.concatenate([np.reshape(sample[output], (-1, np.shape(sample[output])[-1])).argmax(-1) for sample in outputs])
        return {"accuracy": float(np.mean(predictions == labels[:len(predictions)])), "samples": len(predictions)}
    if name == "detect":
        from edgeship_runtime.tasks.detect import decode
        from edgeship_runtime.tasks.geometry import detection_scores, match_boxes

        detections = [found for sample in outputs for found in decode(record, sample, artifact_dir)]
        tp = fp = fn = 0
        for index, found in enumerate(detections):
            truth = labels[labels[:, 0] == index]
            match = match_boxes(found["boxes"], truth[:, 1:5], 0.5, found["classes"], truth[:, 5].astype(np.int64))
            tp, fp, fn = tp + match["tp"], fp + match["fp"], fn + match["fn"]
        return {**detection_scores(tp, fp, fn), "samples": len(detections), "iou_threshold": 0.5}
    if name == "segment":
        from edgeship_runtime.tasks.segment import IoU, binary, masks

        iou = IoU(foreground_only=binary(record, outputs[0][output]))
        found_masks = [mask for sample in outputs for mask in masks(record, sample[output])]
        for mask, truth in zip(found_masks, labels):
            if mask.shape != truth.shape:
                raise ArtifactError(f"against_labels: label maps are {list(truth.shape)}, the model's masks {list(mask.shape)}; "
                                    "labels must be at the model output's resolution")
            iou.add(mask, truth)
        return {**iou.figures(), "samples": len(found_masks)}
    from edgeship_runtime.tasks.text import agreement, ctc_greedy, to_text

    if not char_list:
        raise ArtifactError("against_labels: ocr-rec needs the character list (the artifact's labels) to read text")
    read = [to_text(ctc_greedy(row)[0], char_list) for row in _rows(outputs, output)]
    figures = agreement([str(text) for text in labels[:len(read)]], read, "ocr-rec's character accuracy")
    return {"char_accuracy": figures["char_agreement"], "exact_match": figures["exact_agreement"],
            "edit_distance": figures["edit_distance"], "reference_chars": figures["reference_chars"], "samples": len(read)}
