"""Accuracy of a converted model against its fp32 reference (numpy only: runs in any image)."""

from __future__ import annotations

import numpy as np


def compare_output(reference: list[np.ndarray], converted: list[np.ndarray]) -> dict:
    """Per-output figures over samples: cosine similarity, abs error, top-1 agreement."""
    cosines, max_abs, mean_abs, top1 = [], 0.0, [], []
    for ref, out in zip(reference, converted):
        ref64, out64 = ref.astype(np.float64).ravel(), out.astype(np.float64).ravel()
        norm = np.linalg.norm(ref64) * np.linalg.norm(out64)
        cosines.append(float(ref64 @ out64 / norm) if norm > 0 else float(np.array_equal(ref64, out64)))
        error = np.abs(ref64 - out64)
        max_abs = max(max_abs, float(error.max(initial=0.0)))
        mean_abs.append(float(error.mean()) if error.size else 0.0)
        if ref.ndim >= 1 and ref.shape[-1] > 1:
            top1.append(float(np.mean(ref.reshape(-1, ref.shape[-1]).argmax(-1) == out.reshape(-1, out.shape[-1]).argmax(-1))))
    value_range = float(np.ptp(np.concatenate([r.ravel() for r in reference]))) if reference else 0.0
    return {
        "samples": len(reference),
        "cosine_min": min(cosines) if cosines else None,
        "cosine_mean": float(np.mean(cosines)) if cosines else None,
        "max_abs_error": max_abs,
        "mean_abs_error": float(np.mean(mean_abs)) if mean_abs else None,
        "max_abs_error_relative_to_range": max_abs / value_range if value_range else None,
        "top1_agreement": float(np.mean(top1)) if top1 else None,
    }


def labelled_accuracy(outputs: list[np.ndarray], labels: np.ndarray) -> float:
    predictions = np.array([int(np.asarray(out).reshape(-1)[...].argmax()) for out in outputs])
    return float(np.mean(predictions == np.asarray(labels).reshape(-1)[: len(predictions)]))


def within_tolerance(figures: dict, tolerances: dict) -> bool:
    if figures["cosine_min"] is not None and figures["cosine_min"] < tolerances["min_cosine"]:
        return False
    return figures["top1_agreement"] is None or figures["top1_agreement"] >= tolerances["min_top1_agreement"]
