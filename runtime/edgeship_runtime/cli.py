"""edgeship-runtime {detect,prepare,check,bench,profile,demo}: one entry point on the board; JSON on stdout."""

from __future__ import annotations

import json
import sys

from edgeship_runtime import flags, scenarios
from edgeship_runtime.errors import ArtifactError, RuntimeUnavailable
from edgeship_runtime.profile import MAX_RUNS as PROFILE_RUNS_MAX

# keyword arguments every backend takes from the command line itself, never as a --backend-option
_RESERVED_OPTIONS = {"artifact", "threads"}


def _options(pairs) -> dict:
    options = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier() or key in _RESERVED_OPTIONS:
            raise ArtifactError(f"--backend-option {pair!r} is not KEY=VALUE with a KEY of letters, digits and '_' "
                                f"(not {' or '.join(sorted(_RESERVED_OPTIONS))}); e.g. --backend-option core=all")
        options[key] = value
    return options


def _artifact_arguments(parser):
    parser.add_argument("artifact", help="artifact directory written by `invoke convert`")
    parser.add_argument("--threads", type=flags.count(1, 1024), default=None, help="CPU threads for the backend (default: the backend's)")
    parser.add_argument("--allow-cpu-fallback", action="store_true", help="run --cpu-artifact on the CPU when the accelerator is absent")
    parser.add_argument("--cpu-artifact", default=None, help="CPU artifact of the same model, for --allow-cpu-fallback")
    parser.add_argument("--fallback-for", default=None, metavar="REASON",
                        help="this CPU artifact stands in for the board's own, which does not exist (REASON says why): "
                             "every result is labelled a CPU fallback")
    parser.add_argument("--backend-option", action="append", metavar="KEY=VALUE", help="backend option, e.g. core=all (RKNN Lite's NPU cores)")
    parser.add_argument("--output", "-o", default=None, help="also write the JSON here")


def _emit(document: dict, output: str | None) -> None:
    from edgeship_runtime.files import atomic_write_text

    text = json.dumps(document, indent=2, sort_keys=True)
    print(text)
    if output:  # replaced whole (a link there is replaced, not followed); checked before any work
        atomic_write_text(output, text + "\n")


def _prepare(args) -> int:
    """Each artifact's backend prepares it for this board (deploy runs this as a long task):
    a TensorRT engine is built, other backends need nothing."""
    from edgeship_runtime.artifact import Artifact
    from edgeship_runtime.backends import backend_class
    from edgeship_runtime.detect import detect

    board = detect()
    prepared = []
    for path in args.artifact:
        artifact = Artifact.open(path)
        record = backend_class(artifact.backend).prepare_artifact(artifact, board, cache=args.cache, allow_cpu_fallback=args.allow_cpu_fallback)
        prepared.append({"artifact": artifact.identity(), **record})
    _emit({"artifacts": prepared, "prepared": sum(1 for entry in prepared if entry["prepared"])}, args.output)
    return 0


# every flag that names a file the command writes, by command; checked before any work is done
OUTPUT_FLAGS = {"detect": ("output",), "prepare": ("output",), "check": ("output", "record"), "bench": ("output",), "profile": ("output",),
                "demo": ("output", "record", "save_frame", "predictions")}


def _check_outputs(args) -> None:
    for name in OUTPUT_FLAGS.get(args.command, ()):
        value = getattr(args, name, None)
        if value is None:
            continue
        flag = "--" + name.replace("_", "-")
        # check --record keeps its reports in a folder it may make (one level), as write_record does
        problem = flags.output_problem(value, may_create_folder=(args.command, name) == ("check", "record"))
        if problem:
            raise ArtifactError(f"{flag} {value}: {problem}")


MAX_OVERRIDE_BYTES = 1 << 20


