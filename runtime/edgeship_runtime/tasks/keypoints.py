"""keypoints: landmark models (hands, pose, face mesh), with or without a presence score.

The landmarks output holds K points of D = 2 or 3 values each ([N, K*D] or [N, K, D]): x, y (in
model-input pixels, or normalized to 0..1 of the input) and, for D = 3, a depth, which is left out
of the error: it is relative to the object and has no pixel scale. Against fp32: the mean distance
of each point from fp32's, over a size (the diagonal of the box around fp32's points, "object", or
of the input, "input"), and PCK, the fraction of points within `pck_threshold` of that size. A
sample where fp32 finds no object (its presence below the threshold) is left out: its points are
noise. One where fp32 finds the object and the converted model does not counts every point as
missed. With no sample left, neither is a score (`not_measurable`).
"""

from __future__ import annotations

import numpy as np

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.tasks.base import Gate, Headline, Task, image_size, not_measurable, shape_text

METRIC_KEYS = ("mean_keypoint_error", "pck")


def points(record: dict, output: np.ndarray) -> np.ndarray:
    """A batch of the landmarks output -> x, y in model-input pixels [N, K, 2]."""
    output = np.asarray(output, np.float64)
    xy = output.reshape(output.shape[0], record["num_keypoints"], record["dims"])[..., :2]
    if record["coordinates"] == "normalized":
        height, width = record["input_size"]
        xy = xy * [width, height]
    return xy


def presence(record: dict, sample: dict) -> np.ndarray | None:
    """Each batch item's presence score [N] (sigmoid applied when the output is a logit), or None
    when the model has no presence output."""
    if record["presence"] is None:
        return None
    scores = np.asarray(sample[record["presence"]], np.float64).reshape(-1)
    return 1 / (1 + np.exp(-scores)) if record["presence_logit"] else scores


def found(record: dict, sample: dict) -> np.ndarray:
    """Whether each batch item holds an object: its presence at or above the threshold (all, without a presence output)."""
    scores = presence(record, sample)
    count = np.shape(sample[record["output"]])[0]
    return np.ones(count, bool) if scores is None else scores >= record["presence_threshold"]


def sizes(record: dict, truth: np.ndarray) -> np.ndarray:
    """The length errors are divided by, per item of [N, K, 2] true points: the diagonal of their box
    ("object") or of the input ("input")."""
    if record["normalize_by"] == "input":
        return np.full(len(truth), float(np.hypot(*record["input_size"])))
    return np.hypot(*(truth.max(axis=1) - truth.min(axis=1)).T)


def score(record: dict, truth: np.ndarray, predicted: np.ndarray, lost: np.ndarray) -> dict:
    """Mean normalized error and PCK of predicted [M, K, 2] points against truth [M, K, 2] (the items
    to judge only); `lost` [M]: the converted model finds no object there, so its points count as missed."""
    size = sizes(record, truth)
    degenerate = size <= 0
    if degenerate.any():  # every point at one spot: no object size to measure against
        raise ArtifactError(f"keypoints: {int(degenerate.sum())} reference sample(s) have all points at one spot; "
                            "normalize_by \"input\" judges them against the input size")
    errors = np.linalg.norm(predicted - truth, axis=2) / size[:, None]
    within = (errors <= record["pck_threshold"]) & ~lost[:, None]
    return {"mean_keypoint_error": float(errors.mean()), "max_keypoint_error": float(errors.max()), "pck": float(within.mean()),
            "pck_threshold": record["pck_threshold"], "normalize_by": record["normalize_by"]}


