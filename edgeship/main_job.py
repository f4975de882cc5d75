"""The main job behind `invoke main`: every toolchain image, the examples, their conversions for
every target, each artifact checked and timed on this machine, the simulated fleet (deploy,
benchmark, the text-reading camera demo on every board), the results store, the report and a
comparison with the previous run.

Work runs side by side where the machine allows: the board images and the fleet come up while
the toolchain images build, each image's conversions start as soon as it is built (two at a
time), and the wheelhouses are fetched ahead of the builds that need them. A progress display
shows each phase with its counts and elapsed time; `timings.json` keeps them per phase.
"""

from __future__ import annotations

import json
import platform
import threading
import time
from collections.abc import Collection
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from edgeship.convert import Request, convert
from edgeship.convert.request import find_target
from edgeship.errors import EdgeshipError
from edgeship.examples import build_examples, example_request
from edgeship.images.build import build
from edgeship.images.engine import ensure_engine
from edgeship.images.locks import ensure_wheelhouse, load_spec
from edgeship.report.store import DEMO_TRUTH, run_metadata
from edgeship_runtime.files import atomic_write_text

# What the main job converts: the real models in each target's default mode, int8 (what users
# compare accelerators on) and the modes the inventory's boards run; the speed models (random
# weights) in the default and the boards' modes. `--full` converts the real models in every mode.
REAL = ("digits", "digits-embed", "ppocr-det", "ppocr-rec")
FULL = ("digits", "digits-embed", "ppocr-det", "ppocr-cls", "ppocr-rec")
SPEED = ("mobilenetv2", "yolov8n")
# Real models with a TFLite source (MediaPipe's): fp16 and the boards' modes on every target that reads
# a TFLite source (and offers them for one), and int8 (rescued where the rescue can) for those in
# TFLITE_SOURCE_INT8.
TFLITE_SOURCE_FP16 = ("face-detection", "hand-landmark", "selfie-segmentation")
TFLITE_SOURCE_INT8 = ("hand-landmark",)
# Stateful models (their state carried step to step): the targets and modes that take them.
STATEFUL = {"vad": {"onnx": ("fp32", "int8"), "openvino": ("fp16",), "rk3588": ("fp16", "int8"), "jetson": ("fp16",)}}
FULL_SPEED = ("mobilenetv2", "yolov8n", "yolo11n")
# Speed models with published CPU figures (Ultralytics' Raspberry Pi 5 table: YOLO11n 640 on LiteRT,
# ONNX Runtime, OpenVINO, ncnn and MNN): converted in the modes the inventory's boards run on those
# runtimes, so the report's published table has measured rows of the same network beside it.
PUBLISHED_CPU = ("yolo11n",)
# The models a target without a board runtime (mcu: a microcontroller's firmware) converts: the
# others need more RAM for their tensor arena than any board in its table has.
MICRO = ("digits", "digits-embed")
# The text-reading demo on the boards: a detector and the recognizer that reads its boxes.
DEMO_MODELS = ("ppocr-det", "ppocr-rec")
CONVERSION_WORKERS = 2


