"""The camera demo in the main job's report: each board's stats as a table, and the viewer
page as a real headless Chromium shows it (a demo served here, on loopback)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

from edgeship.errors import EdgeshipError


def demo_table(run_dir: Path, hosts: list[str]) -> str:
    """One row per board from <run_dir>/demo/<host>/stats.json (missing boards say so)."""
    lines = ["| board | model | runs on | source | frames | FPS | dropped | slowest stage | end-to-end p50 / p90 |", "|" + "---|" * 9]
    for host in hosts:
        path = run_dir / "demo" / host / "stats.json"
        if not path.is_file():
            lines.append(f"| {host} | - | - | - | - | - | - | - | no stats came home |")
            continue
        stats = json.loads(path.read_text())
        backend = stats["backend"] + (" (CPU fallback)" if stats.get("fallback") else "")
        model = Path(stats["artifact"]["path"]).name
        slowest = stats.get("bottleneck") or {}
        e2e = stats["end_to_end"]
        lines.append(f"| {host} | {model} | {backend} | {stats['source']['kind']} | {stats['frames']['processed']} | "
                     f"{(stats['fps'] or 0):.1f} | {stats['frames']['dropped']} | {slowest.get('stage', '-')} {slowest.get('mean_ms', 0):.1f} ms | "
                     f"{e2e.get('p50_ms', 0):.1f} / {e2e.get('p90_ms', 0):.1f} ms |")
    return "\n".join(lines)


@contextlib.contextmanager
def served_demo(artifact: Path, video: Path, stats: Path, seconds: float = 120, stdout=subprocess.DEVNULL):
    """Run the demo on `video` in real time, looping, served on loopback (a free port); yields
    (process, viewer URL). A demo still running on the way out gets SIGTERM."""
    process = subprocess.Popen([sys.executable, "-m", "edgeship_runtime.cli", "demo", str(artifact), "--source", str(video), "--realtime",
                                "--loop", "--listen", "127.0.0.1:0", "--duration", str(seconds), "--output", str(stats)],
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


def viewer_screenshot(artifact: Path, video: Path, out: Path, seconds: float = 120) -> dict:
    """Serve `artifact` on `video` here, screenshot the viewer with headless Chromium, stop the
    demo with SIGTERM; the demo's final stats land next to it."""
    from edgeship.report.browser import screenshot_viewer

    out.mkdir(parents=True, exist_ok=True)
    with served_demo(artifact, video, out / "viewer-stats.json", seconds) as (_, url):
        return screenshot_viewer(url, out / "viewer.png")
