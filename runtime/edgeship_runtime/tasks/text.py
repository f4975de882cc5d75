"""CTC text recognizers (PP-OCR rec): greedy decoding and character agreement."""

from __future__ import annotations

import numpy as np

from edgeship_runtime.tasks._optional import levenshtein


def probabilities(scores: np.ndarray) -> np.ndarray:
    """Rows of the last axis as probabilities: kept when they already are (each in [0, 1], summing to 1),
    else a softmax of logits."""
    scores = np.asarray(scores, np.float64)
    if scores.size and scores.min() >= 0 and scores.max() <= 1 and np.allclose(scores.sum(axis=-1), 1, atol=1e-3):
        return scores
    shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def ctc_greedy(sequence: np.ndarray, blank: int = 0) -> tuple[list[int], float]:
    """One [T, K] sequence -> (class ids, confidence): the best class per step, repeats collapsed, blanks
    dropped; confidence is the mean best probability of the steps kept (0.0 when none are)."""
    steps = probabilities(sequence)
    best = steps.argmax(axis=1)
    kept = (best != blank) & np.concatenate([[True], best[1:] != best[:-1]])
    ids = best[kept]
    confidence = float(steps[np.flatnonzero(kept), ids].mean()) if len(ids) else 0.0
    return [int(i) for i in ids], confidence


def ctc_decode(output: np.ndarray) -> list[tuple[list[int], float]]:
    """Every row of a CTC output [N, T, K]."""
    return [ctc_greedy(row) for row in np.asarray(output)]


def to_text(ids: list[int], char_list: list[str]) -> str:
    return "".join(char_list[i] if i < len(char_list) else "" for i in ids)


def agreement(references: list, candidates: list, what: str) -> dict:
    """How well `candidates` read the `references` (strings, or sequences of class ids):
    character agreement 1 - (total edit distance / total reference length), floored at 0 (1 - CER), and
    the fraction read exactly."""
    distance = levenshtein(what).distance
    edits = sum(distance(reference, candidate) for reference, candidate in zip(references, candidates))
    length = sum(len(reference) for reference in references)
    if length:
        characters = max(0.0, 1 - edits / length)
    else:
        characters = float(edits == 0)  # nothing to read: right only when nothing was read
    exact = float(np.mean([list(r) == list(c) for r, c in zip(references, candidates)])) if references else 1.0
    return {"char_agreement": characters, "exact_agreement": exact, "edit_distance": int(edits), "reference_chars": int(length),
            "strings": len(references)}