def conversion_requests(example_dirs: list[Path], artifacts: Path, board_modes: Collection[tuple[str, str]] = (),
                        quick: bool = False, full: bool = False) -> list[Request]:
    """One request per example, target and mode (see REAL/SPEED above); `quick` drops the speed models."""
    import targets

    real, speed = (FULL, FULL_SPEED) if full else (REAL, () if quick else SPEED)
    requests = []
    for folder in example_dirs:
        if folder.name in STATEFUL:
            for target_name, quants in STATEFUL[folder.name].items():
                target = targets.get(target_name)
                for quant in quants:
                    requests.append(example_request(folder, target.name, quant, artifacts, quant in target.needs_calibration))
            continue
        tflite_source = folder.name in TFLITE_SOURCE_FP16
        if folder.name in PUBLISHED_CPU and folder.name not in speed:
            requests += published_cpu_requests(folder, artifacts, board_modes)
            continue
        if not tflite_source and folder.name not in real and folder.name not in speed:
            continue
        for target in targets.TARGETS.values():
            if not target.runtime_backend and folder.name not in MICRO:
                continue  # a microcontroller target (mcu) takes only the models small enough for one
            on_boards = {quant for name, quant in board_modes if name == target.name}
            if tflite_source:  # and the modes the boards run, to show them there
                wanted = ({"fp16", "int8"} if folder.name in TFLITE_SOURCE_INT8 else {"fp16"}) | on_boards
                wanted = wanted & set(target.quantizations_for("tflite")) if "tflite" in target.source_formats else set()
            elif folder.name not in real:
                wanted = {target.default_quant} | on_boards
            else:
                wanted = set(target.quantizations) if full else {target.default_quant, "int8"} | on_boards
            modes = [quant for quant in target.quantizations if quant in wanted]
            for quant in modes:
                request = example_request(folder, target.name, quant, artifacts, quant in target.needs_calibration)
                if quant == "int8" and any(option.name == "rescue" for option in target.options):
                    request.options = {"rescue": "auto"}  # int8 that misses its tolerance keeps the layers that lose it float
                requests.append(request)
    return requests


def published_cpu_requests(folder: Path, artifacts: Path, board_modes: Collection[tuple[str, str]]) -> list[Request]:
    """A speed model with published CPU figures, in each board mode whose runtime a figure names."""
    import targets
    from edgeship.report.reference_figures import FIGURES

    backends = {backend for figure in FIGURES if figure.model == folder.name and figure.accelerator == "cpu" for backend in figure.backends}
    return [example_request(folder, target, quant, artifacts, quant in targets.get(target).needs_calibration)
            for target, quant in sorted(board_modes) if target in targets.TARGETS and targets.get(target).runtime_backend in backends]


def job_problems(failures: list[str], fleet_exit: int) -> tuple[list[str], list[str]]:
    """(what fails the main job, the speed models' failed conversions). A speed model (random
    weights, for latency only) that a toolchain cannot take is a finding of the run, listed in the
    report; the job fails on the real models' conversions and on the fleet."""
    speed = {name for name in (*SPEED, *FULL_SPEED) if name not in REAL}
    speed_failures = [line for line in failures if line.split()[1] in speed]  # "conversion <model> for <target> ..."
    problems = [line for line in failures if line not in speed_failures]
    if fleet_exit:
        problems.append(f"the fleet playbooks failed on some boards (ansible-playbook exit {fleet_exit}); the report marks them; "
                        f"see the play recap above")
    return problems, speed_failures


HOST_RECORDS = ".host"  # under the artifacts root: each artifact's check and timing here, reused while nothing changed
HOST_BENCH = {"threads": 1, "warmup_runs": 3, "warmup_s": 0.2, "min_runs": 10, "min_s": 0.5}
HOST_PROFILE_RUNS = 10  # runs timed per operator (the report's per-operator tables), after the benchmark


