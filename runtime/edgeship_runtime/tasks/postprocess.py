"""One sample's outputs -> what the demo draws, per task (boxes in model-input pixels: the demo maps
them to the frame with `geometry.boxes_to_frame`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TOP_CLASSES = 3


def _name_of(names: list[str] | None):
    return lambda i: names[i] if names and 0 <= i < len(names) else str(i)


def classify(scores: np.ndarray, labels: list[str] | None, top: int = TOP_CLASSES) -> dict:
    """Top classes of one output: probabilities as given, or a softmax of logits (as the demo did)."""
    scores = np.asarray(scores, np.float64).reshape(-1)
    if not (scores.min() >= 0 and scores.max() <= 1 and abs(scores.sum() - 1) < 1e-3):
        scores = np.exp(scores - scores.max())
        scores /= scores.sum()
    order = np.argsort(-scores, kind="stable")[:top]
    name_of = _name_of(labels)
    return {"kind": "classify", "class": int(order[0]), "label": name_of(int(order[0])), "confidence": float(scores[order[0]]),
            "top": [{"class": int(i), "label": name_of(int(i)), "confidence": float(scores[i])} for i in order]}


def detect(record: dict, outputs: dict[str, np.ndarray], labels: list[str] | None, artifact_dir: Path | None) -> dict:
    from edgeship_runtime.tasks.detect import decode

    found = decode(record, {name: np.asarray(value)[:1] for name, value in outputs.items()}, artifact_dir)[0]
    name_of = (lambda i: "text") if record["decoder"] == "db" else _name_of(record.get("classes") or labels)
    quads = found["quads"]
    boxes = [{"box": [float(v) for v in box], "quad": quads[i].tolist() if quads is not None else None,
              "score": float(found["scores"][i]), "class": int(found["classes"][i]), "label": name_of(int(found["classes"][i]))}
             for i, box in enumerate(found["boxes"])]
    best = boxes[0] if boxes else None
    # "label"/"confidence" summarize the frame for a one-line banner: the best box, or nothing found.
    return {"kind": "detect", "boxes": boxes, "label": f"{len(boxes)} found, best {best['label']}" if best else "nothing found",
            "confidence": best["score"] if best else 0.0}


def segment(record: dict, output: np.ndarray, labels: list[str] | None) -> dict:
    from edgeship_runtime.tasks.segment import masks

    mask = masks(record, np.asarray(output)[:1])[0]
    values, counts = np.unique(mask, return_counts=True)
    name_of = _name_of(labels)
    classes = [{"class": int(v), "label": name_of(int(v)), "pixels": int(n), "fraction": float(n / mask.size)}
               for v, n in sorted(zip(values, counts), key=lambda pair: -pair[1])]
    foreground = [c for c in classes if c["class"] != 0]
    return {"kind": "segment", "mask": mask.astype(np.uint8 if mask.max(initial=0) < 256 else np.int32), "shape": list(mask.shape),
            "classes": classes, "label": foreground[0]["label"] if foreground else name_of(0),
            "confidence": foreground[0]["fraction"] if foreground else 1.0}


def postprocess(record: dict, outputs: dict[str, np.ndarray], labels: list[str] | None, artifact_dir: Path | None = None) -> dict:
    """ONE sample's outputs (batch axis 1) for a validated record:
    classify -> {"kind": "classify", "class", "label", "confidence", "top": [...]};
    detect -> {"kind": "detect", "boxes": [{"box": [x1, y1, x2, y2], "quad", "score", "class", "label"}]};
    ocr-rec -> {"kind": "text", "text", "confidence"}; segment -> {"kind": "segment", "mask", "classes", ...};
    generic -> {"kind": "generic", "outputs": {name: shape}}. Every kind also has "label" and "confidence"
    (a one-line summary) so the demo's banner can show any task; ssd reads its anchors from `artifact_dir`."""
    name, output = record["name"], record["output"]
    if name == "classify":
        return {**classify(np.asarray(outputs[output])[0], labels), "output": output}
    if name == "detect":
        return {**detect(record, outputs, labels, artifact_dir), "output": output}
    if name == "segment":
        return {**segment(record, outputs[output], labels), "output": output}
    if name == "ocr-rec":
        from edgeship_runtime.tasks.text import ctc_greedy, to_text

        ids, confidence = ctc_greedy(np.asarray(outputs[output])[0])
        text = to_text(ids, labels or [])
        return {"kind": "text", "output": output, "text": text, "confidence": confidence, "label": text}
    return {"kind": "generic", "output": output, "outputs": {key: list(np.shape(value)) for key, value in outputs.items()},
            "label": output, "confidence": 0.0}
