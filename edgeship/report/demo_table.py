"""The camera demo in the main job's report: each board's stats as a table, and the viewer
page as a real headless Chromium shows it (a demo served here, on loopback)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

from edgeship.errors import EdgeshipError


def demo_scores(run_dir: Path, host: str, truth: list[dict] | None) -> dict | None:
    """A text demo's detection F1 and character accuracy against the video's ground truth."""
    from edgeship.report.ocr import score_text_predictions

    predictions = run_dir / "demo" / host / "predictions.jsonl"
    if truth is None or not predictions.is_file():
        return None
    return score_text_predictions(predictions, truth)


def demo_table(run_dir: Path, hosts: list[str], truth: list[dict] | None = None) -> str:
    """One row per board from <run_dir>/demo/<host>/stats.json (missing boards say so); with the
    video's ground truth, how well each board read it."""
    lines = ["| board | models | runs on | frames | FPS | dropped | slowest stage | end-to-end p50 / p90 | boxes | detection F1 | characters |",
             "|" + "---|" * 11]
    for host in hosts:
        path = run_dir / "demo" / host / "stats.json"
        if not path.is_file():
            lines.append(f"| {host} | - | - | - | - | - | - | - | - | - | no stats came home |")
            continue
        stats = json.loads(path.read_text())
        backend = stats["backend"] + (" (CPU fallback)" if stats.get("fallback") else "")
        models = Path(stats["artifact"]["path"]).name
        if stats.get("text_model"):
            text = stats["text_model"]
            models += " + " + Path(text["artifact"]["path"]).name
            backend += " + " + text["backend"] + (" (CPU fallback)" if text.get("fallback") else "")
        slowest = stats.get("bottleneck") or {}
        e2e = stats["end_to_end"]
        boxes = stats["detections"]["boxes"] if stats.get("detections") else "-"
        scores = demo_scores(run_dir, host, truth)
        f1 = "-" if not scores else f"{scores['f1']:.3f} ({scores['frames']} frames)"
        characters = "-" if not scores or scores["char_accuracy"] is None else f"{scores['char_accuracy']:.3f}"
        lines.append(f"| {host} | {models} | {backend} | {stats['frames']['processed']} | {(stats['fps'] or 0):.1f} | "
                     f"{stats['frames']['dropped']} | {slowest.get('stage', '-')} {slowest.get('mean_ms', 0):.1f} ms | "
                     f"{e2e.get('p50_ms', 0):.1f} / {e2e.get('p90_ms', 0):.1f} ms | {boxes} | {f1} | {characters} |")
    return "\n".join(lines)


@contextlib.contextmanager
def served_demo(artifact: Path, video: Path, stats: Path, seconds: float = 120, stdout=subprocess.DEVNULL, text_model: Path | None = None):
    """Run the demo on `video` in real time, looping, served on loopback (a free port); yields
    (process, viewer URL). A demo still running on the way out gets SIGTERM. With `text_model`,
    the demo reads the text in every box the artifact (a text detector) finds."""
    process = subprocess.Popen([sys.executable, "-m", "edgeship_runtime.cli", "demo", str(artifact), "--source", str(video), "--realtime",
                                "--loop", "--listen", "127.0.0.1:0", "--duration", str(seconds), "--output", str(stats),
                                *(["--rec", str(text_model)] if text_model else [])],
                               stdout=stdout, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None  # Popen(stderr=PIPE)
        line = process.stderr.readline()
        if "serving http://" not in line:
            raise EdgeshipError(f"the demo did not start its viewer: {(line + process.stderr.read()).strip()[-500:]}")
        yield process, line.split("serving ", 1)[1].split()[0]
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()


def viewer_screenshot(artifact: Path, video: Path, out: Path, seconds: float = 120, text_model: Path | None = None) -> dict:
    """Serve `artifact` on `video` here, screenshot the viewer with headless Chromium, stop the
    demo with SIGTERM; the demo's final stats land next to it."""
    from edgeship.report.browser import screenshot_viewer

    out.mkdir(parents=True, exist_ok=True)
    with served_demo(artifact, video, out / "viewer-stats.json", seconds, text_model=text_model) as (_, url):
        return screenshot_viewer(url, out / "viewer.png")
