"""The main job behind `invoke main`: bring up the engine and images, make the examples,
convert them for every target, check and benchmark each artifact with the board runtime on
this machine, then start the simulated board fleet, deploy this run's artifacts to it with
the real playbooks, benchmark on every board and write one report.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

from edgeship.convert import Request, convert
from edgeship.errors import EdgeshipError
from edgeship.examples import build_examples
from edgeship.images.build import build
from edgeship.images.engine import ensure_engine
from edgeship.images.locks import load_spec


def conversion_requests(example_dirs: list[Path], artifacts: Path) -> list[Request]:
    import targets
    from edgeship.examples import example_request

    return [example_request(folder, target.name, quant, artifacts, quant in target.needs_calibration)
            for target in targets.TARGETS.values() for folder in example_dirs for quant in target.quantizations]


def _runtime_figures(artifact_dir: Path) -> dict:
    """The board runtime's check and a short benchmark of the artifact, here on the host CPU."""
    from edgeship_runtime.artifact import Artifact
    from edgeship_runtime.backends import backend_class
    from edgeship_runtime.bench import benchmark
    from edgeship_runtime.check import check
    from edgeship_runtime.errors import RuntimeUnavailable
    from edgeship_runtime.select import choose

    requested = backend_class(Artifact.open(artifact_dir).backend)
    try:
        # The board runtime's own choice on a CPU-only machine: a CPU artifact runs as is, a
        # jetson artifact's own ONNX on ONNX Runtime's CPU (labelled); NPU artifacts need theirs.
        artifact, cls, fallback = choose(artifact_dir, allow_cpu_fallback=True, available=["cpu"])
    except RuntimeUnavailable:  # an NPU artifact: its accuracy was measured by the vendor's simulator
        return {"host_check_passed": None, "host_mean_ms": None, "host_p90_ms": None, "host_note": f"needs {requested.accelerator}"}
    note = f"on {cls.name} CPU" if fallback else None
    try:
        report = check(artifact, cls, threads=1)
    except RuntimeUnavailable as error:
        return {"host_check_passed": None, "host_mean_ms": None, "host_p90_ms": None, "host_note": str(error)}
    bench = benchmark(artifact, cls, threads=1, warmup_runs=5, warmup_s=0.2, min_runs=20, min_s=1.0)
    return {"host_check_passed": report["passed"], "host_mean_ms": bench["steady"]["mean_ms"], "host_p90_ms": bench["steady"]["p90_ms"],
            **({"host_note": note} if note else {})}


def _row(request: Request, artifact: Path, seconds: float) -> dict:
    from edgeship_runtime.tasks import HEADLINES

    manifest = json.loads((artifact / "manifest.json").read_text())
    accuracy = manifest["accuracy"]
    task = manifest.get("task", {}).get("name", "generic")
    metric, metric_name, label_metric, label_name = HEADLINES[task]
    labelled = accuracy.get("labelled") or {}
    return {
        "model": manifest["model"],
        "target": request.target,
        "quant": manifest["options"]["quant"],
        "task": task,
        "artifact": str(artifact),
        "size_bytes": manifest["artifact"]["size"],
        "sha256": manifest["artifact"]["sha256"],
        "cosine_min": min(figures["cosine_min"] for figures in accuracy["outputs"].values()),
        "snr_db_min": min(figures["snr_db_min"] for figures in accuracy["outputs"].values()),
        "metric": metric_name or None,
        "metric_vs_fp32": accuracy["metrics"].get(metric) if metric else None,
        "label_metric": label_name or None,
        "labelled_fp32": labelled.get("fp32", {}).get(label_metric) if label_metric else None,
        "labelled_converted": labelled.get("converted", {}).get(label_metric) if label_metric else None,
        "accuracy_passed": accuracy["passed"],
        "seconds": round(seconds, 2),
        **_runtime_figures(artifact),
    }


def _fmt(value, pattern):
    return "-" if value is None else pattern.format(value)