def _runtime_figures(artifact_dir: Path) -> dict:
    """The board runtime's check and a short benchmark of the artifact, here on the host CPU.

    Kept in <artifacts>/.host/<artifact>.json as `check --record` keeps a board's check, with
    its fingerprint (the artifact's files and manifest, the runtime's code, this machine's
    accelerators and runtime versions, the backend and the benchmark's settings): a run where
    none of it changed reuses the figures and says when they were measured."""
    from edgeship_runtime.artifact import Artifact
    from edgeship_runtime.backends import backend_class
    from edgeship_runtime.bench import benchmark
    from edgeship_runtime.check import check, check_fingerprint, read_record, write_record
    from edgeship_runtime.detect import detect
    from edgeship_runtime.errors import RuntimeUnavailable
    from edgeship_runtime.profile import profile
    from edgeship_runtime.select import choose

    if not json.loads((artifact_dir / "manifest.json").read_text()).get("runtime_backend"):  # mcu: C source for a firmware build
        return {"host_check_passed": None, "host_mean_ms": None, "host_p90_ms": None, "host_note": "no board runtime: firmware C source"}
    requested = backend_class(Artifact.open(artifact_dir).backend)
    try:
        # The board runtime's own choice on a CPU-only machine: a CPU artifact runs as is, a
        # jetson artifact's own ONNX on ONNX Runtime's CPU (labelled); NPU artifacts need theirs.
        artifact, cls, fallback = choose(artifact_dir, allow_cpu_fallback=True, available=["cpu"])
    except RuntimeUnavailable:  # an NPU artifact: its accuracy was measured by the vendor's simulator
        return {"host_check_passed": None, "host_mean_ms": None, "host_p90_ms": None, "host_note": f"needs {requested.accelerator}"}
    notes = [f"on {cls.name} CPU"] if fallback else []
    record_path = artifact_dir.parent / HOST_RECORDS / f"{artifact_dir.name}.json"
    fingerprint = check_fingerprint(artifact, cls, fallback, detect(), threads=1, options={"bench": HOST_BENCH, "profile_runs": HOST_PROFILE_RUNS})
    kept = read_record(record_path, fingerprint, artifact)
    if kept is None:
        try:
            report = check(artifact, cls, threads=1)
            bench = benchmark(artifact, cls, **HOST_BENCH)
            host_profile = profile(artifact, cls, runs=HOST_PROFILE_RUNS, threads=1)
        except RuntimeUnavailable as error:
            return {"host_check_passed": None, "host_mean_ms": None, "host_p90_ms": None, "host_note": str(error)}
        steady = bench["steady"]
        # the spread too (p10, p50, runs): `compare` calls a change real only outside both runs' p10-p90
        figures = {"host_check_passed": report["passed"], "host_mean_ms": steady["mean_ms"], "host_p90_ms": steady["p90_ms"],
                   "host_p10_ms": steady.get("p10_ms"), "host_p50_ms": steady.get("p50_ms"), "host_runs": steady.get("runs"),
                   "host_profile": host_profile}
        write_record(record_path, fingerprint, figures)
    else:
        figures = {key: value for key, value in kept.items() if key.startswith("host_")}  # what was written above
        notes.append(f"kept from {kept['recorded']['checked_at']}: same artifact, runtime and machine")
    return {**figures, **({"host_note": "; ".join(notes)} if notes else {})}


