"""The camera demo in the main job's report: each board's stats as a table, and the viewer
page as a real headless Chromium shows it (a demo served here, on loopback)."""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import sys
import threading
import time
from pathlib import Path

from edgeship.errors import EdgeshipError
from edgeship.report.markdown import md_text
from edgeship.report.store import read_result_file


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
        problems: list[list[str]] = []
        stats = read_result_file(path, problems)  # a board's file: read as untrusted
        try:
            lines.append(_demo_row(run_dir, host, stats, truth) if stats is not None else
                         f"| {host} | - | - | - | - | - | - | - | - | - | stats not read: {md_text(problems[0][1])} |")
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError, OSError) as error:  # of another shape
            lines.append(f"| {host} | - | - | - | - | - | - | - | - | - | stats not read ({type(error).__name__}) |")
    return "\n".join(lines)


def _demo_row(run_dir: Path, host: str, stats: dict, truth: list[dict] | None) -> str:
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
    cells = [host, models, backend, stats["frames"]["processed"], f"{(stats['fps'] or 0):.1f}", stats["frames"]["dropped"],
             f"{slowest.get('stage', '-')} {slowest.get('mean_ms', 0):.1f} ms", f"{e2e.get('p50_ms', 0):.1f} / {e2e.get('p90_ms', 0):.1f} ms",
             boxes, f1, characters]
    return "| " + " | ".join(md_text(cell) for cell in cells) + " |"


# The demo loads its models (PP-OCR det and rec) before it prints where it serves: seconds on
# this machine; a demo still silent after this is stuck, and the main job says so instead of waiting.
START_TIMEOUT_S = 180.0


def line_with(fd: int, marker: bytes, bound_s: float, what: str) -> str:
    """The first line holding `marker` that a process writes to the pipe `fd` (a backend's own
    notices may come before it: LiteRT announces its XNNPACK delegate), waited for at most
    bound_s seconds (a readline() on the pipe would wait forever on a process that never
    writes); the last of what it wrote when it ends without one."""
    deadline = time.monotonic() + bound_s
    data = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            lines = data.split(b"\n")
            found = next((line for line in lines[:-1] if marker in line), None)
            if found is not None:
                return found.decode(errors="replace")
            data = data[-(1 << 16):]  # a chatty process: only the tail is kept
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise EdgeshipError(f"{what} did not come within {bound_s:g} s (it had written {data[-200:].decode(errors='replace')!r}); "
                                    f"run the command by hand to see where it hangs")
            chunk = os.read(fd, 4096)
            if not chunk:
                return data.strip().rsplit(b"\n", 1)[-1].decode(errors="replace")  # the process ended
            data += chunk


def _drain(fd: int) -> None:
    with contextlib.suppress(OSError):
        while os.read(fd, 65536):
            pass


@contextlib.contextmanager
def served_demo(artifact: Path, video: Path, stats: Path, seconds: float = 120, stdout=subprocess.DEVNULL, text_model: Path | None = None):
    """Run the demo on `video` in real time, looping, served on loopback (a free port); yields
    (process, viewer URL). A demo still running on the way out gets SIGTERM. With `text_model`,
    the demo reads the text in every box the artifact (a text detector) finds."""
    process = subprocess.Popen([sys.executable, "-m", "edgeship_runtime.cli", "demo", str(artifact), "--source", str(video), "--realtime",
                                "--loop", "--listen", "127.0.0.1:0", "--duration", str(seconds), "--output", str(stats),
                                *(["--rec", str(text_model)] if text_model else [])],
                               stdout=stdout, stderr=subprocess.PIPE, text=True)
    drainer: threading.Thread | None = None
    try:
        assert process.stderr is not None  # Popen(stderr=PIPE)
        line = line_with(process.stderr.fileno(), b"serving http://", START_TIMEOUT_S, "the demo's viewer address (a line on its stderr)")
        if "serving http://" not in line:
            exited = process.poll()
            raise EdgeshipError(f"the demo did not start its viewer{f' (exit {exited})' if exited is not None else ''}: "
                                f"{' '.join(line.split())[-500:]}")
        # the demo keeps writing to stderr: drained, so a full pipe never stalls it
        drainer = threading.Thread(target=_drain, args=(process.stderr.fileno(),), daemon=True, name="demo-stderr")
        drainer.start()
        yield process, line.split("serving ", 1)[1].split()[0]
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if drainer is not None:
            drainer.join(10)  # the pipe's end came with the process's: done before the pipe is closed


def viewer_screenshot(artifact: Path, video: Path, out: Path, seconds: float = 120, text_model: Path | None = None) -> dict:
    """Serve `artifact` on `video` here, screenshot the viewer with headless Chromium, stop the
    demo with SIGTERM; the demo's final stats land next to it."""
    from edgeship.report.browser import screenshot_viewer

    out.mkdir(parents=True, exist_ok=True)
    with served_demo(artifact, video, out / "viewer-stats.json", seconds, text_model=text_model) as (_, url):
        return screenshot_viewer(url, out / "viewer.png")