def _host_check(row: dict) -> str:
    if row["host_check_passed"] is None:
        return f"- ({row.get('host_note', 'not run')})"
    verdict = "pass" if row["host_check_passed"] else "FAIL"
    return f"{verdict} ({row['host_note']})" if row.get("host_note") else verdict


def _host_latency(row: dict) -> str:
    return "-" if row["host_mean_ms"] is None else f"{row['host_mean_ms']:.3f} / {row['host_p90_ms']:.3f} ms"


def render_table(rows: list[dict]) -> str:
    header = ("| model | target | quant | task | size | cosine min | SNR | task metric vs fp32 | against labels fp32 -> converted "
              "| within tolerance | convert time | runtime check (host) | latency mean / p90 (host, 1 thread) |")
    lines = [header, "|" + "---|" * 13]
    for row in rows:
        metric = "-" if row["metric_vs_fp32"] is None else f"{row['metric']} {row['metric_vs_fp32']:.1%}"
        labelled = ("-" if row["labelled_fp32"] is None else
                    f"{row['label_metric']} {row['labelled_fp32']:.2%} -> {row['labelled_converted']:.2%}")
        lines.append(f"| {row['model']} | {row['target']} | {row['quant']} | {row['task']} | {row['size_bytes'] / 1e6:.2f} MB | "
                     f"{_fmt(row['cosine_min'], '{:.5f}')} | {_fmt(row['snr_db_min'], '{:.1f} dB')} | {metric} | {labelled} | "
                     f"{'yes' if row['accuracy_passed'] else 'NO'} | {row['seconds']:.1f} s | {_host_check(row)} | {_host_latency(row)} |")
    return "\n".join(lines)


def _deploy_root(folder: Path, artifacts: list[Path]) -> Path:
    """This run's artifacts only (links), so the fleet gets exactly what was just converted."""
    root = folder / "deploy-artifacts"
    root.mkdir()
    for artifact in artifacts:
        (root / artifact.name).symlink_to(artifact.resolve(), target_is_directory=True)
    return root


def run_fleet(folder: Path, artifacts: list[Path], inventory: Path) -> tuple[str, int]:
    """sim.up, deploy.yml, bench.yml, demo.yml; returns the summary tables and the worst playbook exit code."""
    from edgeship.fleet import sim
    from edgeship.fleet.playbook import run_playbook
    from edgeship.report.fleet_table import write_summary

    boards = sim.up(inventory)
    print(f"edgeship: simulated fleet up: {', '.join(b.host for b in boards)}", flush=True)
    root = _deploy_root(folder, artifacts)
    deployed = run_playbook("deploy.yml", inventory, extra_vars={"edgeship_release_artifacts_root": str(root.resolve())})
    benched = run_playbook("bench.yml", inventory, extra_vars={"edgeship_bench_results_dir": str(folder.parent.resolve()),
                                                               "edgeship_bench_run_id": folder.name})
    table = write_summary(folder, [b.host for b in boards])
    # The camera demo on every board, fed a video made from scikit-image photos (no board has a camera)
    from edgeship.report.demo_table import demo_table
    from edgeship.report.media import photo_video

    video = photo_video(folder / "demo" / "photos.avi", width=320, height=240, frames_per_photo=10)
    shown = run_playbook("demo.yml", inventory, extra_vars={"edgeship_demo_results_dir": str(folder.parent.resolve()),
                                                            "edgeship_demo_run_id": folder.name, "edgeship_demo_video": str(video.resolve()),
                                                            "edgeship_demo_duration_s": 10, "edgeship_demo_keep_running": False})
    table += "\n\n### Camera demo (demo.yml, a video of scikit-image photos, 10 s per board)\n\n" + demo_table(folder, [b.host for b in boards])
    return table, max(deployed.returncode, benched.returncode, shown.returncode)


