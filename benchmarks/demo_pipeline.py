"""The camera demo's pipeline against the same stages run one after another, in one run.

    .venv/bin/python benchmarks/demo_pipeline.py [--mode classify|ocr] [--frames N] [--rounds R] [--threads T]

classify: MobileNetV2 fp32 for the onnx target, fed a 640x480 MJPG video panned across
scikit-image photos. ocr: the two-model text pipeline, PP-OCRv4's detector and recognizer
(onnx int8), fed a 640x480 video of signs moving over a photo; the recognizer runs in its own
stage. Both are converted when needed and served to nobody (no HTTP clients; the JPEG is still
encoded every frame). Rounds alternate sequential and pipelined runs (ABAB), so machine noise
hits both. Printed, per mode: FPS (steady, first to last rendered frame) and each stage's mean
time. Then 1/max(stage):
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
from edgeship_runtime.demo import Demo, DemoOptions, TextModel, open_source
from edgeship_runtime.preprocess import Preprocess
from edgeship_runtime.select import choose


def converted(example: str, quant: str) -> Path:
    from edgeship.convert import convert
    from edgeship.examples import build_examples, example_request

    folder = build_examples(ROOT / "examples", names=(example,))[0]
    return convert(example_request(folder, "onnx", quant, ROOT / "artifacts", quant == "int8"))


def run_once(artifacts: list[Path], video: Path, frames: int, pipelined: bool, threads: int) -> dict:
    artifact, backend_cls, fallback = choose(artifacts[0], allow_cpu_fallback=True, available=["cpu"])
    text = None
    if len(artifacts) > 1:
        rec, rec_cls, rec_fallback = choose(artifacts[1], allow_cpu_fallback=True, available=["cpu"])
        text = TextModel(rec, rec_cls, Preprocess.for_artifact(rec), rec_fallback)
    demo = Demo(artifact, backend_cls, open_source(str(video)), Preprocess.for_artifact(artifact),
                DemoOptions(threads=threads, fallback=fallback, pipelined=pipelined, max_frames=frames, log=lambda line: None, text=text))
    return demo.run()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("classify", "ocr"), default="classify")
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="inference threads per model (default 1: the other stages get the other cores)")
    args = parser.parse_args()
    from edgeship.report.media import photo_video, text_video

    with tempfile.TemporaryDirectory() as scratch:
        if args.mode == "ocr":
            artifacts = [converted("ppocr-det", "int8"), converted("ppocr-rec", "int8")]
            video, _ = text_video(Path(scratch) / "signs.avi", frames=args.frames)
        else:
            artifacts = [converted("mobilenetv2", "fp32")]
            video = photo_video(Path(scratch) / "photos.avi", frames_per_photo=max(1, args.frames // 6 + 1))
        results: dict[str, list[dict]] = {"sequential": [], "pipelined": []}
        for _ in range(args.rounds):
            for mode in ("sequential", "pipelined"):
                results[mode].append(run_once(artifacts, video, args.frames, mode == "pipelined", args.threads))
    stages = list(results["pipelined"][0]["stages"])
    print(f"{args.mode}: {', '.join(a.name for a in artifacts)}; {args.frames} frames of a 640x480 MJPG video, {args.rounds} rounds (ABAB), "
          f"inference threads {args.threads}")
    stage_means: dict[str, dict[str, float]] = {}
    for mode, runs in results.items():
        fps = [r["fps"] for r in runs]
        stage_means[mode] = {s: statistics.mean(r["stages"][s]["mean_ms"] for r in runs) for s in stages}
        line = "  ".join(f"{s} {stage_means[mode][s]:.2f}" for s in stages)
        print(f"{mode:<10} FPS {statistics.median(fps):7.1f} (runs: {', '.join(f'{f:.1f}' for f in fps)})  stage means ms: {line}  "
              f"dropped {sum(r['frames']['dropped'] for r in runs)}")
    pipelined_fps = statistics.median(r["fps"] for r in results["pipelined"])
    sequential_fps = statistics.median(r["fps"] for r in results["sequential"])
    for basis in ("sequential", "pipelined"):
        means = stage_means[basis]
        slowest = max(means, key=lambda stage: means[stage])
        bound = 1000 / means[slowest]
        print(f"1/max(stage) from the {basis} runs' stage times: {bound:.1f} FPS ({slowest} {means[slowest]:.2f} ms); "
              f"pipelined / bound = {pipelined_fps / bound:.1%}")
    print(f"pipelined / sequential = {pipelined_fps / sequential_fps:.2f}x on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
