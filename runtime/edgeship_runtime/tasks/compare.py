"""A converted model against its fp32 source, judged by what the model is for.

Every output gets the same generic figures (cosine, SNR, abs error). The gate depends on the task:
generic -> cosine and SNR of every output; classify -> cosine of every output and top-1 agreement over
the class axis (today's gate for classifiers); detect, segment and ocr-rec -> the task's own metric
on the decoded results (their cosine is reported, never gated: an int8 detector can keep every box
at cosine 0.97). Top-1 is only ever taken over a classifier's class axis, never over a spatial map.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.tasks.tolerances import DEFAULT_TOLERANCES

# float32 resolves ~144 dB; a bit-exact output reports this instead of infinity (which JSON cannot hold).
SNR_CEILING_DB = 200.0


def generic_figures(reference: list[np.ndarray], converted: list[np.ndarray]) -> dict:
    """Per-output figures over samples: cosine (min, mean), SNR in dB (worst sample), abs error."""
    cosines, snrs, max_abs, mean_abs = [], [], 0.0, []
    for ref, out in zip(reference, converted):
        ref64, out64 = np.asarray(ref, np.float64).ravel(), np.asarray(out, np.float64).ravel()
        norm = np.linalg.norm(ref64) * np.linalg.norm(out64)
        cosines.append(float(ref64 @ out64 / norm) if norm > 0 else float(np.array_equal(ref64, out64)))
        error = ref64 - out64
        signal, noise = float(ref64 @ ref64), float(error @ error)
        snrs.append(SNR_CEILING_DB if noise == 0 else -SNR_CEILING_DB if signal == 0 else
                    float(np.clip(10 * np.log10(signal / noise), -SNR_CEILING_DB, SNR_CEILING_DB)))
        max_abs = max(max_abs, float(np.abs(error).max(initial=0.0)))
        mean_abs.append(float(np.abs(error).mean()) if error.size else 0.0)
    value_range = float(np.ptp(np.concatenate([np.ravel(r) for r in reference]))) if reference else 0.0
    return {"samples": len(reference),
            "cosine_min": min(cosines) if cosines else None,
            "cosine_mean": float(np.mean(cosines)) if cosines else None,
            "snr_db_min": min(snrs) if snrs else None,
            "max_abs_error": max_abs,
            "mean_abs_error": float(np.mean(mean_abs)) if mean_abs else None,
            "max_abs_error_relative_to_range": max_abs / value_range if value_range else None}


def top1_agreement(reference: list[np.ndarray], converted: list[np.ndarray]) -> float | None:
    """Fraction of rows whose best class agrees, over a classifier's last (class) axis."""
    agreements = [float(np.mean(np.reshape(r, (-1, np.shape(r)[-1])).argmax(-1) == np.reshape(c, (-1, np.shape(c)[-1])).argmax(-1)))
                  for r, c in zip(reference, converted)]
    return float(np.mean(agreements)) if agreements else None


def _task_metrics(record: dict, reference: list[dict], converted: list[dict], artifact_dir: Path | None) -> dict:
    name, output = record["name"], record["output"]
    if name == "classify":
        return {"top1_agreement": top1_agreement([r[output] for r in reference], [c[output] for c in converted])}
    if name == "detect":
        from edgeship_runtime.tasks.detect import decode
        from edgeship_runtime.tasks.geometry import detection_scores, match_boxes

        tp = fp = fn = reference_boxes = 0
        for ref, out in zip(reference, converted):
            for truth, found in zip(decode(record, ref, artifact_dir), decode(record, out, artifact_dir)):
                match = match_boxes(found["boxes"], truth["boxes"], 0.5, found["classes"], truth["classes"])
                tp, fp, fn = tp + match["tp"], fp + match["fp"], fn + match["fn"]
                reference_boxes += len(truth["boxes"])
        return {**detection_scores(tp, fp, fn), "reference_boxes": reference_boxes, "iou_threshold": 0.5}
    if name == "segment":
        from edgeship_runtime.tasks.segment import IoU, binary, masks

        iou = IoU(foreground_only=binary(record, reference[0][output]))
        for ref, out in zip(reference, converted):
            for truth, found in zip(masks(record, ref[output]), masks(record, out[output])):
                iou.add(found, truth)
        return iou.figures()
    if name == "ocr-rec":
        from edgeship_runtime.tasks.text import agreement, ctc_decode

        def read(samples: list[dict]) -> list[list[int]]:  # class ids: no character list is needed to compare two readings
            return [ids for sample in samples for ids, _ in ctc_decode(sample[output])]

        return agreement(read(reference), read(converted), "ocr-rec's character agreement")
    return {}


# gate key -> (task metric, what it is called in a failure line); None: the generic figures of every output
GATES = {"min_cosine": (None, "cosine_min"), "min_snr_db": (None, "snr_db_min"), "min_top1_agreement": ("top1_agreement", "top-1 agreement"),
         "min_f1": ("f1", "detection F1 against fp32 at IoU 0.5"), "min_iou": ("mean_iou", "mean IoU against fp32's masks"),
         "min_char_agreement": ("char_agreement", "character agreement with fp32's text")}


def compare(record: dict, reference: list[dict[str, np.ndarray]], converted: list[dict[str, np.ndarray]],
            tolerances: dict, artifact_dir: Path | None = None) -> dict:
    """fp32 reference outputs vs the converted model's, sample by sample, for a validated task record:
    {"task", "outputs": {name: generic figures}, "metrics": {task metric}, "passed", "failed": [reasons]}."""
    name = record["name"]
    if not reference or len(reference) != len(converted):
        raise ArtifactError(f"compare: {len(reference)} reference samples and {len(converted)} converted ones; run both on the same inputs "
                            "(at least one)")
    missing = sorted(set(DEFAULT_TOLERANCES[name]["fp32"]) - set(tolerances))
    if missing:
        raise ArtifactError(f"compare: tolerances {sorted(tolerances)} lack {missing} for task {name!r}; use default_tolerances({name!r}, quant)")
    outputs = {}
    for output in reference[0]:
        refs, outs = [r[output] for r in reference], [c.get(output) for c in converted]
        for ref, out in zip(refs, outs):
            if out is None or np.shape(ref) != np.shape(out):
                raise ArtifactError(f"compare: output {output!r} of the converted model has shape {None if out is None else list(np.shape(out))}, "
                                    f"the fp32 model's {list(np.shape(ref))}; the artifact's output mapping is wrong")
        outputs[output] = generic_figures(refs, [np.asarray(out) for out in outs])
    metrics = _task_metrics(record, reference, converted, artifact_dir)
    if name == "classify":
        outputs[record["output"]]["top1_agreement"] = metrics["top1_agreement"]
    failed = []
    for gate in DEFAULT_TOLERANCES[name]["fp32"]:
        limit, (metric, label) = tolerances[gate], GATES[gate]
        if metric is None:
            failed += [f"output {output!r}: {label} {figures[label]:.6g} < {limit} ({gate})" for output, figures in outputs.items()
                       if figures[label] is not None and figures[label] < limit]
        elif metrics.get(metric) is not None and metrics[metric] < limit:
            failed.append(f"output {record['output']!r}: {label} {metrics[metric]:.6g} < {limit} ({gate})")
    return {"task": name, "outputs": outputs, "metrics": metrics, "passed": not failed, "failed": failed}
