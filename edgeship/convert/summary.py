"""The lines `invoke convert` prints about a finished artifact: accuracy against fp32, then
what its target has to say (op placement, toolchain checks)."""

from __future__ import annotations

import json
from pathlib import Path


def percent_or_reason(figures: dict, key: str) -> str:
    """A metric as a percentage, or "not measurable (why)" when it is None: a metric over nothing
    (no boxes, no text) is not a score."""
    value = figures.get(key)
    return f"{value:.2%}" if value is not None else f"not measurable ({figures.get('not_measurable') or 'no value'})"


def summary(artifact_dir: Path) -> list[str]:
    manifest = json.loads((artifact_dir / "manifest.json").read_text())
    accuracy = manifest["accuracy"]
    lines = []
    if accuracy.get("measured_with"):
        lines.append(f"accuracy measured with {accuracy['measured_with']}")
    from edgeship_runtime import tasks

    task = manifest.get("task", {}).get("name", tasks.fallback().name)
    metric, metric_name, label_metric, label_name = tasks.get(task, str(artifact_dir / "manifest.json")).headline
    for name, figures in accuracy["outputs"].items():
        lines.append(f"{name!r} vs fp32: cosine min {figures['cosine_min']:.5f}, SNR {figures['snr_db_min']:.1f} dB, "
                     f"max abs error {figures['max_abs_error']:.3g}")
    if metric:
        lines.append(f"task {task}: {metric_name} with fp32 {percent_or_reason(accuracy['metrics'], metric)}")
    if accuracy.get("judged_by"):
        lines.append(f"judged by {'; '.join(accuracy['judged_by'])}")
    verdict = "within tolerance" if accuracy["passed"] else "BELOW tolerance: " + "; ".join(accuracy.get("failed", []))
    lines.append(f"accuracy {verdict} ({', '.join(f'{k} {v}' for k, v in sorted(accuracy['tolerances'].items()))})")
    labelled = accuracy.get("labelled")
    if labelled and label_metric:
        fp32, converted = labelled["fp32"].get(label_metric), labelled["converted"].get(label_metric)
        change = f" ({(converted - fp32) * 100:+.2f} points)" if None not in (fp32, converted) else ""
        fp32_text, converted_text = percent_or_reason(labelled["fp32"], label_metric), percent_or_reason(labelled["converted"], label_metric)
        lines.append(f"{label_name} against the eval labels ({labelled['samples']} samples): fp32 {fp32_text}, converted {converted_text}{change}")
    ops_path = artifact_dir / "ops.json"
    ops = json.loads(ops_path.read_text()) if ops_path.exists() else {}
    from edgeship.convert.request import find_target  # the targets: not imported by a cache hit (convert/hits.py)

    return lines + find_target(manifest["target"]).converter.summary(artifact_dir, manifest, ops)
