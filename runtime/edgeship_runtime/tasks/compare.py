"""A converted model against its fp32 source, judged by what the model is for.

Every output gets the same generic figures (cosine, SNR, abs error, error relative to its range).
The task (from the registry) adds its own metrics and gates. The generic gates judge every output:
always for tasks that say so (generic, classify), otherwise only as the fallback when one of the
task's own metrics is not measurable (a detector whose fp32 model finds no box on the eval set is
judged by its tensors, and the report says so, never "F1 1"). An output of at most
SMALL_OUTPUT_VALUES values per sample is judged by `max_range_error` instead of cosine and SNR
(which are still recorded): the cosine of a single number says nothing but its sign.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.tasks import registry
from edgeship_runtime.tasks.classify import top1_agreement
from edgeship_runtime.tasks.tolerances import GENERIC_GATES, SMALL_OUTPUT_VALUES

# float32 resolves ~144 dB; a bit-exact output reports this instead of infinity (which JSON cannot hold).
SNR_CEILING_DB = 200.0
# generic gate -> the per-output figure it reads
GENERIC_FIGURES = {"min_cosine": "cosine_min", "min_snr_db": "snr_db_min", "max_range_error": "max_abs_error_relative_to_range"}

__all__ = ["SNR_CEILING_DB", "all_gates", "compare", "generic_figures", "shortfall", "top1_agreement"]


def generic_figures(reference: list[np.ndarray], converted: list[np.ndarray]) -> dict:
    """Per-output figures over samples: cosine (min, mean), SNR in dB (worst sample), abs error, and the
    largest abs error over the fp32 values' range on the eval set (their largest |value| when the
    range is 0; None when every value is 0)."""
    cosines, snrs, max_abs, mean_abs, non_finite = [], [], 0.0, [], 0
    for ref, out in zip(reference, converted):
        ref64, out64 = np.asarray(ref, np.float64).ravel(), np.asarray(out, np.float64).ravel()
        # NaN compares false with every limit and max(0.0, nan) is 0.0: counted here, so no gate passes on it
        non_finite += int(np.count_nonzero(~np.isfinite(out64) & np.isfinite(ref64)))
        norm = np.linalg.norm(ref64) * np.linalg.norm(out64)
        cosines.append(float(ref64 @ out64 / norm) if norm > 0 else float(np.array_equal(ref64, out64)))
        error = ref64 - out64
        signal, noise = float(ref64 @ ref64), float(error @ error)
        snrs.append(SNR_CEILING_DB if noise == 0 else -SNR_CEILING_DB if signal == 0 else
                    float(np.clip(10 * np.log10(signal / noise), -SNR_CEILING_DB, SNR_CEILING_DB)))
        max_abs = max(max_abs, float(np.abs(error).max(initial=0.0)))
        mean_abs.append(float(np.abs(error).mean()) if error.size else 0.0)
    values = np.concatenate([np.ravel(r) for r in reference]).astype(np.float64) if reference else np.zeros(0)
    scale = float(np.ptp(values)) if values.size else 0.0
    scale = scale or float(np.abs(values).max(initial=0.0))
    shape = np.shape(reference[0]) if reference else ()
    return {"samples": len(reference),
            "values_per_sample": int(np.prod(shape[1:])) if len(shape) > 1 else int(np.prod(shape)),
            "cosine_min": min(cosines) if cosines else None,
            "cosine_mean": float(np.mean(cosines)) if cosines else None,
            "snr_db_min": min(snrs) if snrs else None,
            "max_abs_error": max_abs,
            "mean_abs_error": float(np.mean(mean_abs)) if mean_abs else None,
            "max_abs_error_relative_to_range": max_abs / scale if scale else None,
            "non_finite_values": non_finite}


def all_gates() -> dict[str, tuple[str | None, str]]:
    """Every gate -> (the task metric it reads, or None for the per-output figure; that figure's or metric's name)."""
    gates: dict[str, tuple[str | None, str]] = {gate: (None, figure) for gate, figure in GENERIC_FIGURES.items()}
    for task in registry.all_tasks():
        gates.update({gate: (own.metric, own.label) for gate, own in task.gates.items()})
    return gates


def __getattr__(name: str):
    if name == "GATES":  # the table callers imported before tasks were modules
        return all_gates()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _small(figures: dict) -> bool:
    return figures["values_per_sample"] <= SMALL_OUTPUT_VALUES


def _generic_failures(outputs: dict[str, dict], tolerances: dict) -> list[str]:
    """The generic gates present in `tolerances`, per output: small outputs by their range error (when
    that gate is given), the others by cosine and SNR."""
    failed = []
    for output, figures in outputs.items():
        small = _small(figures) and "max_range_error" in tolerances
        for gate in GENERIC_GATES:
            if gate not in tolerances or (gate == "max_range_error") != small:
                continue
            label, limit, value = GENERIC_FIGURES[gate], tolerances[gate], figures[GENERIC_FIGURES[gate]]
            if gate == "max_range_error":
                if value is None and figures["max_abs_error"] > 0:
                    failed.append(f"output {output!r}: fp32 is 0 on every sample, the converted model is off by "
                                  f"{figures['max_abs_error']:.6g} ({gate})")
                elif value is not None and value > limit:
                    failed.append(f"output {output!r}: max abs error {figures['max_abs_error']:.6g} is {value:.6g} of its range "
                                  f"> {limit} ({gate}; {figures['values_per_sample']} value(s) per sample, judged by range, not cosine)")
            elif value is not None and (not math.isfinite(value) or value < limit):
                failed.append(f"output {output!r}: {label} {value:.6g} < {limit} ({gate})")
    return failed


def compare(record: dict, reference: list[dict[str, np.ndarray]], converted: list[dict[str, np.ndarray]],
            tolerances: dict, artifact_dir: Path | None = None) -> dict:
    """fp32 reference outputs vs the converted model's, sample by sample, for a validated task record:
    {"task", "outputs": {name: generic figures}, "metrics": {task metric}, "passed", "failed": [reasons],
    "judged_by": [what decided the verdict]}."""
    task = registry.get(record["name"], "compare")
    if not reference or len(reference) != len(converted):
        raise ArtifactError(f"compare: {len(reference)} reference samples and {len(converted)} converted ones; run both on the same inputs "
                            "(at least one)")
    required = set(task.gates) | ({gate for gate in task.generic_gates if gate != "max_range_error"} if task.generic_gates_always else set())
    missing = sorted(required - set(tolerances))
    if missing:
        raise ArtifactError(f"compare: tolerances {sorted(tolerances)} lack {missing} for task {task.name!r}; "
                            f"use default_tolerances({task.name!r}, quant)")
    outputs = {}
    for output in reference[0]:
        refs, outs = [r[output] for r in reference], [c.get(output) for c in converted]
        for ref, out in zip(refs, outs):
            if out is None or np.shape(ref) != np.shape(out):
                raise ArtifactError(f"compare: output {output!r} of the converted model has shape {None if out is None else list(np.shape(out))}, "
                                    f"the fp32 model's {list(np.shape(ref))}; the artifact's output mapping is wrong")
        outputs[output] = generic_figures(refs, [np.asarray(out) for out in outs])
    metrics = task.metrics(record, reference, converted, artifact_dir)
    task.output_figures(record, outputs, metrics)
    own_failed, judged_by, unmeasured = [], [], []
    for gate, own in task.gates.items():
        value, limit = metrics.get(own.metric), tolerances[gate]
        if value is None:  # a metric over nothing is not a score: never a pass
            unmeasured.append(f"{own.label} not measurable ({metrics.get('not_measurable', 'no value')})")
            continue
        judged_by.append(own.label)
        if not math.isfinite(value) or value < limit:  # NaN passes no comparison: it fails here
            own_failed.append(f"output {record['output']!r}: {own.label} {value:.6g} < {limit} ({gate})")
    generic_failed = []
    if task.generic_gates_always or unmeasured:
        generic = [gate for gate in GENERIC_GATES if gate in tolerances]
        if unmeasured and not generic:
            generic_failed = [f"{reason}, and the tolerances {sorted(tolerances)} hold no generic gate (min_cosine, min_snr_db, "
                              "max_range_error) to judge the outputs by instead" for reason in unmeasured]
        elif generic:
            generic_failed = _generic_failures(outputs, tolerances)
            judged_by.insert(0, "every output's " + ", ".join(generic) + (" (instead: " + "; ".join(unmeasured) + ")" if unmeasured else ""))
    broken = [f"output {name!r}: the converted model gives NaN or Inf in {figures['non_finite_values']} value(s) where fp32's are finite"
              for name, figures in outputs.items() if figures["non_finite_values"]]
    failed = broken + generic_failed + own_failed
    return {"task": task.name, "outputs": outputs, "metrics": metrics, "passed": not failed, "failed": failed, "judged_by": judged_by}


def shortfall(report: dict) -> float:
    """How far a failing report is from its gates: the sum of each failed gate's relative deficit (0 when it
    passes), counting only the gates that judged it (a small output's range error, not its cosine)."""
    gates = all_gates()
    deficit = 0.0
    tolerances = report.get("tolerances", {})
    task = registry.get(report["task"], "shortfall")
    generic_judged = task.generic_gates_always or any(report["metrics"].get(own.metric) is None for own in task.gates.values())
    for gate, limit in tolerances.items():
        if gate not in gates or (gate in GENERIC_GATES and not generic_judged):
            continue
        metric, label = gates[gate]
        if metric:
            values = [report["metrics"].get(metric)]
        else:
            small = "max_range_error" in tolerances
            values = [figures.get(label) for figures in report["outputs"].values()
                      if (gate == "max_range_error") == (small and figures.get("values_per_sample", SMALL_OUTPUT_VALUES + 1) <= SMALL_OUTPUT_VALUES)]
        for value in values:
            if value is None:
                continue
            if gate.startswith("max_") and value > limit:
                deficit += (value - limit) / max(abs(limit), 1e-9)
            elif gate.startswith("min_") and value < limit:
                deficit += (limit - value) / max(abs(limit), 1e-9)
    return deficit
