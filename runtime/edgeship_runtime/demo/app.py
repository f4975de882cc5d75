"""The camera demo's run: a Pipeline of stages over one source and one backend, its outputs
(stream, recording, predictions, last frame) and its stats JSON, written at the end, on
SIGUSR1 (a snapshot) and when SIGTERM/SIGINT stop the run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeship_runtime.demo.overlay import annotate
from edgeship_runtime.demo.pipeline import STAGES, TEXT_STAGES, Frame, Pipeline, Timings
from edgeship_runtime.demo.reading import Reader, TextRecognizer
from edgeship_runtime.demo.sources import Source, _cv2
from edgeship_runtime.demo.viewer import Access, Publisher, serve
from edgeship_runtime.errors import ArtifactError, RuntimeUnavailable
from edgeship_runtime.files import atomic_write_text
from edgeship_runtime.tasks import get as get_task

STATS_SCHEMA = 1


@dataclass
class TextModel:
    """The second model of a text-reading demo: a recognizer (task ocr-rec) run on each detected box."""

    artifact: Any
    backend_cls: Any
    preprocess: Any
    fallback: dict | None = None


@dataclass
class DemoOptions:
    """How a demo runs (backend threads and options, pipelined or not, bounds) and what it writes."""

    threads: int | None = None
    fallback: dict | None = None  # the CPU fallback record, when the accelerator is absent
    backend_options: dict = field(default_factory=dict)
    pipelined: bool = True
    queue_size: int = 2
    duration_s: float | None = None
    max_frames: int | None = None
    listen: str | None = None  # HOST:PORT of the viewer, None for no server
    access: Access | None = None  # who may watch (Host names, token); None: guard.access_for(listen)
    record: Path | None = None  # an MJPG .avi of the annotated frames
    save_frame: Path | None = None  # the last annotated frame
    predictions: Path | None = None  # one JSON line per frame
    stats_path: Path | None = None
    jpeg_quality: int = 80
    log: Callable[[str], None] = print
    text: TextModel | None = None  # read the detector's boxes with this recognizer
    task: dict | None = None  # keys over the artifact's task record (--task), e.g. {"conf": 0.5}


class Demo:
    def __init__(self, artifact, backend_cls, source: Source, preprocess, options: DemoOptions | None = None):
        options = options or DemoOptions()
        self.artifact, self.backend_cls, self.source, self.preprocess, self.options = artifact, backend_cls, source, preprocess, options
        self.threads, self.fallback = options.threads, options.fallback
        self.pipelined, self.duration_s, self.max_frames = options.pipelined, options.duration_s, options.max_frames
        self.listen, self.record_path, self.save_frame_path = options.listen, options.record, options.save_frame
        self.predictions_path, self.stats_path = options.predictions, options.stats_path
        self.jpeg_quality, self.log = options.jpeg_quality, options.log
        self.labels = artifact.labels
        self.reader = Reader(artifact, preprocess, options.task)
        self.text = options.text
        if self.text is not None and not get_task(self.reader.task["name"]).finds_boxes:
            raise ArtifactError(f"--rec reads the boxes a text detector finds, but {artifact.path}'s task is {self.reader.task['name']}; "
                                f"give a detector's artifact (task detect) first")
        self.recognizer: TextRecognizer | None = None
        self.stages = TEXT_STAGES if self.text else STAGES
        self.timings = Timings(self.stages)
        self.stop = threading.Event()
        self.stopped_by: str | None = None
        works: dict[str, Callable[[Frame], None]] = {"preprocess": self._preprocess, "infer": self._infer, "postprocess": self._postprocess,
                 **({"recognize": self._recognize} if self.text else {}), "render": self._render}
        self.pipeline = Pipeline(self._capture, works, self._finish_frame, self.timings, options.queue_size,
                                 drop_oldest=source.live, on_error=lambda: self._request_stop("error"))
        self.detections = {"frames_with_boxes": 0, "boxes": 0}
        self.captured = self.processed = 0
        self.first_rendered_at: float | None = None
        self.last_rendered_at: float | None = None
        self.started_wall = time.time()
        self.started = time.perf_counter()
        self.last: dict | None = None
        self.last_annotated: np.ndarray | None = None
        self.publisher = Publisher()
        self.server: Any = None  # the viewer's HTTP server, while it runs
        self.writer: Any = None  # cv2.VideoWriter of the recording, made with the first frame
        self.prediction_file: Any = None
        self.lock = threading.Lock()
        self.stats_lock = threading.Lock()  # a SIGUSR1 snapshot and the final write never interleave
        self.note = "CPU fallback" if options.fallback else backend_cls.name
        if self.text is not None:  # the recognizer names its own backend, and its fallback
            self.note += " + " + ("rec CPU fallback" if self.text.fallback else self.text.backend_cls.name)

    @property
    def error(self) -> BaseException | None:
        return self.pipeline.error

    # stages: each takes a Frame and fills it in
    def _preprocess(self, frame: Frame) -> None:
        frame.feeds = self.backend.prepare(self.preprocess(frame.image))

    def _infer(self, frame: Frame) -> None:
        frame.outputs = self.backend.infer_prepared(frame.feeds)
        frame.result["infer_ms"] = self.backend.last_infer_s * 1000

    def _postprocess(self, frame: Frame) -> None:
        frame.result.update(self.reader.read(frame.image, frame.outputs or {}))

    def _recognize(self, frame: Frame) -> None:
        assert self.recognizer is not None  # made in run(), with its backend
        self.recognizer.read(frame.image, frame.result)

    def _render(self, frame: Frame) -> None:
        cv2 = _cv2()
        now = time.perf_counter()
        fps = self._fps(now) or 0.0
        annotated = annotate(frame.image, frame.result, fps, frame.result["infer_ms"], self.note)
        ok, jpeg = cv2.imencode(".jpg", annotated, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise RuntimeError("OpenCV could not encode a JPEG frame")
        self.publisher.publish(jpeg.tobytes())
        if self.record_path:
            if self.writer is None:
                self.writer = cv2.VideoWriter(str(self._partial(self.record_path)), cv2.VideoWriter.fourcc(*"MJPG"),
                                              float(self.source.fps or 15.0), (annotated.shape[1], annotated.shape[0]))
                if not self.writer.isOpened():
                    raise ArtifactError(f"--record {self.record_path}: OpenCV cannot write an MJPG video there; give a writable .avi path")
            self.writer.write(annotated)
        self.last_annotated = annotated

    def _partial(self, path: Path) -> Path:
        return path.with_name(path.name + ".partial" + path.suffix)

    def _fps(self, now: float):
        if self.first_rendered_at is None or self.processed < 2 or now <= self.first_rendered_at:
            return None
        return (self.processed - 1) / ((self.last_rendered_at or now) - self.first_rendered_at)

    def _finish_frame(self, frame: Frame) -> None:
        now = time.perf_counter()
        self.timings.add("end_to_end", now - frame.captured_at)
        with self.lock:
            self.processed += 1
            self.first_rendered_at = self.first_rendered_at or now
            self.last_rendered_at = now
            self.last = {"frame": frame.index, "source": frame.name,
                         **{k: frame.result[k] for k in ("kind", "class", "label", "confidence", "texts") if k in frame.result}}
            if "boxes" in frame.result:
                boxes = frame.result["boxes"]
                self.last["boxes"] = len(boxes)
                self.detections["boxes"] += len(boxes)
                self.detections["frames_with_boxes"] += bool(boxes)
        if self.prediction_file:
            record = {"frame": frame.index, "source": frame.name, "latency_ms": (now - frame.captured_at) * 1000, **frame.result}
            self.prediction_file.write(json.dumps(record, sort_keys=True) + "\n")

    def _request_stop(self, reason: str) -> None:
        if not self.stop.is_set():
            self.stopped_by = self.stopped_by or reason
            self.stop.set()

    def _capture(self):
        """The next Frame, or None at the end (of the source, the duration or the frame limit)."""
        if self.stop.is_set():
            return None
        if self.duration_s is not None and time.perf_counter() - self.started >= self.duration_s:
            self._request_stop("duration")
            return None
        if self.max_frames and self.captured >= self.max_frames:
            self._request_stop("frame limit")
            return None
        began = time.perf_counter()
        read = self.source.read()
        if read is None:
            self._request_stop("end of source")
            return None
        delivered = time.perf_counter()
        self.timings.add("capture", delivered - began)  # a live source's wait for its next frame counts here
        self.captured += 1
        return Frame(self.captured - 1, read[1], read[0], delivered)

    def stats(self, final: bool = False) -> dict:
        with self.lock:
            processed, last = self.processed, self.last
            fps = self._fps(time.perf_counter())
        stages = self.timings.summary()
        per_stage = {name: stages[name] for name in self.stages}
        measured = {name: figures["mean_ms"] for name, figures in per_stage.items() if "mean_ms" in figures}
        bottleneck = max(measured, key=lambda stage: measured[stage]) if measured else None
        dropped = self.pipeline.dropped()
        return {
            "schema": STATS_SCHEMA,
            "final": final,
            "mode": "pipelined" if self.pipelined else "sequential",
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_wall)),
            "elapsed_s": time.perf_counter() - self.started,
            "source": self.source.describe(),
            "artifact": self.artifact.identity(),
            "backend": self.backend_cls.name,
            "fallback": self.fallback,
            "preprocess": self.preprocess.spec,
            "frames": {"captured": self.captured, "processed": processed, "dropped": sum(dropped.values()), "dropped_by_queue": dropped},
            "fps": fps,
            "pipeline": list(self.stages),  # the stages in the order a frame goes through them (the file's keys are sorted)
            "stages": per_stage,
            "end_to_end": stages["end_to_end"],
            "bottleneck": bottleneck and {"stage": bottleneck, "mean_ms": measured[bottleneck], "fps_bound": 1000 / measured[bottleneck]},
            "sequential_bound_fps": 1000 / sum(measured.values()) if len(measured) == len(self.stages) else None,
            "task": self.reader.task["name"],
            "detections": dict(self.detections) if get_task(self.reader.task["name"]).finds_boxes else None,
            "text_model": self.text and {"artifact": self.text.artifact.identity(), "backend": self.text.backend_cls.name,
                                         "fallback": self.text.fallback},
            "last": last,
            "stopped_by": self.stopped_by,
            "error": None if self.error is None else f"{type(self.error).__name__}: {self.error}",
            "outputs": {"url": self.server.url if self.server else None, "record": self.record_path and str(self.record_path),
                        "save_frame": self.save_frame_path and str(self.save_frame_path),
                        "predictions": self.predictions_path and str(self.predictions_path)},
        }

    def write_stats(self, final: bool = False) -> dict:
        with self.stats_lock:
            document = self.stats(final)
            if self.stats_path:
                atomic_write_text(self.stats_path, json.dumps(document, indent=2, sort_keys=True) + "\n")
        return document

    def _signals(self):
        """SIGTERM/SIGINT stop the run (stats are written on the way out); SIGUSR1 writes a snapshot."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}

        def stop(signum, _frame):
            self._request_stop(f"signal {signal.Signals(signum).name}")

        def snapshot(_signum, _frame):
            threading.Thread(target=self.write_stats, name="demo-stats", daemon=True).start()

        for signum, handler in ((signal.SIGTERM, stop), (signal.SIGINT, stop), (signal.SIGUSR1, snapshot)):
            previous[signum] = signal.signal(signum, handler)
        return previous

    def run(self) -> dict:
        previous = self._signals()
        try:
            with contextlib.ExitStack() as backends:
                backend = backends.enter_context(self.backend_cls(self.artifact, threads=self.threads, **self.options.backend_options))
                self.backend = backend
                if self.text is not None:
                    text_backend = backends.enter_context(self.text.backend_cls(self.text.artifact, threads=self.threads))
                    self.recognizer = TextRecognizer(self.text.artifact, text_backend, self.text.preprocess)
                if self.listen:
                    self.server = serve(self.listen, self.publisher, self.stats, self.artifact.path.name, self.options.access)
                    asks = "; it asks for the token: open it with ?token=TOKEN" if self.server.access.token else ""
                    self.log(f"edgeship-runtime demo: serving {self.server.url} ({self.source.kind} -> {backend.name}){asks}")
                if self.predictions_path:
                    # closed (and renamed into place, or removed) in the `finally` below
                    self.prediction_file = open(self._partial(self.predictions_path), "w")  # noqa: SIM115
                self.started = time.perf_counter()
                try:
                    (self.pipeline.run_pipelined if self.pipelined else self.pipeline.run_sequential)()
                except BaseException as error:
                    self.pipeline.error = self.pipeline.error or error
        finally:
            self.source.close()
            self.publisher.close()
            if self.server:
                self.server.shutdown()
                self.server.server_close()
            for path, handle in ((self.record_path, self.writer), (self.predictions_path, self.prediction_file)):
                if handle is not None and path is not None:
                    handle.release() if hasattr(handle, "release") else handle.close()
                    if self.error is None:
                        os.replace(self._partial(path), path)
                    else:  # nothing half-written is left behind
                        self._partial(path).unlink(missing_ok=True)
            if self.save_frame_path and self.last_annotated is not None and self.error is None:
                partial = self._partial(self.save_frame_path)
                if not _cv2().imwrite(str(partial), self.last_annotated):
                    raise ArtifactError(f"--save-frame {self.save_frame_path}: cannot write an image there; give a writable .png or .jpg path")
                os.replace(partial, self.save_frame_path)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        document = self.write_stats(final=True)
        if self.error is not None:
            if isinstance(self.error, (ArtifactError, RuntimeUnavailable)):
                raise self.error
            raise RuntimeUnavailable(f"the demo stopped: {type(self.error).__name__}: {self.error}") from self.error
        return document