def host_viewer(folder: Path, artifacts: list[Path]) -> str:
    """The viewer page of a demo served here, as headless Chromium shows it (results/<run>/demo/viewer.png)."""
    from edgeship.report.demo_table import viewer_screenshot
    from edgeship.report.media import photo_video

    manifests = {artifact: json.loads((artifact / "manifest.json").read_text()) for artifact in artifacts}
    # a CPU artifact at full precision runs here as it would on a board
    shown = [a for a, m in manifests.items() if m["runtime_backend"] == "onnxruntime" and m["options"]["quant"] == "fp32"]
    artifact = next((a for a in shown if manifests[a]["model"] == "mobilenetv2"), shown[0] if shown else None)
    if artifact is None:
        return "(no fp32 ONNX Runtime artifact to show)"
    video = folder / "demo" / "photos.avi"
    if not video.is_file():
        video = photo_video(video, width=320, height=240, frames_per_photo=10)
    try:
        shot = viewer_screenshot(artifact, video, folder / "demo")
    except EdgeshipError as error:
        return f"(no screenshot: {error})"
    return (f"![the demo's viewer page in headless Chromium](demo/viewer.png)\n\n{artifact.name} on this machine, "
            f"stream {shot['stream_size'][0]}x{shot['stream_size'][1]}; the page read: `{shot['stats_text'].splitlines()[0]}`")


def run_main(results: Path, quick: bool = False, artifacts: Path = Path("artifacts"), examples: Path = Path("examples"),
             inventory: Path | None = Path("inventory.ini")) -> Path:
    import targets

    started = time.monotonic()
    client = ensure_engine()
    for image_name in sorted({target.image for target in targets.TARGETS.values()}):
        build(client, load_spec(image_name))
    example_dirs = build_examples(examples, names=("digits",) if quick else ("digits", "mobilenetv2"))
    rows, converted = [], []
    for request in conversion_requests(example_dirs, artifacts):
        began = time.monotonic()
        artifact = convert(request, client=client)
        rows.append(_row(request, artifact, time.monotonic() - began))
        converted.append(artifact)
        print(artifact, flush=True)
    run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    folder = results / run_id
    folder.mkdir(parents=True)
    table = render_table(rows)
    notes = ("mobilenetv2 has fixed-seed RANDOM weights: its accuracy figures only show conversion drift "
             "on a network whose logits are nearly tied, not a model's quality.")
    fleet_table, fleet_exit = ("(fleet skipped)", 0) if inventory is None else run_fleet(folder, converted, inventory)
    viewer = host_viewer(folder, converted)
    fleet_notes = ("Simulated boards are containers on this machine, sharing its cores (bench.yml measures them one at a "
                   "time): the aarch64 one runs under qemu-user emulation, so its latencies show emulation cost, not a board's speed; "
                   "a board without its accelerator (no simulated board has an NPU, GPU or Edge TPU) or without an artifact for it "
                   "runs its model's CPU artifact and says so. "
                   + " ".join(target.report_note for target in targets.TARGETS.values() if target.report_note))
    (folder / "report.json").write_text(json.dumps({"run_id": run_id, "conversions": rows, "fleet_exit": fleet_exit}, indent=2) + "\n")
    (folder / "report.md").write_text(f"# edgeship run {run_id}\n\n## Conversions\n\n{table}\n\n{notes}\n\n"
                                      f"## Simulated fleet (deploy.yml + bench.yml + demo.yml)\n\n{fleet_table}\n\n{fleet_notes}\n\n"
                                      f"## The demo's viewer page\n\n{viewer}\n")
    print("\n" + table + "\n\n" + notes + "\n\n" + fleet_table + "\n\n" + fleet_notes)
    print(f"\nedgeship: main job done in {time.monotonic() - started:.0f} s; report: {folder / 'report.md'}")
    if fleet_exit:
        raise EdgeshipError(f"the fleet playbooks failed on some boards (ansible-playbook exit {fleet_exit}); "
                            f"the report {folder / 'report.md'} marks them; see the play recap above")
    return folder