def _json_override(text: str | None, flag: str, example: str) -> dict | None:
    """--preprocess / --task: a JSON object, inline or in a file."""
    if not text:
        return None
    from pathlib import Path

    try:
        is_file = Path(text).is_file()
    except (OSError, ValueError):  # inline JSON too long to be a file name
        is_file = False
    where = text if is_file else flag
    try:
        if is_file:
            with open(text, "rb") as handle:
                data = handle.read(MAX_OVERRIDE_BYTES + 1)
            if len(data) > MAX_OVERRIDE_BYTES:
                raise ArtifactError(f"{where} is over {MAX_OVERRIDE_BYTES >> 20} MB; give a small JSON object such as '{example}'")
            text = data.decode("utf-8")
        value = json.loads(text)
    except OSError as error:
        raise ArtifactError(f"{where} cannot be read ({error.strerror}); give an object such as '{example}' or a .json file") from None
    except (ValueError, RecursionError) as error:  # not JSON, not UTF-8, or nested beyond reason
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)[:200]
        raise ArtifactError(f"{where} is not JSON ({reason}); give an object such as '{example}' or a .json file") from None
    if not isinstance(value, dict):
        raise ArtifactError(f"{where} must hold a JSON object, not {type(value).__name__}")
    return value


def _text_model(args, board: dict):
    """--rec: the text recognizer read on every box the detector finds (its own fallback rules)."""
    from edgeship_runtime.artifact import Artifact
    from edgeship_runtime.backends import backend_class
    from edgeship_runtime.demo import TextModel
    from edgeship_runtime.preprocess import Preprocess
    from edgeship_runtime.select import choose

    if not args.rec:
        return None
    requested = Artifact.open(args.rec)
    backend_class(requested.backend).compatibility(requested.manifest, board)
    artifact, backend_cls, fallback = choose(args.rec, args.allow_cpu_fallback, args.rec_cpu_artifact, board["available"],
                                             args.rec_fallback_for)
    return TextModel(artifact, backend_cls, Preprocess.for_artifact(artifact), fallback)


def _demo(args, artifact, backend_cls, fallback, options, board: dict) -> int:
    from pathlib import Path

    from edgeship_runtime.demo import Demo, DemoOptions, open_source
    from edgeship_runtime.demo.guard import access_for
    from edgeship_runtime.preprocess import Preprocess

    # who may watch is settled before anything starts: beyond loopback without a token is one line here
    access = None if args.no_server else access_for(args.listen, args.token_file, args.allow_host or ())
    preprocess = Preprocess.for_artifact(artifact, _json_override(args.preprocess, "--preprocess", '{"color": "gray", "invert": true}'))
    task = _json_override(args.task, "--task", '{"conf": 0.5, "iou": 0.4}')
    text = _text_model(args, board)
    width, height = args.size
    source = open_source(args.source, width, height, args.fps, realtime=args.realtime, loop=args.loop)
    demo = Demo(artifact, backend_cls, source, preprocess, DemoOptions(
        threads=args.threads, fallback=fallback, backend_options=options, pipelined=not args.sequential, queue_size=args.queue_size,
        duration_s=args.duration, max_frames=args.frames, listen=None if args.no_server else args.listen, access=access,
        record=args.record and Path(args.record), save_frame=args.save_frame and Path(args.save_frame),
        predictions=args.predictions and Path(args.predictions), stats_path=args.output and Path(args.output),
        log=lambda line: print(line, file=sys.stderr, flush=True), text=text, task=task))
    document = demo.run()
    print(json.dumps(document, indent=2, sort_keys=True))
    return 0