class Keypoints(Task):
    name = kind = "keypoints"
    headline = Headline("pck", "PCK", "pck", "PCK")
    params = {
        "num_keypoints": (None, "count"),  # read off the output's shape when it is [N, K, D]
        "dims": (None, "count"),  # values per point (2 or 3); read off the shape with num_keypoints
        "coordinates": ("pixels", ("pixels", "normalized")),  # x, y in input pixels, or 0..1 of the input
        "presence": (None, "text"),  # the output holding the object's presence score, if any
        "presence_threshold": (0.5, "fraction"),  # MediaPipe's min_hand_presence_confidence
        "presence_logit": (False, "bool"),  # the presence output is a logit (a sigmoid makes it a score)
        "normalize_by": ("object", ("object", "input")),
        "pck_threshold": (0.05, "fraction"),
        "edges": (None, "pairs"),  # the skeleton the demo draws: [i, j] keypoint indices
        "input_size": (None, "size"),  # [height, width] of the input, read off its shape
    }
    gates = {"min_pck": Gate("pck", "PCK against fp32")}
    tolerances = {"fp32": {"min_pck": 0.99}, "fp16": {"min_pck": 0.98}, "dynamic": {"min_pck": 0.95}, "int8": {"min_pck": 0.90}}
    tolerance_reasons = {
        "fp32": "the same graph: points move by far less than a pixel; 0.99 leaves room for a lost object tied at the threshold",
        "fp16": "fp16 moves points by hundredths of a pixel; 0.98 allows one point in fifty over the line, or an object "
                "lost at the presence threshold",
        "dynamic": "int8 weights move points by a pixel or two, within 5 % of a hand's size nearly always",
        "int8": "int8 activations move points by a few pixels; 0.90 keeps the skeleton's shape (MediaPipe's own int8 "
                "landmark models are judged this coarsely)",
    }
    label_format = "float [N, K, 2] keypoints (x, y) in model-input pixels, one object per sample"

    def check_shapes(self, record, shapes, labels, where, inputs) -> None:
        shape = shapes[record["output"]]
        what = f"{where}: task {self.name!r} reads output {record['output']!r} of shape {shape_text(shape)}"
        count, per_point = record["num_keypoints"], record["dims"]
        if len(shape) == 3 and None not in shape[1:]:
            if shape[2] not in (2, 3) or (count or shape[1]) != shape[1] or (per_point or shape[2]) != shape[2]:
                raise ArtifactError(f"{what}; keypoints needs [N, K, D] with D 2 or 3 (num_keypoints {count}, dims {per_point})")
            count, per_point = shape[1], shape[2]
        elif len(shape) == 2 and shape[1] is not None:
            if count is None:
                raise ArtifactError(f"{what}; give \"num_keypoints\" (the points in each row of {shape[1]} values)")
            per_point = per_point or (shape[1] // count if shape[1] % count == 0 else None)
            if per_point not in (2, 3) or count * per_point != shape[1]:
                raise ArtifactError(f"{what}, which is not {count} points of 2 or 3 values; check num_keypoints and dims")
        else:
            raise ArtifactError(f"{what}; keypoints needs [N, K*D] or [N, K, D] (D = 2 or 3) with fixed K and D")
        record["num_keypoints"], record["dims"] = count, per_point
        if record["presence"] is not None:
            if record["presence"] not in shapes:
                raise ArtifactError(f"{where}: presence output {record['presence']!r} is not an output of the model; "
                                    f"the outputs are {sorted(shapes)}")
            presence_shape = shapes[record["presence"]]
            if len(presence_shape) < 1 or any(d != 1 for d in presence_shape[1:]):
                raise ArtifactError(f"{where}: presence output {record['presence']!r} has shape {shape_text(presence_shape)}; "
                                    "it must hold one score per sample ([N] or [N, 1])")
        record["input_size"] = record["input_size"] or image_size(inputs)
        if record["input_size"] is None and (record["coordinates"] == "normalized" or record["normalize_by"] == "input"):
            raise ArtifactError(f"{where}: keypoints needs \"input_size\": [height, width] of the model input "
                                f"(coordinates {record['coordinates']}, normalize_by {record['normalize_by']})")
        bad = [pair for pair in record["edges"] or [] if max(pair) >= count]
        if bad:
            raise ArtifactError(f"{where}: edges {bad} name keypoints beyond the model's {count} (indices 0..{count - 1})")

    def metrics(self, record, reference, converted, artifact_dir) -> dict:
        truth, predicted, lost, absent = [], [], [], 0
        for ref, out in zip(reference, converted):
            present = found(record, ref)
            absent += int((~present).sum())
            truth.append(points(record, ref[record["output"]])[present])
            predicted.append(points(record, out[record["output"]])[present])
            lost.append(~found(record, out)[present])
        counts = {"samples_judged": sum(len(t) for t in truth), "samples_without_object": absent,
                  "objects_lost": int(sum(item.sum() for item in lost))}
        if not counts["samples_judged"]:  # points where fp32 sees no object are noise, not a score
            return not_measurable("fp32 finds no object on any sample (presence below the threshold)", *METRIC_KEYS, **counts)
        return {**score(record, np.concatenate(truth), np.concatenate(predicted), np.concatenate(lost)), **counts}

    def check_labels(self, record, labels, samples, where) -> None:
        found_text = f"{where}: labels are {labels.dtype} {list(labels.shape)}"
        expected = (samples, record["num_keypoints"], 2)
        if labels.dtype.kind != "f" or labels.shape != expected or not np.isfinite(labels).all():
            raise ArtifactError(f"{found_text}; task {self.name!r} takes {self.label_format}: {list(expected)}, finite")

    def against_labels(self, record, outputs, labels, char_list, artifact_dir) -> dict:
        predicted = np.concatenate([points(record, sample[record["output"]]) for sample in outputs])
        lost = np.concatenate([~found(record, sample) for sample in outputs])
        truth = np.asarray(labels, np.float64)[:len(predicted)]
        return {**score(record, truth, predicted, lost), "samples": len(predicted), "objects_lost": int(lost.sum())}

    def postprocess(self, record, outputs, labels, artifact_dir) -> dict:
        one = {name: np.asarray(value)[:1] for name, value in outputs.items()}
        scores = presence(record, one)
        confidence = 1.0 if scores is None else float(scores[0])
        present = bool(found(record, one)[0])
        xy = points(record, one[record["output"]])[0] if present else np.zeros((0, 2))
        # "points" in model-input pixels (the demo maps them to the frame, as boxes); "edges" for its skeleton
        return {"kind": self.kind, "points": xy.round(2).tolist(), "edges": record["edges"] or [],
                "label": f"{record['num_keypoints']} keypoints" if present else "nothing found", "confidence": confidence}


TASKS = (Keypoints(),)
