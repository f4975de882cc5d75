"""Every real pretrained example (PP-OCR det/cls/rec) through every target and mode it offers:
the task metric against fp32 and against the rendered ground truth, cosine and SNR, size and
conversion time, or the one line a toolchain limit gives.

    .venv/bin/python benchmarks/pretrained_matrix.py [--models ppocr-det,ppocr-cls,ppocr-rec] [--targets ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import targets
from edgeship.convert import convert
from edgeship.errors import EdgeshipError
from edgeship.examples import build_examples, example_request
from edgeship.images.engine import ensure_engine
from edgeship.paths import REPO_ROOT
from edgeship_runtime import tasks


def row(model: str, target: str, quant: str, artifact: Path, seconds: float) -> dict:
    manifest = json.loads((artifact / "manifest.json").read_text())
    accuracy, task = manifest["accuracy"], manifest["task"]["name"]
    metric, metric_name, label_metric, label_name = tasks.get(task, str(artifact / "manifest.json")).headline
    labelled = accuracy.get("labelled", {})
    return {"model": model, "target": target, "quant": quant, "task": task, "passed": accuracy["passed"],
            "metric": metric_name, "vs_fp32": accuracy["metrics"].get(metric) if metric else None,
            "label_metric": label_name, "labels_fp32": labelled.get("fp32", {}).get(label_metric),
            "labels_converted": labelled.get("converted", {}).get(label_metric),
            "cosine_min": min(f["cosine_min"] for f in accuracy["outputs"].values()),
            "snr_db_min": min(f["snr_db_min"] for f in accuracy["outputs"].values()),
            "size_mb": manifest["artifact"]["size"] / 1e6, "seconds": seconds, "artifact": str(artifact),
            "measured_with": accuracy.get("measured_with", "")}


def percent(value) -> str:
    return "not measurable" if value is None else f"{value:.2%}"  # a metric over nothing (no boxes, no text) is not a score


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="ppocr-det,ppocr-cls,ppocr-rec")
    parser.add_argument("--targets", default=",".join(targets.TARGETS))
    parser.add_argument("--out", default=str(REPO_ROOT / "artifacts"))
    args = parser.parse_args()
    client = ensure_engine()
    folders = {folder.name: folder for folder in build_examples(REPO_ROOT / "examples", names=tuple(args.models.split(",")))}
    rows, failures = [], []
    for name, folder in folders.items():
        for target_name in args.targets.split(","):
            target = targets.get(target_name)
            for quant in target.quantizations:
                request = example_request(folder, target.name, quant, Path(args.out), quant in target.needs_calibration)
                began = time.monotonic()
                try:
                    artifact = convert(request, client=client)
                except EdgeshipError as error:
                    failures.append({"model": name, "target": target.name, "quant": quant, "error": str(error)})
                    print(f"FAILED {name} {target.name} {quant}: {error}", flush=True)
                    continue
                rows.append(row(name, target.name, quant, artifact, time.monotonic() - began))
    print("\n| model | target | mode | task | task metric vs fp32 | against the labels: fp32 -> converted | cosine min | SNR | size | "
          "within tolerance |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['target']} | {r['quant']} | {r['task']} | {r['metric'] + ' ' + percent(r['vs_fp32']) if r['metric'] else '-'} | "
              f"{r['label_metric']} {percent(r['labels_fp32'])} -> {percent(r['labels_converted'])} | {r['cosine_min']:.4f} | "
              f"{r['snr_db_min']:.1f} dB | {r['size_mb']:.1f} MB | {'yes' if r['passed'] else 'NO'} |")
    for failure in failures:
        print(f"| {failure['model']} | {failure['target']} | {failure['quant']} | refused: {failure['error']} |")
    (Path(args.out) / "pretrained_matrix.json").write_text(json.dumps({"rows": rows, "failures": failures}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