def main(argv=None) -> int:
    parser = flags.OneLineParser(prog="edgeship-runtime", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    detect_parser = commands.add_parser("detect", help="board, accelerators and runtimes as JSON")
    detect_parser.add_argument("--sysroot", default="/", help="read sysfs/procfs below this folder (default /)")
    detect_parser.add_argument("--output", "-o", default=None)
    check_parser = commands.add_parser("check", help="run the reference inputs, compare with the manifest's tolerances; exit 1 on failure")
    _artifact_arguments(check_parser)
    check_parser.add_argument("--max-samples", type=flags.count(1, why="reference samples to judge"), default=None, metavar="N",
                              help="judge on the first N reference samples only (an emulated board; the report says N of how many)")
    check_parser.add_argument("--record", default=None, metavar="FILE",
                              help="keep the report in FILE; when FILE holds a report for these very files, runtime, board (its "
                                   "accelerators and runtime versions) and arguments, print that instead of running the samples again")
    prepare_parser = commands.add_parser("prepare", help="prepare artifacts for this board before their first run (e.g. build a "
                                         "TensorRT engine), as JSON")
    prepare_parser.add_argument("artifact", nargs="+", help="artifact directories written by `invoke convert`")
    prepare_parser.add_argument("--cache", default=None, help="where prepared files are kept (TensorRT engines: default "
                                "$EDGESHIP_ENGINE_CACHE or ~/.cache/edgeship/engines)")
    prepare_parser.add_argument("--allow-cpu-fallback", action="store_true", help="where the accelerator is absent, report and exit 0")
    prepare_parser.add_argument("--output", "-o", default=None)
    bench_parser = commands.add_parser("bench", help="latency, throughput, memory and power as JSON")
    _artifact_arguments(bench_parser)
    bench_parser.add_argument("--warmup-runs", type=flags.count(0, 10_000_000), default=5, help="warm-up runs, at least (default 5)")
    bench_parser.add_argument("--warmup-s", type=flags.seconds(), default=1.0, help="warm-up seconds, at least (default 1; at most a day)")
    bench_parser.add_argument("--min-runs", type=flags.count(1, 10_000_000), default=20, help="measured runs, at least (default 20)")
    bench_parser.add_argument("--min-s", type=flags.seconds(), default=2.0, help="measured seconds, at least (default 2; at most a day)")
    bench_parser.add_argument("--max-s", type=flags.seconds(positive=True, why="seconds after which no new run starts"), default=None,
                              help="time box for the warm-up and the measurement each, after one run (boards where a run takes seconds)")
    bench_parser.add_argument("--batches", type=flags.counts(1, 1024, "a batch size"), default=[1],
                              help="comma-separated batch sizes to sweep, e.g. 1,2,4")
    bench_parser.add_argument("--instances", type=flags.counts(1, 64, "a runner count"), default=[],
                              help="comma-separated runner counts for multi-instance throughput, e.g. 2,4")
    bench_parser.add_argument("--scenario", choices=scenarios.SCENARIOS, default=None,
                              help="an MLPerf scenario: single-stream (p90 with early stopping), multi-stream (p99 of 8-sample "
                              "queries), offline (samples/s); MLPerf's 600 s minimum is scaled down to --min-s")
    bench_parser.add_argument("--lock-clocks", action="store_true",
                              help="hold the clocks during the run (cpufreq `performance`, RK3588 NPU/DDR devfreq, jetson_clocks) and "
                                   "put them back after it, also on failure or SIGTERM; needs root, or clocks held already by "
                                   "`python -m edgeship_runtime.clocks lock` as root (bench.yml's edgeship_bench_lock_clocks)")
    bench_parser.add_argument("--profile", type=flags.count(1, PROFILE_RUNS_MAX), default=None, metavar="RUNS",
                              help="after the measurement, also time each operator over RUNS runs where the runtime offers it "
                                   "(the JSON's `profile`; see the profile command)")
    profile_parser = commands.add_parser("profile", help="time per operator (the runtime's own profiler) as JSON: the top operators "
                                         "and op types by time, with their share")
    _artifact_arguments(profile_parser)
    profile_parser.add_argument("--runs", type=flags.count(1, PROFILE_RUNS_MAX), default=20, help="profiled runs (default 20)")
    profile_parser.add_argument("--top", type=flags.count(1, 100), default=10, help="operators and op types listed (default 10)")
    demo_parser = commands.add_parser("demo", help="live camera demo: classify, detect, or read text (--rec) on a camera/video/folder/pattern "
                                      "-> annotated MJPEG stream, stats as JSON")
    _artifact_arguments(demo_parser)
    demo_parser.add_argument("--source", default="pattern",
                             help="pattern, /dev/videoN or a camera index, a video file, or a folder of images (default pattern)")
    demo_parser.add_argument("--size", type=flags.frame_size, default=(640, 480),
                             help="WIDTHxHEIGHT of the test pattern, or asked of the camera (default 640x480)")
    demo_parser.add_argument("--fps", type=flags.rate, default=None,
                             help="test pattern rate (0: as fast as the pipeline takes), or asked of the camera")
    demo_parser.add_argument("--realtime", action="store_true",
                             help="play a video file at its own frame rate, as a live source (drops instead of lag)")
    demo_parser.add_argument("--loop", action="store_true", help="start a video file or folder again at its end")
    demo_parser.add_argument("--duration", type=flags.seconds(positive=True, high=366 * flags.DAY_S), default=None,
                             help="stop after this many seconds")
    demo_parser.add_argument("--frames", type=flags.count(1), default=None, help="stop after reading this many frames")
    demo_parser.add_argument("--sequential", action="store_true", help="run all stages one after another in one thread (for comparison)")
    demo_parser.add_argument("--queue-size", type=flags.count(1, 1000), default=2, help="frames each queue between stages holds (default 2)")
    demo_parser.add_argument("--listen", default="127.0.0.1:8080",
                             help="HOST:PORT of the viewer page and MJPEG stream (default loopback 127.0.0.1:8080; port 0 picks one)")
    demo_parser.add_argument("--token-file", default=None, metavar="FILE",
                             help="the viewer asks for the token in FILE (mode 0600; or $EDGESHIP_DEMO_TOKEN): open it as /?token=TOKEN; "
                                  "required when --listen reaches beyond loopback")
    demo_parser.add_argument("--allow-host", action="append", metavar="NAME",
                             help="a name the viewer may be reached by besides its address and localhost (the Host header), e.g. board.local")
    demo_parser.add_argument("--no-server", action="store_true", help="serve nothing (bounded runs that only record)")
    demo_parser.add_argument("--record", default=None, help="also write the annotated frames to this MJPG .avi")
    demo_parser.add_argument("--save-frame", default=None, help="write the last annotated frame to this .png/.jpg")
    demo_parser.add_argument("--predictions", default=None, help="write one JSON line per frame (class, confidence, times) here")
    demo_parser.add_argument("--preprocess", default=None, help="JSON object (or .json file) overriding the artifact's preprocess record")
    demo_parser.add_argument("--task", default=None, help="JSON object (or .json file) over the artifact's task record: how its outputs are "
                             "read, e.g. '{\"conf\": 0.5}' or '{\"box_thresh\": 0.5}'")
    demo_parser.add_argument("--rec", default=None, help="a text recognizer's artifact (task ocr-rec): read the text in every box the "
                             "detector (ARTIFACT) finds")
    demo_parser.add_argument("--rec-cpu-artifact", default=None, help="CPU artifact of the recognizer, for --allow-cpu-fallback")
    demo_parser.add_argument("--rec-fallback-for", default=None, metavar="REASON", help="--fallback-for, of the recognizer")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (RuntimeUnavailable, ArtifactError) as error:
        _error(str(error))
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): nothing left to say to it
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as error:  # the last resort: still one line, and a bug to fix, not a traceback to read
        _error(f"{type(error).__name__}: {error} (a bug: please report it with the command)")
        return 3


