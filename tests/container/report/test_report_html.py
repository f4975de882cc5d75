"""report.html as a person sees it: a run folder made of real conversions, the board runtime's own
detect/check/bench/demo output (as bench.yml and demo.yml bring it home), rendered by
`write_report` and opened from disk in a real headless Chromium. Every plot must be there and
drawn, no image broken, and the comparison must have a row for every board x model.

Two "boards" run here: this machine as itself, and the same figures under a simulated arm64
board's identity (the detect record of an aarch64 container on this kernel), which the report
must label as emulated. The screenshot is kept in results/tests/report.png."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT

RUN = "20261130T120000Z"
# main_job's conversions: (example, quant, target)
CONVERSIONS = (("digits", "fp32", "onnx"), ("digits", "int8", "tflite"), ("mobilenetv2", "fp32", "onnx"))
ON_BOARDS = {"digits": ("digits", "int8", "tflite"), "mobilenetv2": ("mobilenetv2", "fp32", "onnx")}


def runtime(*args) -> dict:
    """`edgeship-runtime ARGS` as a board runs it; its JSON output (check exits 1 on a failed check)."""
    result = subprocess.run([sys.executable, "-m", "edgeship_runtime.cli", *map(str, args)], capture_output=True, text=True, timeout=600)
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def board_file(folder: Path, host: str, detect: dict, artifacts: dict) -> None:
    """<host>.json exactly as bench.yml writes it."""
    results = []
    for model, artifact in artifacts.items():
        results.append({"model": model, "note": None, "check": runtime("check", artifact, "--threads", "1"),
                        "bench": runtime("bench", artifact, "--threads", "1", "--warmup-s", "0.2", "--min-runs", "10", "--min-s", "0.5",
                                         "--instances", "2")})
    document = {"host": host, "run_id": RUN, "release_id": "test-release", "target": "tflite", "detect": detect, "results": results}
    (folder / f"{host}.json").write_text(json.dumps(document, indent=2))


def test_report_html_in_headless_chromium(conversions, tmp_path):
    from edgeship.main_job import conversion_row
    from edgeship.report import store
    from edgeship.report.browser import Browser
    from edgeship.report.publish import write_report

    results = tmp_path / "results"
    folder = results / RUN
    (folder / "deploy-artifacts").mkdir(parents=True)
    made = {}
    rows = []
    for example, quant, target in CONVERSIONS:
        artifact = conversions(example, quant, target=target)
        made[(example, quant, target)] = artifact
        (folder / "deploy-artifacts" / artifact.name).symlink_to(artifact, target_is_directory=True)
        rows.append(conversion_row(artifact, 1.0))  # the main job's own row, with its check and benchmark here
    (folder / "report.json").write_text(json.dumps({"run_id": RUN, "conversions": rows, "fleet_exit": 0, "meta": store.run_metadata()}, indent=2))

    on_boards = {model: made[key] for model, key in ON_BOARDS.items()}
    detect = runtime("detect")
    board_file(folder, "this-host", detect, on_boards)
    arm = {**detect, "arch": "aarch64", "board": {"model": "Radxa ROCK 5B (edgeship simulated)", "source": "device-tree",
                                                  "compatible": ["radxa,rock-5b", "rockchip,rk3588"]}}
    board_file(folder, "sim-arm", arm, on_boards)
    (folder / "demo" / "this-host").mkdir(parents=True)
    demo = subprocess.run([sys.executable, "-m", "edgeship_runtime.cli", "demo", str(on_boards["mobilenetv2"]), "--source", "pattern",
                           "--duration", "3", "--no-server", "--threads", "1", "--output", str(folder / "demo" / "this-host" / "stats.json")],
                          capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stderr

    html, markdown = write_report(results, RUN)
    benched = {(row["board"], row["model"]) for row in store.table_rows(results, "benches", RUN)}
    assert benched == {(board, model) for board in ("this-host", "sim-arm", "controller") for model in ("digits", "mobilenetv2")}

    with Browser(window=(1400, 900)) as browser:
        browser.open(html.resolve().as_uri())
        images = browser.wait_for("const all = Array.from(document.images); return all.every(i => i.complete) ? "
                                  "all.map(i => [i.dataset.plot || i.alt, i.naturalWidth, i.naturalHeight]) : null;")
        rows_seen = browser.run("return Array.from(document.querySelectorAll('table.comparison tr[data-board]'))"
                                ".map(r => [r.dataset.board, r.dataset.model, r.className, r.textContent]);")
        svg_count = browser.run("return document.querySelectorAll('svg').length;")
        screenshot = browser.screenshot(tmp_path / "report.png", full_page=True)

    plots = {name: (width, height) for name, width, height in images}
    assert set(plots) >= {"latency-digits", "latency-mobilenetv2", "accuracy-size-latency", "demo-stages"}, plots
    assert all(width > 0 and height > 0 for width, height in plots.values()), f"broken images: {plots}"
    assert svg_count == 0  # the plots are <img> with SVG data, so naturalWidth tells a broken one
    assert {(board, model) for board, model, *_ in rows_seen} >= benched
    emulated = {(board, model) for board, model, kind, _ in rows_seen if kind == "emulated"}
    assert emulated == {("sim-arm", "digits"), ("sim-arm", "mobilenetv2")}
    assert all("emulated (aarch64 on qemu)" in text for board, _, _, text in rows_seen if board == "sim-arm")
    assert "![" in markdown.read_text() and (folder / "plots" / "demo-stages.svg").is_file()

    kept = ROOT / "results" / "tests"
    kept.mkdir(parents=True, exist_ok=True)
    shutil.copy(screenshot, kept / "report.png")
    print(f"report screenshot: {kept / 'report.png'}")
