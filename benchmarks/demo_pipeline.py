"""The camera demo's pipeline against the same stages run one after another, in one run.

    .venv/bin/python benchmarks/demo_pipeline.py [ARTIFACT_DIR] [--frames N] [--rounds R] [--threads T]

Default artifact: MobileNetV2 fp32 for the onnx target (converted if needed), fed a 640x480
MJPG video panned across scikit-image photos, served to nobody (no HTTP clients; the JPEG is
still encoded every frame). Rounds alternate sequential and pipelined runs (ABAB), so
machine noise hits both. Printed, per mode: FPS (steady, first to last rendered frame) and
each stage's mean time. Then 1/max(stage):
- from the pipelined runs' own stage times (the stages as they ran, side by side): the goal,
  pipelined FPS at least 90% of it, measures the pipeline itself (hand-offs, bubbles, locks);
- from the sequential runs' stage times (each stage alone on the machine): stricter, it also
  charges the pipeline for the stages slowing each other down on shared cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from edgeship.paths import REPO_ROOT as ROOT
from edgeship_runtime.demo import STAGES, Demo, DemoOptions, open_source
from edgeship_runtime.preprocess import Preprocess
from edgeship_runtime.select import choose


def default_artifact() -> Path:
    from edgeship.convert import Request, convert
    from edgeship.examples import build_examples

    folder = build_examples(ROOT / "examples", names=("mobilenetv2",))[0]
    return convert(Request(target="onnx", model=folder / "model.onnx", quant="fp32", eval=folder / "eval.npz",
                           labels=folder / "labels.txt", preprocess=folder / "preprocess.json", out=ROOT / "artifacts"))


def run_once(artifact_dir: Path, video: Path, frames: int, pipelined: bool, threads: int) -> dict:
    artifact, backend_cls, fallback = choose(artifact_dir, allow_cpu_fallback=True, available=["cpu"])
    demo = Demo(artifact, backend_cls, open_source(str(video)), Preprocess.for_artifact(artifact),
                DemoOptions(threads=threads, fallback=fallback, pipelined=pipelined, max_frames=frames, log=lambda line: None))
    return demo.run()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", nargs="?", default=None)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="inference threads (default 1: the other stages get the other cores)")
    args = parser.parse_args()
    artifact = Path(args.artifact) if args.artifact else default_artifact()
    from edgeship.report.media import photo_video

    with tempfile.TemporaryDirectory() as scratch:
        video = photo_video(Path(scratch) / "photos.avi", frames_per_photo=max(1, args.frames // 6 + 1))
        results: dict[str, list[dict]] = {"sequential": [], "pipelined": []}
        for _ in range(args.rounds):
            for mode in ("sequential", "pipelined"):
                results[mode].append(run_once(artifact, video, args.frames, mode == "pipelined", args.threads))
    print(f"artifact: {artifact.name}; {args.frames} frames of a 640x480 MJPG video, {args.rounds} rounds (ABAB), "
          f"inference threads {args.threads}")
    stage_means: dict[str, dict[str, float]] = {}
    for mode, runs in results.items():
        fps = [r["fps"] for r in runs]
        stage_means[mode] = {s: statistics.mean(r["stages"][s]["mean_ms"] for r in runs) for s in STAGES}
        stages = "  ".join(f"{s} {stage_means[mode][s]:.2f}" for s in STAGES)
        print(f"{mode:<10} FPS {statistics.median(fps):7.1f} (runs: {', '.join(f'{f:.1f}' for f in fps)})  stage means ms: {stages}  "
              f"dropped {sum(r['frames']['dropped'] for r in runs)}")
    pipelined_fps = statistics.median(r["fps"] for r in results["pipelined"])
    sequential_fps = statistics.median(r["fps"] for r in results["sequential"])
    for basis in ("sequential", "pipelined"):
        means = stage_means[basis]
        slowest = max(means, key=lambda stage: means[stage])
        bound = 1000 / stage_means[basis][slowest]
        print(f"1/max(stage) from the {basis} runs' stage times: {bound:.1f} FPS ({slowest} {stage_means[basis][slowest]:.2f} ms); "
              f"pipelined / bound = {pipelined_fps / bound:.1%}")
    bound = 1000 / max(stage_means["pipelined"].values())
    strict = 1000 / max(stage_means["sequential"].values())
    print(f"pipelined / sequential = {pipelined_fps / sequential_fps:.2f}x")
    print(f"goal: pipelined FPS >= 90% of 1/max(stage) of the same runs: {'met' if pipelined_fps >= 0.9 * bound else 'NOT met'} "
          f"({pipelined_fps / bound:.1%}); against each stage alone: {pipelined_fps / strict:.1%} "
          f"(on {os.cpu_count()} CPUs, shared by {len(STAGES)} stages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