def conversion_row(artifact: Path, seconds: float) -> dict:
    from edgeship_runtime import tasks

    manifest = json.loads((artifact / "manifest.json").read_text())
    accuracy = manifest["accuracy"]
    task = manifest.get("task", {}).get("name", tasks.fallback().name)
    metric, metric_name, label_metric, label_name = tasks.get(task, str(artifact / "manifest.json")).headline
    labelled = accuracy.get("labelled") or {}
    return {
        "model": manifest["model"],
        "target": manifest["target"],
        "quant": manifest["options"]["quant"],
        "task": task,
        "artifact": str(artifact),
        "size_bytes": manifest["artifact"]["size"],
        "sha256": manifest["artifact"]["sha256"],
        "cosine_min": min(figures["cosine_min"] for figures in accuracy["outputs"].values()),
        "snr_db_min": min(figures["snr_db_min"] for figures in accuracy["outputs"].values()),
        "metric": metric_name or None,
        "metric_vs_fp32": accuracy["metrics"].get(metric) if metric else None,
        "metric_note": accuracy["metrics"].get("not_measurable") if metric else None,  # why the metric is None: nothing to measure
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
    for row in sorted(rows, key=lambda r: (r["model"], r["target"], r["quant"])):
        metric = (f"{row['metric']} {row['metric_vs_fp32']:.1%}" if row["metric_vs_fp32"] is not None else
                  f"{row['metric']} not measurable ({row['metric_note']})" if row.get("metric_note") else "-")
        labelled = ("-" if row["labelled_fp32"] is None else
                    f"{row['label_metric']} {row['labelled_fp32']:.2%} -> {row['labelled_converted']:.2%}")
        lines.append(f"| {row['model']} | {row['target']} | {row['quant']} | {row['task']} | {row['size_bytes'] / 1e6:.2f} MB | "
                     f"{_fmt(row['cosine_min'], '{:.5f}')} | {_fmt(row['snr_db_min'], '{:.1f} dB')} | {metric} | {labelled} | "
                     f"{'yes' if row['accuracy_passed'] else 'NO'} | {row['seconds']:.1f} s | {_host_check(row)} | {_host_latency(row)} |")
    return "\n".join(lines)


class Phases:
    """Wall-clock time of each phase (they overlap), for timings.json and the benchmark script."""

    def __init__(self):
        self.started = time.monotonic()
        self.spans: dict[str, list[float]] = {}
        self.lock = threading.Lock()

    def begin(self, name: str) -> None:
        with self.lock:
            self.spans[name] = [time.monotonic() - self.started, float("nan")]

    def end(self, name: str) -> None:
        with self.lock:
            self.spans[name][1] = time.monotonic() - self.started

    def as_dict(self) -> dict:
        return {name: {"start_s": round(start, 1), "end_s": round(end, 1), "seconds": round(end - start, 1)}
                for name, (start, end) in self.spans.items()}


class MainJob:
    def __init__(self, results: Path, artifacts: Path, examples: Path, inventory: Path | None, quick: bool, full: bool = False):
        self.results, self.artifacts, self.examples, self.inventory = results, artifacts, examples, inventory
        self.quick, self.full = quick, full
        self.run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.folder = results / self.run_id
        self.phases = Phases()
        self.client = ensure_engine()
        self.meta = run_metadata()  # when and from which checkout this run started
        self.built: list = []  # the toolchain images, as built or found

    # -- phases ---------------------------------------------------------------------------------
    def images(self, progress, task) -> dict[str, Future]:
        """Every toolchain image, one build at a time (they contend for the disk), wheelhouses
        fetched ahead of them in a thread of their own (they wait on the network). The clean-up
        image comes first (every ONNX conversion waits for it), then the smaller toolchains, so
        conversions start while the big ones build (a lock's size stands for its toolchain's)."""
        import targets
        from edgeship.convert.clean import CLEAN_IMAGE

        names = sorted({t.image for t in targets.TARGETS.values()} | {CLEAN_IMAGE},
                       key=lambda name: (name != CLEAN_IMAGE, load_spec(name).lock.stat().st_size, name))
        wheels = ThreadPoolExecutor(1, thread_name_prefix="wheels")
        fetched = {name: wheels.submit(ensure_wheelhouse, load_spec(name)) for name in names}
        builder = ThreadPoolExecutor(1, thread_name_prefix="images")
        futures = {}

        def build_one(name: str):
            fetched[name].result()
            image = build(self.client, load_spec(name))
            self.built.append(image)
            progress.advance(task)
            return image

        self.phases.begin("images")
        for name in names:
            futures[name] = builder.submit(build_one, name)
        wheels.shutdown(wait=False)
        builder.shutdown(wait=False)
        return futures

    def fleet_up(self) -> list:
        from edgeship.fleet import sim

        self.phases.begin("fleet bring-up")
        boards = sim.up(self.inventory) if self.inventory else []
        self.phases.end("fleet bring-up")
        return boards

    def conversions(self, requests: list[Request], images: dict[str, Future], progress, task) -> tuple[list[dict], list[str]]:
        """Each image's conversions as soon as it is built (and the clean-up image), two at a time;
        each artifact is checked and timed here as it comes. A conversion that fails is one line
        in the report (the rest go on); the job exits non-zero at the end."""
        from edgeship.convert.clean import CLEAN_IMAGE

        pool = ThreadPoolExecutor(CONVERSION_WORKERS, thread_name_prefix="convert")
        rows: list[dict] = []
        failures: list[str] = []
        lock = threading.Lock()

        def failed(request: Request, why: str) -> None:
            message = f"conversion {request.model.parent.name} for {request.target} {request.quant} failed: {why}"
            with lock:
                failures.append(message)
            progress.console.print(message, style="red", markup=False)

        def one(request: Request) -> None:
            began = time.monotonic()
            try:
                artifact = convert(request, client=self.client)
                row = conversion_row(artifact, time.monotonic() - began)
            except EdgeshipError as error:
                failed(request, str(error))
            except Exception as error:  # a crash in one conversion or its host check is one failed row, not a lost run
                failed(request, f"{type(error).__name__}: {error}")
            else:
                with lock:
                    rows.append(row)
            progress.advance(task)

        def built(name: str) -> str:
            """'' when the image built, else why not (its conversions fail with that reason)."""
            try:
                images[name].result()
            except Exception as error:  # an image that does not build fails its conversions, not the run
                return f"image {name} did not build ({type(error).__name__}: {error})"
            return ""

        self.phases.begin("conversions")
        by_image: dict[str, list[Request]] = {}
        for request in requests:
            by_image.setdefault(find_target(request.target).image, []).append(request)
        clean_failed = built(CLEAN_IMAGE)  # the graph clean-up every ONNX source goes through
        futures = []
        for name in images:
            image_failed = built(name)
            for request in by_image.get(name, []):
                why = image_failed or (clean_failed if request.model.suffix == ".onnx" else "")
                if why:
                    failed(request, why)
                    progress.advance(task)
                else:
                    futures.append(pool.submit(one, request))
        self.phases.end("images")
        for done in futures:
            done.result()
        pool.shutdown()
        self.phases.end("conversions")
        return rows, sorted(failures)

    def fleet(self, artifacts: list[Path], boards: list) -> tuple[str, int, list[dict] | None]:
        """deploy.yml, bench.yml, demo.yml (the text-reading demo on a video of moving signs with
        its ground truth); the summary tables, the worst playbook exit code, the truth."""
        from edgeship.fleet.playbook import run_playbook
        from edgeship.fleet.sim import DOCKER_ARCH
        from edgeship.report.demo_table import demo_table
        from edgeship.report.fleet_table import write_summary
        from edgeship.report.media import text_video

        hosts = [b.host for b in boards]
        root = self.folder / "deploy-artifacts"
        root.mkdir()
        for artifact in artifacts:  # this run's artifacts only, so the fleet gets exactly what was converted
            (root / artifact.name).symlink_to(artifact.resolve(), target_is_directory=True)
        self.phases.begin("deploy")
        deployed = run_playbook("deploy.yml", self.inventory, extra_vars={"edgeship_release_artifacts_root": str(root.resolve())})
        self.phases.end("deploy")
        self.phases.begin("bench")
        benched = run_playbook("bench.yml", self.inventory, extra_vars={"edgeship_bench_results_dir": str(self.results.resolve()),
                                                                         "edgeship_bench_run_id": self.run_id})
        self.phases.end("bench")
        table = write_summary(self.folder, hosts)
        self.phases.begin("demo")
        video, truth = text_video(self.folder / "demo" / "signs.avi", frames=90)
        (self.folder / "demo" / DEMO_TRUTH).write_text(json.dumps({"video": video.name, "frames": truth}) + "\n")
        # An emulated board (another architecture, under qemu) reads one frame in about a minute:
        # the main job shows the demo on the others (`./dev fleet.demo` runs it there as well).
        emulated = [b.host for b in boards if b.arch != DOCKER_ARCH.get(platform.machine())]
        shown = run_playbook("demo.yml", self.inventory, limit=":".join(["edgeship_boards", *(f"!{host}" for host in emulated)]), extra_vars={
            "edgeship_demo_results_dir": str(self.results.resolve()), "edgeship_demo_run_id": self.run_id,
            "edgeship_demo_video": str(video.resolve()), "edgeship_demo_model": DEMO_MODELS[0], "edgeship_demo_text_model": DEMO_MODELS[1],
            "edgeship_demo_keep_running": False})
        self.phases.end("demo")
        table += ("\n\n### Camera demo (demo.yml: PP-OCRv4 det + rec reading a video of moving signs, scored against its ground truth)"
                  "\n\n" + demo_table(self.folder, [host for host in hosts if host not in emulated], truth))
        if emulated:
            table += (f"\n\n{', '.join(emulated)}: emulated (qemu), no demo in the main job: PP-OCR reads one frame in about a minute "
                      f"there; `./dev fleet.demo --limit {emulated[0]}` runs it.")
        return table, max(deployed.returncode, benched.returncode, shown.returncode), truth

    def viewer(self, artifacts: list[Path]) -> str:
        """The viewer page of a text-reading demo served here, as headless Chromium shows it."""
        from edgeship.report.demo_table import viewer_screenshot
        from edgeship.report.media import text_video

        manifests = {artifact: json.loads((artifact / "manifest.json").read_text()) for artifact in artifacts}

        import targets
        from edgeship_runtime.backends import backend_class

        # the first target (in the targets' order) whose fp32 artifacts run on this machine's CPU
        cpu_targets = [t.name for t in targets.TARGETS.values() if t.runtime_backend and backend_class(t.runtime_backend).accelerator == "cpu"]

        def pick(model: str, target: str) -> Path | None:
            return next((a for a, m in manifests.items() if m["model"] == model and m["target"] == target and m["options"]["quant"] == "fp32"),
                        None)

        pairs = ((pick(DEMO_MODELS[0], target), pick(DEMO_MODELS[1], target)) for target in cpu_targets)
        detector, recognizer = next(((d, r) for d, r in pairs if d and r), (None, None))
        if detector is None or recognizer is None:
            return f"(no fp32 {' + '.join(DEMO_MODELS)} artifacts of a CPU target ({', '.join(cpu_targets)}) to show)"
        video = self.folder / "demo" / "signs.avi"
        if not video.is_file():
            video, _ = text_video(video, frames=90)
        try:
            shot = viewer_screenshot(detector, video, self.folder / "demo", text_model=recognizer)
        except EdgeshipError as error:
            return f"(no screenshot: {error})"
        return (f"![the demo's viewer page in headless Chromium](demo/viewer.png)\n\n{detector.name} + {recognizer.name} on this "
                f"machine, stream {shot['stream_size'][0]}x{shot['stream_size'][1]}; the page read: `{shot['stats_text'].splitlines()[0]}`")

    def notes(self, failures: list[str]) -> list[str]:
        import targets

        return [
            *failures,
            "mobilenetv2 and yolov8n have fixed-seed RANDOM weights: their figures show speed and conversion drift only, not a "
            "model's quality. The PP-OCR models are PaddleOCR's pretrained ones, judged by their task on data rendered here.",
            "bench.yml measures the simulated boards one at a time; the aarch64 one (emulated under qemu) checks a few reference "
            "samples, benchmarks time-boxed and shows no demo here. A board without an artifact for its target runs its model's "
            "CPU artifact and says so.",
            *(target.report_note for target in targets.TARGETS.values() if target.report_note),
        ]

    def report(self, rows: list[dict], fleet_exit: int, failures: list[str]) -> Path:
        """report.json: what the results store imports (the conversions as checked here, the fleet's
        exit, the phases, this checkout and controller, the notes)."""
        images = {image.tags[0]: image.id for image in self.built if image.tags}
        document = {"run_id": self.run_id, "meta": {**self.meta, "images": images}, "conversions": rows, "fleet_exit": fleet_exit,
                    "failures": failures, "notes": self.notes(failures), "timings": self.phases.as_dict()}
        atomic_write_text(self.folder / "report.json", json.dumps(document, indent=2) + "\n")
        atomic_write_text(self.folder / "timings.json", json.dumps(self.phases.as_dict(), indent=2) + "\n")
        return self.folder / "report.json"

    def publish(self, rows: list[dict], fleet_table: str, viewer: str) -> list[str]:
        """Into the results store; compared with the previous run (regressions printed and written
        to compare-<base>.md); then report.html and report.md from the store. Should the report
        fail, report.md still gets this run's tables as plain markdown, and the error is shown."""
        from edgeship.report import store
        from edgeship.report.publish import write_report
        from edgeship.report.regressions import compare_runs

        self.phases.begin("report")
        lines = []
        try:
            store.import_run(self.results, self.folder)
            if compare_runs(self.results, None, self.run_id):
                lines.append("regressions against the previous run: see compare-*.md in the run folder")
            lines += [str(path) for path in write_report(self.results, self.run_id)]
        except Exception as error:  # after a whole fleet run, the tables are kept whatever broke the report
            atomic_write_text(self.folder / "report.md", f"# edgeship run {self.run_id}\n\n## Conversions\n\n{render_table(rows)}\n\n"
                                                         f"## Simulated fleet\n\n{fleet_table}\n\n## The demo's viewer page\n\n{viewer}\n")
            lines.append(f"edgeship: the report could not be made ({type(error).__name__}: {error}); "
                         f"plain tables in {self.folder / 'report.md'}")
        self.phases.end("report")
        return lines

    # -- the run --------------------------------------------------------------------------------
    def run(self) -> Path:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.phases.begin("examples")
        example_dirs = build_examples(self.examples)
        self.phases.end("examples")
        from edgeship.fleet.sim import board_modes

        modes = board_modes(self.inventory) if self.inventory else set()
        requests = conversion_requests(example_dirs, self.artifacts, modes, quick=self.quick, full=self.full)
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as progress:
            images_task = progress.add_task("toolchain images", total=len({find_target(r.target).image for r in requests}))
            conversions_task = progress.add_task("conversions (checked and timed here)", total=len(requests))
            with ThreadPoolExecutor(1, thread_name_prefix="fleet") as fleet_pool:
                boards_future = fleet_pool.submit(self.fleet_up)
                images = self.images(progress, images_task)
                rows, failures = self.conversions(requests, images, progress, conversions_task)
                boards = boards_future.result()
        self.folder.mkdir(parents=True)
        artifacts = [Path(row["artifact"]) for row in rows]
        fleet_table, fleet_exit = "(fleet skipped)", 0
        if self.inventory is not None:
            fleet_table, fleet_exit, _ = self.fleet(artifacts, boards)
        self.phases.begin("viewer")
        viewer = self.viewer(artifacts)
        self.phases.end("viewer")
        self.report(rows, fleet_exit, failures)
        published = self.publish(rows, fleet_table, viewer)
        self.report(rows, fleet_exit, failures)  # again, with the report phase's time (the store keeps the first import's)
        print("\n" + render_table(rows) + "\n\n" + fleet_table + "\n")
        print("\n".join(published))
        elapsed = time.monotonic() - self.phases.started
        print(f"\nedgeship: main job done in {elapsed:.0f} s; results in {self.folder}; phases: "
              + ", ".join(f"{name} {span['seconds']:.0f} s" for name, span in self.phases.as_dict().items()))
        problems, speed_failures = job_problems(failures, fleet_exit)
        if speed_failures:
            print(f"edgeship: {len(speed_failures)} conversion(s) of the random-weight speed models failed (toolchain limits, "
                  f"listed above and in the report); they do not fail the job")
        if problems:
            raise EdgeshipError("; ".join(problems))
        return self.folder


def run_main(results: Path, quick: bool = False, artifacts: Path = Path("artifacts"), examples: Path = Path("examples"),
             inventory: Path | None = Path("inventory.ini"), full: bool = False) -> Path:
    return MainJob(results, artifacts, examples, inventory, quick, full).run()
