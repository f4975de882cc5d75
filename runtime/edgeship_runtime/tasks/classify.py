"""classify: one score per class on the last axis of one output; top-1 against fp32 and accuracy against labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.tasks.base import Gate, Headline, Task, shape_text

TOP_CLASSES = 3


def top1_agreement(reference: list[np.ndarray], converted: list[np.ndarray]) -> float | None:
    """Fraction of rows whose best class agrees, over a classifier's last (class) axis."""
    agreements = [float(np.mean(np.reshape(r, (-1, np.shape(r)[-1])).argmax(-1) == np.reshape(c, (-1, np.shape(c)[-1])).argmax(-1)))
                  for r, c in zip(reference, converted)]
    return float(np.mean(agreements)) if agreements else None


def name_of(names: list[str] | None):
    return lambda i: names[i] if names and 0 <= i < len(names) else str(i)


def top_classes(scores: np.ndarray, labels: list[str] | None, top: int = TOP_CLASSES) -> dict:
    """Top classes of one output: probabilities as given, or a softmax of logits (as the demo did)."""
    scores = np.asarray(scores, np.float64).reshape(-1)
    if not (scores.min() >= 0 and scores.max() <= 1 and abs(scores.sum() - 1) < 1e-3):
        scores = np.exp(scores - scores.max())
        scores /= scores.sum()
    order = np.argsort(-scores, kind="stable")[:top]
    named = name_of(labels)
    return {"kind": Classify.kind, "class": int(order[0]), "label": named(int(order[0])), "confidence": float(scores[order[0]]),
            "top": [{"class": int(i), "label": named(int(i)), "confidence": float(scores[i])} for i in order]}


class Classify(Task):
    name = kind = "classify"
    headline = Headline("top1_agreement", "top-1 agreement", "accuracy", "accuracy")
    gates = {"min_top1_agreement": Gate("top1_agreement", "top-1 agreement")}
    generic_gates_always = True
    generic_gates = ("min_cosine", "max_range_error")  # a classifier's gates had no SNR gate: its verdicts stay as they were
    tolerances = {"fp32": {"min_top1_agreement": 0.99}, "fp16": {"min_top1_agreement": 0.98},
                  "dynamic": {"min_top1_agreement": 0.95}, "int8": {"min_top1_agreement": 0.90}}
    tolerance_reasons = {
        "fp32": "the same graph: one sample in a hundred may flip between two classes tied to the last bit",
        "fp16": "fp16 moves logits by ~1e-3, which flips near-ties: two in a hundred",
        "dynamic": "weights in int8: a usable classifier keeps 95 % of its fp32 answers",
        "int8": "weights and activations in int8: 90 % is what a usable int8 classifier keeps",
    }
    label_format = "integer class ids [N] (one per sample)"

    def implied_by(self, class_names: bool, labels: np.ndarray | None) -> bool:
        # class names, or one integer class id per sample: a classifier (as every model was before tasks)
        return class_names or (labels is not None and labels.ndim == 1 and labels.dtype.kind in "iu")

    def check_shapes(self, record, shapes, labels, where, inputs) -> None:
        shape = shapes[record["output"]]
        if len(shape) < 2 or any(d not in (1, None) for d in shape[1:-1]) or shape[-1] == 1:
            raise ArtifactError(f"{where}: task {self.name!r} reads output {record['output']!r} of shape {shape_text(shape)}, which has no "
                                "class axis; classify needs [N, C] (C >= 2), or another task for other outputs")

    def class_count(self, record, shapes) -> int | None:
        size = (list(shapes.get(record["output"]) or [None]) or [None])[-1]  # the class axis is the last
        return size if isinstance(size, int) and size > 0 else None

    def metrics(self, record, reference, converted, artifact_dir: Path | None) -> dict:
        output = record["output"]
        return {"top1_agreement": top1_agreement([r[output] for r in reference], [c[output] for c in converted])}

    def output_figures(self, record, outputs, metrics) -> None:
        outputs[record["output"]]["top1_agreement"] = metrics["top1_agreement"]

    def check_labels(self, record, labels, samples, where) -> None:
        if labels.ndim == 0 or labels.shape[0] != samples:
            raise ArtifactError(f"{where}: labels are {labels.dtype} {list(labels.shape)} for {samples} samples; "
                                f"task {self.name!r} takes {self.label_format}")
        if labels.dtype.kind not in "iu" or labels.ndim != 1 or (labels.size and labels.min() < 0):
            raise ArtifactError(f"{where}: labels are {labels.dtype} {list(labels.shape)}; task {self.name!r} takes {self.label_format}, each >= 0")

    def against_labels(self, record, outputs, labels, char_list, artifact_dir) -> dict:
        output = record["output"]
        predictions = np.concatenate([np.reshape(sample[output], (-1, np.shape(sample[output])[-1])).argmax(-1) for sample in outputs])
        return {"accuracy": float(np.mean(predictions == labels[:len(predictions)])), "samples": len(predictions)}

    def postprocess(self, record, outputs, labels, artifact_dir) -> dict:
        return top_classes(np.asarray(outputs[record["output"]])[0], labels)


TASKS = (Classify(),)
