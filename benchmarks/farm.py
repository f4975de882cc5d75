"""The examples' conversion matrix built as 1 shard and as N shards side by side, each from a cold
cache, on this machine: wall times, the speedup, and whether the merged partial locks are the one
shard's lock byte for byte.

    .venv/bin/python benchmarks/farm.py [--shards 3] [--entries digits-onnx-fp32,...]

Both runs get a conversions file of the chosen entries (models from edgeship.toml, by absolute
path) and a fresh EDGESHIP_CACHE and artifacts folder under --work, so nothing is reused between
them or from earlier runs (the toolchain images are: they are built once per machine, and a
runner loads them with `invoke images.load`). The N shards are planned with the one shard's
measured build times (`invoke plan --times`), run as N `invoke build --shard K/N` processes
sharing one cache folder, and merged with `invoke lock.merge`.

The default entries are the onnx, openvino and tflite fp32 entries of digits and PP-OCR rec: the
whole matrix (80 entries, tflite's at 1-2 minutes each on this machine) would take hours.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import tomllib

from edgeship.paths import REPO_ROOT

DEFAULT_ENTRIES = ("digits-onnx-fp32,digits-onnx-int8,digits-openvino-fp32,digits-openvino-fp16,digits-tflite-fp32,"
                   "ppocr-rec-onnx-fp32,ppocr-rec-onnx-int8,ppocr-rec-openvino-fp32,ppocr-rec-openvino-fp16")
PATH_KEYS = ("path", "calibration", "eval", "labels", "preprocess", "task")


def toml_value(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{key} = {toml_value(item)}" for key, item in value.items()) + " }"
    return json.dumps(value)  # strings, numbers and lists of them are written alike


def subset_config(folder: Path, entries: list[str]) -> Path:
    """A conversions file of just these entries (model-target-quant), the models' files by absolute path."""
    with open(REPO_ROOT / "edgeship.toml", "rb") as handle:
        models = tomllib.load(handle)["models"]
    lines, rows = [], []
    for name in entries:
        model, target, quant = next((key, *name[len(key) + 1:].split("-", 1)) for key in sorted(models, key=len, reverse=True)
                                    if name.startswith(key + "-"))
        rows.append(f'[[matrix]]\nmodels = ["{model}"]\ntargets = ["{target}"]\nquants = ["{quant}"]\n')
    for key in sorted({row.split('"')[1] for row in rows}):
        table = {name: (str(REPO_ROOT / value) if name in PATH_KEYS and not (name == "task" and not value.endswith(".json")) else value)
                 for name, value in models[key].items()}
        lines.append(f"[models.{key}]\n" + "".join(f"{name} = {toml_value(value)}\n" for name, value in table.items()))
    folder.mkdir(parents=True)
    config = folder / "edgeship.toml"
    config.write_text("\n".join(lines + rows))
    return config


CODE_ITEMS = ("tasks.py", "pyproject.toml", "edgeship", "targets", "runtime", "images")


