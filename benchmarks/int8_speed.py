"""int8 (and fp16) against fp32, same model, same target, same runtime, same input, one thread.

    .venv/bin/python benchmarks/int8_speed.py                    # PP-OCR det and rec, onnx (converted if needed)
    .venv/bin/python benchmarks/int8_speed.py --all artifacts    # every int8/fp16 artifact there with an fp32 sibling
    .venv/bin/python benchmarks/int8_speed.py --all artifacts/tests --target onnx
    .venv/bin/python benchmarks/int8_speed.py QUANT_DIR FP32_DIR  # one pair

Each pair runs in the board runtime's own backend (edgeship_runtime, as `edgeship-runtime bench
--threads 1` does), both artifacts loaded at once and fed the fp32 artifact's first reference
input. They alternate in rounds, in ABBA order (whichever runs first in a round pays for a cold
cache), so another job's load on this machine hits both alike; the figure is the median of all
runs. Goal (issue 29): int8 at most 0.7x the fp32 latency. A pair whose backend is not
installed here is listed as skipped, with the reason.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from edgeship_runtime.artifact import Artifact
from edgeship_runtime.backends import backend_class
from edgeship_runtime.bench import timed_loop
from edgeship_runtime.errors import ArtifactError, RuntimeUnavailable

ROUNDS, MIN_RUNS, MIN_S, MAX_S = 6, 5, 1.0, 20.0  # per artifact per round: at least 5 runs and 1 s, at most 20 s
GOAL = 0.7
DEFAULT = (("ppocr-det", "onnx"), ("ppocr-rec", "onnx"))


def converted(example: str, target: str, quant: str) -> Path:
    """The example's artifact for target/quant, from the conversion cache when it is there."""
    import targets
    from edgeship.convert import convert
    from edgeship.examples import build_examples, example_request
    from edgeship.paths import REPO_ROOT as ROOT

    folder = build_examples(ROOT / "examples", names=(example,))[0]
    return convert(example_request(folder, target, quant, ROOT / "artifacts", quant in targets.get(target).needs_calibration))


def siblings(root: Path) -> list[tuple[Path, Path]]:
    """(int8 or fp16 artifact, its fp32 sibling) for every such artifact under root (one level, or
    two for artifacts/tests): the sibling has the same model and target, the newest one if several."""
    found: dict[tuple[str, str, str], list[Path]] = {}
    for manifest in [*root.glob("*/manifest.json"), *root.glob("*/*/manifest.json")]:
        try:
            document = json.loads(manifest.read_text())
            key = (str(document["model"]), str(document["target"]), str(document["options"]["quant"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        found.setdefault(key, []).append(manifest.parent)
    newest = {key: max(folders, key=lambda folder: (folder / "manifest.json").stat().st_mtime) for key, folders in found.items()}
    return [(folder, newest[(model, target, "fp32")]) for (model, target, quant), folder in sorted(newest.items())
            if quant in ("int8", "fp16") and (model, target, "fp32") in newest]


def measure(quantized: Path, reference: Path) -> dict:
    """Median latency (ms) of each artifact over alternating rounds, and their ratio."""
    fast, slow = Artifact.open(quantized), Artifact.open(reference)
    if fast.backend != slow.backend:
        raise ArtifactError(f"{quantized.name} runs on {fast.backend}, {reference.name} on {slow.backend}: not the same runtime")
    backend_cls = backend_class(fast.backend)
    sample = slow.sample_input()
    times: dict[str, list[float]] = {"quantized": [], "fp32": []}
    with backend_cls(fast, threads=1) as one, backend_cls(slow, threads=1) as other:
        runners = {"quantized": (one, one.prepare(sample)), "fp32": (other, other.prepare(sample))}
        for backend, feeds in runners.values():
            timed_loop(backend, feeds, 2, 0)  # warm-up
        for round_index in range(ROUNDS):
            for name in (("quantized", "fp32") if round_index % 2 == 0 else ("fp32", "quantized")):
                backend, feeds = runners[name]
                times[name] += timed_loop(backend, feeds, MIN_RUNS, MIN_S, MAX_S)
    quant_ms, fp32_ms = (float(np.median(times[name])) * 1000 for name in ("quantized", "fp32"))
    return {"artifact": quantized.name, "fp32_artifact": reference.name, "backend": fast.backend, "quant": fast.manifest["options"]["quant"],
            "median_ms": quant_ms, "fp32_median_ms": fp32_ms, "ratio": quant_ms / fp32_ms, "runs": len(times["quantized"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pair", nargs="*", type=Path, help="QUANT_DIR FP32_DIR")
    parser.add_argument("--all", type=Path, help="every int8/fp16 artifact under this folder with an fp32 sibling")
    parser.add_argument("--target", help="with --all: only this target's artifacts")
    args = parser.parse_args(argv)
    if args.pair and len(args.pair) != 2:
        parser.error("give one pair: QUANT_DIR FP32_DIR")
    if args.pair:
        pairs = [(args.pair[0], args.pair[1])]
    elif args.all:
        pairs = [(quantized, reference) for quantized, reference in siblings(args.all)
                 if args.target is None or json.loads((quantized / "manifest.json").read_text())["target"] == args.target]
    else:
        pairs = [(converted(example, target, "int8"), converted(example, target, "fp32")) for example, target in DEFAULT]
    print(f"int8/fp16 speed against fp32: 1 thread, same input, {ROUNDS} alternating rounds, median (goal int8 <= {GOAL}x fp32)")
    missed = 0
    for quantized, reference in pairs:
        try:
            result = measure(quantized, reference)
        except (RuntimeUnavailable, ArtifactError) as error:
            print(f"  {quantized.name}: skipped ({str(error).splitlines()[0][:160]})")
            continue
        verdict = ("met" if result["ratio"] <= GOAL else "MISSED") if result["quant"] == "int8" else \
            ("faster" if result["ratio"] < 1 else "NOT FASTER")
        missed += verdict in ("MISSED", "NOT FASTER")
        print(f"  {result['artifact']} ({result['backend']}): {result['median_ms']:.2f} ms vs fp32 {result['fp32_median_ms']:.2f} ms "
              f"= {result['ratio']:.2f}x  {verdict}  ({result['runs']} runs each)", flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
