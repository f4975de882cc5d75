"""How well a text-reading demo read a video whose ground truth is known (a video of rendered signs,
edgeship.report.media.text_video): detection F1 of its boxes and character accuracy of its text,
from the predictions the demo wrote (one JSON line per frame)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

FRAME_NAME = re.compile(r":(\d+)$")  # the demo names a video's frames "video:<index>"


def score_text_predictions(predictions: Path, truth: list[dict], iou: float = 0.5) -> dict:
    """Boxes matched one-to-one to the ground truth at IoU >= `iou` (greedy, best first): precision,
    recall and F1 over every shown frame; character accuracy = 1 - (edit distance of each matched
    pair's text + every character of unmatched truth boxes) / all truth characters."""
    from rapidfuzz.distance import Levenshtein

    from edgeship_runtime.tasks.geometry import detection_scores, match_boxes

    truth_by_frame = {entry["frame"]: entry["items"] for entry in truth}
    tp = fp = fn = 0
    edits = characters = 0
    frames = 0
    for line in predictions.read_text().splitlines():
        record = json.loads(line)
        found = FRAME_NAME.search(str(record.get("source", "")))
        if not found or int(found.group(1)) not in truth_by_frame:
            continue  # a looped video's second pass, or another source
        frames += 1
        items = truth_by_frame[int(found.group(1))]
        boxes = record.get("boxes", [])
        match = match_boxes(np.array([b["box"] for b in boxes]).reshape(-1, 4), np.array([t["box"] for t in items]).reshape(-1, 4), iou)
        tp, fp, fn = tp + match["tp"], fp + match["fp"], fn + match["fn"]
        matched_items = {t for _, t in match["pairs"]}
        edits += sum(Levenshtein.distance(boxes[p].get("text", ""), items[t]["text"]) for p, t in match["pairs"])
        edits += sum(len(item["text"]) for index, item in enumerate(items) if index not in matched_items)
        characters += sum(len(item["text"]) for item in items)
    return {"frames": frames, **detection_scores(tp, fp, fn), "iou_threshold": iou,
            "char_accuracy": max(0.0, 1 - edits / characters) if characters else None, "characters": characters}