def snapshot(dest: Path) -> Path:
    """edgeship's code as it is now: both runs convert with the same code (the lock records its
    hash) even when the checkout is edited meanwhile."""
    dest.mkdir(parents=True)
    for item in CODE_ITEMS:
        source = REPO_ROOT / item
        if source.is_dir():
            shutil.copytree(source, dest / item, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"))
        else:
            shutil.copy2(source, dest / item)
    return dest


def invoke(code: Path, args: list[str], cache: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "EDGESHIP_CACHE": str(cache), "PYTHONPATH": f"{code}{os.pathsep}{code / 'runtime'}"}
    with open(log, "w") as handle:
        return subprocess.Popen([sys.executable, "-m", "invoke", *args], cwd=code, env=env, stdout=handle, stderr=subprocess.STDOUT)


def wait(process: subprocess.Popen, log: Path, what: str) -> None:
    if process.wait(timeout=4 * 3600) != 0:
        raise SystemExit(f"farm: {what} failed (exit {process.returncode}); its log: {log}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--entries", default=DEFAULT_ENTRIES, help="comma-separated model-target-quant entries of edgeship.toml")
    parser.add_argument("--work", default="/tmp/edgeship-farm", help="scratch folder (emptied first, removed after)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    entries = [name for name in args.entries.split(",") if name]
    config = subset_config(work / "project", entries)
    code = snapshot(work / "code")
    try:
        one = work / "one"
        one.mkdir()
        started = time.monotonic()
        wait(invoke(code, ["build", "--config", str(config), "--out", str(one / "artifacts"), "--lock-out", str(one / "conversions.lock")],
                    one / "cache", one / "build.log"), one / "build.log", "the 1-shard build")
        one_s = time.monotonic() - started
        times = json.loads((one / "artifacts" / "build-times.json").read_text())

        many = work / "many"
        many.mkdir()
        started = time.monotonic()
        plan_file = many / "plan.json"
        wait(invoke(code, ["plan", "--config", str(config), "--shards", str(args.shards), "--out", str(plan_file),
                     "--times", str(one / "artifacts" / "build-times.json"), "--image-cost", "0"], many / "cache", many / "plan.log"),
             many / "plan.log", "invoke plan")
        plan = json.loads(plan_file.read_text())
        jobs = []
        for row in plan["include"]:
            log = many / f"shard-{row['index']}.log"
            jobs.append((invoke(code, ["build", "--config", str(config), "--shard", row["shard"], "--plan", str(plan_file),
                                 "--out", str(many / "artifacts"), "--lock-out", str(many / f"conversions.lock.part-{row['index']}")],
                                many / "cache", log), log, row))
        for process, log, row in jobs:
            wait(process, log, f"shard {row['shard']}")
        parts = [arg for _, _, row in jobs for arg in ("--part", str(many / f"conversions.lock.part-{row['index']}"))]
        wait(invoke(code, ["lock.merge", "--config", str(config), "--out", str(many / "conversions.lock"), *parts], many / "cache",
                    many / "merge.log"), many / "merge.log", "invoke lock.merge")
        many_s = time.monotonic() - started
        same = (many / "conversions.lock").read_bytes() == (one / "conversions.lock").read_bytes()

        print(f"farm: {len(entries)} entries, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
        print("farm: measured per entry (1 shard): " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in sorted(times.items())))
        for row in plan["include"]:
            print(f"farm: shard {row['shard']}: {row['entries']} (estimated {row['estimated_s']:.0f} s)")
        print(f"farm: 1 shard from a cold cache: {one_s:.1f} s")
        print(f"farm: {args.shards} shards side by side from one cold cache (plan, builds, merge): {many_s:.1f} s")
        print(f"farm: speedup {one_s / many_s:.2f}x; merged lock {'byte-identical to' if same else 'DIFFERS from'} the 1-shard lock")
        print(f"farm: what limits it here: {os.cpu_count()} cores for {args.shards} jobs, and the conversions are CPU-bound (onnx2tf, "
              f"quantizers, the accuracy checks), so on an idle machine {args.shards} shards cannot beat {os.cpu_count()}x; on a shared "
              f"one (load average {os.getloadavg()[0]:.1f}) {args.shards} jobs also take a larger share of the cores from the other "
              f"work than one job does, which can show as more than {os.cpu_count()}x; the longest shard sets the wall time "
              f"({max(row['estimated_s'] for row in plan['include']):.0f} s "
              f"estimated of {sum(times.values()):.0f} s in all); each shard cleans the ONNX graphs it needs once in the shared cache "
              f"(flock: a second shard waits for the first's); and every job starts Python, invoke and Docker containers of its own. "
              f"On N runners of their own, each shard has the cores to itself.")
        if not same:
            raise SystemExit("farm: the merged lock is not the 1-shard lock byte for byte")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