def _error(message: str) -> None:
    line = " ".join(message.split())
    print("edgeship-runtime: error: " + (line if len(line) <= 2000 else line[:1997] + "..."), file=sys.stderr)


PROFILE_REASON_MAX = 300  # a crashed profiler's message can be a vendor's whole log: one bounded line in the bench JSON


def _bench_profile(artifact, backend_cls, runs: int, threads: int | None, fallback: dict | None, options: dict) -> dict:
    """bench --profile's profile, or why there is none. The timing is already measured when this
    runs, and bench.yml asks for a profile on every board: a profiler that crashes (a vendor's
    hook, e.g. TensorRT's IProfiler, untested off its hardware) must not throw the benchmark away."""
    from edgeship_runtime.profile import profile

    try:
        return profile(artifact, backend_cls, runs=runs, threads=threads, fallback=fallback, **options)
    except Exception as error:  # any failure: the standalone `profile` command is where it is one error line
        line = " ".join(f"{type(error).__name__}: {error}".split())
        if len(line) > PROFILE_REASON_MAX:
            line = line[:PROFILE_REASON_MAX - 3] + "..."
        return {"available": False, "backend": backend_cls.name, "profiler": backend_cls.profiler,
                "reason": f"the profiler failed after the benchmark was measured ({line})"}


def _run(args) -> int:
    _check_outputs(args)
    from edgeship_runtime.detect import detect

    if args.command == "detect":
        _emit(detect(args.sysroot), args.output)
        return 0
    if args.command == "prepare":
        return _prepare(args)
    from edgeship_runtime.artifact import Artifact
    from edgeship_runtime.backends import backend_class
    from edgeship_runtime.select import choose

    board = detect()
    # A runtime that would refuse the artifact is refused first, fallback or not: a
    # mismatched vendor runtime is a board to fix, not one to quietly run on the CPU.
    requested = Artifact.open(args.artifact)
    compat = backend_class(requested.backend).compatibility(requested.manifest, board)
    artifact, backend_cls, fallback = choose(args.artifact, args.allow_cpu_fallback, args.cpu_artifact, board["available"],
                                             args.fallback_for)
    options = _options(args.backend_option)
    if args.command == "demo":
        return _demo(args, artifact, backend_cls, fallback, options, board)
    if args.command == "profile":
        from edgeship_runtime.profile import profile

        _emit(profile(artifact, backend_cls, runs=args.runs, top=args.top, threads=args.threads, fallback=fallback, **options), args.output)
        return 0
    if args.command == "check":
        from edgeship_runtime.check import check, check_fingerprint, read_record, write_record

        report, fingerprint = None, ""
        if args.record:
            fingerprint = check_fingerprint(artifact, backend_cls, fallback, board, threads=args.threads, max_samples=args.max_samples,
                                            options=options)
            report = read_record(args.record, fingerprint, artifact, fallback)
        if report is None:
            report = check(artifact, backend_cls, threads=args.threads, fallback=fallback, max_samples=args.max_samples, **options)
            report["board"] = board["board"]
            report["compatibility"] = compat
            if args.record:
                write_record(args.record, fingerprint, report)
        _emit(report, args.output)
        if not report["integrity"]["passed"]:
            _error(f"{artifact.path}: {report['failed'][0]}; copy the artifact again (or convert the model again)")
        return 0 if report["passed"] else 1
    from edgeship_runtime.bench import benchmark
    from edgeship_runtime.clocks import held

    with held(args.lock_clocks) as clocks:  # the clocks before and after the run, in every bench JSON
        result = benchmark(artifact, backend_cls, threads=args.threads, warmup_runs=args.warmup_runs, warmup_s=args.warmup_s,
                           min_runs=args.min_runs, min_s=args.min_s, batches=args.batches or [1], instances=args.instances,
                           fallback=fallback, max_s=args.max_s, scenario=args.scenario,
                           board={"board": board["board"], "arch": board["arch"], "kernel": board["kernel"], "cpu": board["cpu"]}, **options)
    result["clocks"] = clocks
    result["compatibility"] = compat
    if args.profile:  # after the measurement, in a runtime session of its own: the profiler never slows the timed runs
        result["profile"] = _bench_profile(artifact, backend_cls, args.profile, args.threads, fallback, options)
    _emit(result, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
