"""`edgeship-runtime demo`: a live classifier that a headless board shows in a browser.

Capture, preprocess, infer, postprocess and render run as a pipeline of threads joined by
bounded queues (OpenCV and the vendor runtimes release the GIL while they work), so the
frame rate approaches 1 / the slowest stage instead of 1 / the sum of all stages. A live
source (a camera, a paced test pattern or a video played in real time) never waits for a
slow stage: a full queue drops its oldest frame, and the drops are counted. Files and
folders are read as fast as the pipeline takes them, with no drops.

Outputs: an MJPEG stream with a small viewer page (loopback by default), an optional
recording, per-frame predictions, the last annotated frame, and a JSON stats file that is
written at the end, on SIGUSR1 (a snapshot) and when SIGTERM/SIGINT stop the run.
"""

from __future__ import annotations

import collections
import itertools
import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeship_runtime.errors import ArtifactError, RuntimeUnavailable

STATS_SCHEMA = 1
STAGES = ("capture", "preprocess", "infer", "postprocess", "render")
VIDEO_SUFFIXES = {".avi", ".mp4", ".mkv", ".mov", ".webm", ".mjpg", ".mjpeg", ".m4v"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}
DISPLAY_MIN_WIDTH = 320
BANNER_LINE_PX = 22


def _cv2():
    try:
        import cv2
    except ImportError:
        raise RuntimeUnavailable("the demo needs OpenCV; install the runtime with its `demo` extra "
                                 "(pip install 'edgeship-runtime[demo]', which deploy.yml does for boards in edgeship_runtime_extras)") from None
    return cv2


# -- sources ------------------------------------------------------------------------------
class Source:
    """read() -> (BGR uint8 frame, name) or None at the end. `live` sources drop, never lag."""

    kind = "source"
    live = False
    fps: float | None = None

    def read(self):
        raise NotImplementedError

    def close(self) -> None:
        pass

    def describe(self) -> dict:
        return {"kind": self.kind, "live": self.live, "fps": self.fps}


class TestPattern(Source):
    """Colour bars, a moving square and the frame number: needs no camera, shows motion and lag."""

    kind = "pattern"

    def __init__(self, width: int = 640, height: int = 480, fps: float = 30.0):
        self.width, self.height, self.fps = width, height, fps or None
        self.live = bool(fps)
        self.index = 0
        self._next = time.monotonic()
        colours = np.array([[255, 255, 255], [0, 255, 255], [255, 255, 0], [0, 255, 0], [255, 0, 255], [0, 0, 255], [255, 0, 0]], np.uint8)
        bars = np.repeat(colours, math.ceil(width / len(colours)), axis=0)[:width]
        self._bars = np.ascontiguousarray(np.broadcast_to(bars[None], (height, width, 3)))

    def read(self):
        if self.fps:  # paced like a camera: the frame exists when its time has come
            delay = self._next - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._next = max(self._next + 1 / self.fps, time.monotonic() - 1 / self.fps)
        cv2 = _cv2()
        frame = self._bars.copy()
        side = max(8, self.height // 6)
        x = (self.index * 7) % max(1, self.width - side)
        y = (self.height - side) // 2
        frame[y:y + side, x:x + side] = (32, 32, 32)
        cv2.putText(frame, f"edgeship {self.index:06d}", (8, self.height - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 2, cv2.LINE_AA)
        self.index += 1
        return frame, f"pattern:{self.index - 1}"

    def describe(self) -> dict:
        return {**super().describe(), "size": [self.width, self.height]}


class VideoSource(Source):
    """A V4L2 camera (/dev/videoN or its index) or a video file, through OpenCV."""

    def __init__(self, spec: str, camera: bool, width: int | None = None, height: int | None = None, fps: float | None = None,
                 realtime: bool = False, loop: bool = False):
        cv2 = _cv2()
        self.spec, self.kind, self.loop = spec, "camera" if camera else "video", loop
        if camera:
            device = int(spec) if spec.isdigit() else spec
            self.capture = cv2.VideoCapture(device, cv2.CAP_V4L2)
            if self.capture.isOpened():
                if width and height:
                    self.capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
                    self.capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
                if fps:
                    self.capture.set(cv2.CAP_PROP_FPS, fps)
                self.capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a backlog
        else:
            self.capture = cv2.VideoCapture(spec)
        if not self.capture.isOpened():
            fix = ("check that the camera is plugged in and that this user may open it (group `video`)" if camera
                   else "give a video OpenCV can decode (e.g. MJPG .avi or mp4v .mp4)")
            raise ArtifactError(f"cannot open {'camera' if camera else 'video'} {spec}; {fix}")
        self.fps = self.capture.get(cv2.CAP_PROP_FPS) or None
        self.width = int(self.capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self.capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.live = camera or realtime
        self.realtime = realtime and not camera
        self.index = 0
        self._started = None

    def read(self):
        ok, frame = self.capture.read()
        if not ok and self.loop and self.kind == "video" and self.index:
            self.capture.set(_cv2().CAP_PROP_POS_FRAMES, 0)
            ok, frame = self.capture.read()
        if not ok:
            return None
        if self.realtime and self.fps:  # play at the file's own rate, like a camera would deliver it
            self._started = self._started or time.monotonic()
            delay = self._started + self.index / self.fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        self.index += 1
        return frame, f"{self.kind}:{self.index - 1}"

    def close(self) -> None:
        self.capture.release()

    def describe(self) -> dict:
        return {**super().describe(), "path": self.spec, "size": [self.width, self.height]}


class FolderSource(Source):
    """The images of a folder, in name order."""

    kind = "folder"

    def __init__(self, folder: Path, loop: bool = False):
        self.folder, self.loop = folder, loop
        self.files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise ArtifactError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); point --source at a folder of images")
        self.index = 0

    def read(self):
        if self.index >= len(self.files):
            if not self.loop:
                return None
            self.index = 0
        path = self.files[self.index]
        self.index += 1
        frame = _cv2().imread(str(path), 1)  # IMREAD_COLOR: BGR, also for gray files
        if frame is None:
            raise ArtifactError(f"cannot decode image {path}; remove it or convert it to PNG/JPEG")
        return frame, path.name

    def describe(self) -> dict:
        return {**super().describe(), "path": str(self.folder), "images": len(self.files)}


def open_source(spec: str, width: int = 640, height: int = 480, fps: float | None = None, realtime: bool = False,
                loop: bool = False) -> Source:
    """`pattern`, `/dev/videoN`, a camera index, a video file or a folder of images."""
    if spec == "pattern":
        return TestPattern(width, height, 30.0 if fps is None else fps)
    if spec.isdigit() or spec.startswith("/dev/video"):
        if spec.startswith("/dev/") and not os.path.exists(spec):
            raise ArtifactError(f"camera {spec} does not exist on this board; list cameras with `ls /dev/video*`, or use --source pattern")
        return VideoSource(spec, camera=True, width=width, height=height, fps=fps)
    path = Path(spec)
    if path.is_dir():
        return FolderSource(path, loop=loop)
    if path.is_file():
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            raise ArtifactError(f"--source {spec} is not a video ({', '.join(sorted(VIDEO_SUFFIXES))}); for images pass their folder")
        return VideoSource(spec, camera=False, realtime=realtime, loop=loop)
    raise ArtifactError(f"--source {spec} is neither `pattern`, a camera (/dev/videoN or an index), a video file nor a folder; check the path")


# -- queues and stats ---------------------------------------------------------------------
class StageQueue:
    """A bounded queue. With drop_oldest a full queue discards its oldest frame (counted);
    without it put() waits. The end marker is never dropped."""

    END = object()

    def __init__(self, name: str, maxsize: int, drop_oldest: bool):
        self.name, self.maxsize, self.drop_oldest = name, maxsize, drop_oldest
        self.items = collections.deque()
        self.dropped = 0
        self.condition = threading.Condition()

    def put(self, item) -> None:
        with self.condition:
            if self.drop_oldest:
                while len(self.items) >= self.maxsize:
                    victim = next((i for i, x in enumerate(self.items) if x is not self.END), None)
                    if victim is None:
                        break
                    del self.items[victim]
                    self.dropped += 1
            else:
                while len(self.items) >= self.maxsize:
                    self.condition.wait()
            self.items.append(item)
            self.condition.notify_all()

    def get(self):
        with self.condition:
            while not self.items:
                self.condition.wait()
            item = self.items.popleft()
            self.condition.notify_all()
            return item


class Timings:
    """Per-stage durations (the last `keep` of them) and counts, safe across threads."""

    def __init__(self, keep: int = 20000):
        self.lock = threading.Lock()
        self.values = {name: collections.deque(maxlen=keep) for name in (*STAGES, "end_to_end")}
        self.counts = dict.fromkeys(self.values, 0)

    def add(self, name: str, seconds: float) -> None:
        with self.lock:
            self.values[name].append(seconds * 1000)
            self.counts[name] += 1

    def summary(self) -> dict:
        with self.lock:
            snapshot = {name: (list(values), self.counts[name]) for name, values in self.values.items()}
        result = {}
        for name, (values, count) in snapshot.items():
            if not values:
                result[name] = {"count": count}
                continue
            array = np.asarray(values)
            result[name] = {"count": count, "mean_ms": float(array.mean()), "p50_ms": float(np.percentile(array, 50)),
                            "p90_ms": float(np.percentile(array, 90)), "p99_ms": float(np.percentile(array, 99)), "max_ms": float(array.max())}
        return result


@dataclass
class Frame:
    index: int
    name: str
    image: np.ndarray
    captured_at: float  # when the source delivered the frame (perf_counter): end-to-end latency runs from here to its JPEG
    feeds: dict | None = None
    outputs: dict | None = None
    result: dict = field(default_factory=dict)


# -- post-processing and overlay ----------------------------------------------------------
def classify(outputs: dict[str, np.ndarray], labels: list[str] | None, top: int = 3) -> dict:
    """Top classes of the first output: probabilities as given, or a softmax of logits."""
    name, value = next(iter(outputs.items()))
    scores = np.asarray(value, np.float64).reshape(-1)
    if not (scores.min() >= 0 and scores.max() <= 1 and abs(scores.sum() - 1) < 1e-3):
        scores = np.exp(scores - scores.max())
        scores /= scores.sum()
    order = np.argsort(-scores, kind="stable")[:top]
    name_of = (lambda i: labels[i] if labels and i < len(labels) else str(i))
    return {"output": name, "class": int(order[0]), "label": name_of(int(order[0])), "confidence": float(scores[order[0]]),
            "top": [{"class": int(i), "label": name_of(int(i)), "confidence": float(scores[i])} for i in order]}


BANNER_PX = 2 * BANNER_LINE_PX + 12


def annotate(frame: np.ndarray, result: dict, fps: float, infer_ms: float, note: str = "") -> np.ndarray:
    """The frame under a dark banner: class and confidence, then FPS, inference time and the backend.
    The frame's own pixels are left as they are (small frames are enlarged, by pixel repetition)."""
    cv2 = _cv2()
    if frame.shape[1] < DISPLAY_MIN_WIDTH:
        factor = math.ceil(DISPLAY_MIN_WIDTH / frame.shape[1])
        frame = cv2.resize(frame, (frame.shape[1] * factor, frame.shape[0] * factor), interpolation=cv2.INTER_NEAREST)
    height = BANNER_PX
    canvas = np.empty((frame.shape[0] + height, frame.shape[1], 3), np.uint8)
    canvas[:height] = (24, 24, 24)
    canvas[height:] = frame
    width = canvas.shape[1] - 16
    for text, scale, colour, thickness, y in ((f"{result['label']}  {result['confidence'] * 100:.1f}%", 0.6, (80, 255, 80), 2, BANNER_LINE_PX),
                                               (f"{fps:.1f} FPS  infer {infer_ms:.1f} ms  {note}".rstrip(), 0.5, (255, 255, 255), 1, 2 * BANNER_LINE_PX + 2)):
        text_width = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0]
        if text_width > width:  # narrow frames: a smaller font rather than a cut-off line
            scale *= width / text_width
        cv2.putText(canvas, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)
    return canvas


# -- the viewer ---------------------------------------------------------------------------
VIEWER_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>edgeship demo: {title}</title>
<style>body{{background:#111;color:#ddd;font:14px sans-serif;margin:16px}}img{{display:block;max-width:100%;border:1px solid #444}}
pre{{font:12px monospace}}</style></head>
<body><h1 style="font-size:18px">edgeship demo: {title}</h1>
<img id="stream" src="stream.mjpg" alt="annotated stream">
<pre id="stats">waiting for stats…</pre>
<script>
async function refresh() {{
  try {{
    const s = await (await fetch('stats.json', {{cache: 'no-store'}})).json();
    const st = s.stages || {{}};
    const ms = (f) => f && f.mean_ms !== undefined ? f.mean_ms.toFixed(1) + ' ms' : '-';
    document.getElementById('stats').textContent =
      `${{s.fps ? s.fps.toFixed(1) : '-'}} FPS, ${{s.frames.processed}} frames, ${{s.frames.dropped}} dropped\\n` +
      ['capture', 'preprocess', 'infer', 'postprocess', 'render'].map(n => `${{n}} ${{ms(st[n])}}`).join('  ') +
      `\\nend-to-end ${{ms(s.end_to_end)}}` + (s.last ? `\\nlast: ${{s.last.label}} ${{(100 * s.last.confidence).toFixed(1)}}%` : '');
  }} catch (e) {{}}
}}
setInterval(refresh, 1000); refresh();
</script></body></html>
"""


class Publisher:
    """The newest annotated JPEG, handed to every stream client as it arrives."""

    def __init__(self):
        self.condition = threading.Condition()
        self.jpeg, self.sequence, self.closed = None, 0, False

    def publish(self, jpeg: bytes) -> None:
        with self.condition:
            self.jpeg, self.sequence = jpeg, self.sequence + 1
            self.condition.notify_all()

    def wait(self, after: int, timeout: float = 1.0):
        with self.condition:
            self.condition.wait_for(lambda: self.sequence != after or self.closed, timeout)
            return self.jpeg, self.sequence

    def close(self) -> None:
        with self.condition:
            self.closed = True
            self.condition.notify_all()


def parse_listen(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise ArtifactError(f"--listen {address!r} is not HOST:PORT; e.g. 127.0.0.1:8080 (0.0.0.0:8080 to let other machines watch)")
    return host.strip("[]"), int(port)


def serve(address: str, publisher: Publisher, stats, title: str):
    """Start the viewer on HOST:PORT in a daemon thread; returns the server (its URL in .url)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    host, port = parse_listen(address)
    page = VIEWER_HTML.format(title=title).encode()

    class Handler(BaseHTTPRequestHandler):
        server_version = "edgeship-demo"

        def log_message(self, *args):  # no per-request lines on the board's journal
            pass

        def _send(self, body: bytes, content_type: str, status: int = 200):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                return self._send(page, "text/html; charset=utf-8")
            if path == "/stats.json":
                return self._send(json.dumps(stats(), sort_keys=True).encode(), "application/json")
            if path == "/frame.jpg":
                jpeg, _ = publisher.wait(0, 5.0)
                return self._send(jpeg, "image/jpeg") if jpeg else self._send(b"no frame yet\n", "text/plain", 503)
            if path != "/stream.mjpg":
                return self._send(b"not found\n", "text/plain", 404)
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            sequence = 0
            try:
                while not publisher.closed:
                    jpeg, latest = publisher.wait(sequence)
                    if jpeg is None or latest == sequence:
                        continue
                    sequence = latest
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg) + jpeg + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    try:
        server = Server((host, port), Handler)
    except OSError as error:
        raise ArtifactError(f"--listen {address}: cannot listen there ({error.strerror}); pick another port or address") from None
    bound_host, bound_port = server.server_address[:2]
    server.url = f"http://{bound_host}:{bound_port}/"
    threading.Thread(target=server.serve_forever, name="demo-http", daemon=True).start()
    return server


# -- the run ------------------------------------------------------------------------------
def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


class Demo:
    def __init__(self, artifact, backend_cls, source: Source, preprocess, *, threads=None, fallback=None, options=None,
                 pipelined=True, queue_size=2, duration_s=None, max_frames=None, listen=None, record=None,
                 save_frame=None, predictions=None, stats_path=None, jpeg_quality=80, log=print):
        self.artifact, self.backend_cls, self.source, self.preprocess = artifact, backend_cls, source, preprocess
        self.threads, self.fallback, self.options = threads, fallback, options or {}
        self.pipelined, self.duration_s, self.max_frames = pipelined, duration_s, max_frames
        self.listen, self.record_path, self.save_frame_path = listen, record, save_frame
        self.predictions_path, self.stats_path, self.jpeg_quality, self.log = predictions, stats_path, jpeg_quality, log
        self.labels = artifact.labels
        self.timings = Timings()
        self.stop = threading.Event()
        self.stopped_by = None
        self.error = None
        self.queues = [StageQueue(f"{a}->{b}", queue_size, drop_oldest=source.live) for a, b in itertools.pairwise(STAGES)]
        self.captured = self.processed = 0
        self.first_rendered_at = self.last_rendered_at = None
        self.started_wall = time.time()
        self.started = time.perf_counter()
        self.last = None
        self.last_annotated = None
        self.publisher = Publisher()
        self.server = None
        self.writer = None
        self.prediction_file = None
        self.lock = threading.Lock()
        self.stats_lock = threading.Lock()  # a SIGUSR1 snapshot and the final write never interleave
        self.note = "CPU fallback" if fallback else backend_cls.name

    # stages: each takes a Frame and fills it in
    def _preprocess(self, frame: Frame) -> None:
        frame.feeds = self.backend.prepare(self.preprocess(frame.image))

    def _infer(self, frame: Frame) -> None:
        frame.outputs = self.backend.infer_prepared(frame.feeds)
        frame.result["infer_ms"] = self.backend.last_infer_s * 1000

    def _postprocess(self, frame: Frame) -> None:
        frame.result.update(classify(frame.outputs, self.labels))

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
                self.writer = cv2.VideoWriter(str(self._partial(self.record_path)), cv2.VideoWriter_fourcc(*"MJPG"),
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
            self.last = {"frame": frame.index, "source": frame.name, **{k: frame.result[k] for k in ("class", "label", "confidence")}}
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

    def _timed(self, stage: str, work, frame: Frame) -> None:
        began = time.perf_counter()
        work(frame)
        self.timings.add(stage, time.perf_counter() - began)

    def _run_sequential(self) -> None:
        steps = (("preprocess", self._preprocess), ("infer", self._infer), ("postprocess", self._postprocess), ("render", self._render))
        while True:
            frame = self._capture()
            if frame is None:
                return
            for stage, work in steps:
                self._timed(stage, work, frame)
            self._finish_frame(frame)

    def _worker(self, stage: str, work, inbox: StageQueue, outbox: StageQueue | None) -> None:
        try:
            while True:
                frame = inbox.get()
                if frame is StageQueue.END:
                    break
                if self.error is None:
                    self._timed(stage, work, frame)
                    if outbox is None:
                        self._finish_frame(frame)
                    else:
                        outbox.put(frame)
        except BaseException as error:  # noqa: BLE001 - handed to the main thread, which reports it
            self.error = self.error or error
            self._request_stop("error")
            # keep draining so that the stages before this one never wait on a full queue
            while inbox.get() is not StageQueue.END:
                pass
        finally:
            if outbox is not None:
                outbox.put(StageQueue.END)

    def _run_pipelined(self) -> None:
        works = {"preprocess": self._preprocess, "infer": self._infer, "postprocess": self._postprocess, "render": self._render}
        workers = []
        for number, stage in enumerate(STAGES[1:]):
            outbox = self.queues[number + 1] if number + 1 < len(self.queues) else None
            workers.append(threading.Thread(target=self._worker, args=(stage, works[stage], self.queues[number], outbox),
                                            name=f"demo-{stage}", daemon=True))
        for worker in workers:
            worker.start()
        try:
            while self.error is None:
                frame = self._capture()
                if frame is None:
                    break
                self.queues[0].put(frame)
        except BaseException as error:  # noqa: BLE001
            self.error = error
        finally:
            self.queues[0].put(StageQueue.END)
            for worker in workers:
                worker.join()

    def stats(self, final: bool = False) -> dict:
        with self.lock:
            processed, last = self.processed, self.last
            fps = self._fps(time.perf_counter())
        stages = self.timings.summary()
        per_stage = {name: stages[name] for name in STAGES}
        measured = {name: figures["mean_ms"] for name, figures in per_stage.items() if "mean_ms" in figures}
        bottleneck = max(measured, key=measured.get) if measured else None
        dropped = {queue.name: queue.dropped for queue in self.queues}
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
            "stages": per_stage,
            "end_to_end": stages["end_to_end"],
            "bottleneck": bottleneck and {"stage": bottleneck, "mean_ms": measured[bottleneck], "fps_bound": 1000 / measured[bottleneck]},
            "sequential_bound_fps": 1000 / sum(measured.values()) if len(measured) == len(STAGES) else None,
            "last": last,
            "stopped_by": self.stopped_by,
            "error": None if self.error is None else f"{type(self.error).__name__}: {self.error}",
            "outputs": {"url": self.server.url if self.server else None, "record": self.record_path and str(self.record_path),
                        "save_frame": self.save_frame_path and str(self.save_frame_path), "predictions": self.predictions_path and str(self.predictions_path)},
        }

    def write_stats(self, final: bool = False) -> dict:
        with self.stats_lock:
            document = self.stats(final)
            if self.stats_path:
                _write_atomic(self.stats_path, json.dumps(document, indent=2, sort_keys=True) + "\n")
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
            with self.backend_cls(self.artifact, threads=self.threads, **self.options) as backend:
                self.backend = backend
                if self.listen:
                    self.server = serve(self.listen, self.publisher, self.stats, self.artifact.path.name)
                    self.log(f"edgeship-runtime demo: serving {self.server.url} ({self.source.kind} -> {backend.name})")
                if self.predictions_path:
                    self.prediction_file = open(self._partial(self.predictions_path), "w")
                self.started = time.perf_counter()
                try:
                    (self._run_pipelined if self.pipelined else self._run_sequential)()
                except BaseException as error:  # noqa: BLE001 - reported below, after the stats are written
                    self.error = self.error or error
        finally:
            self.source.close()
            self.publisher.close()
            if self.server:
                self.server.shutdown()
                self.server.server_close()
            for path, handle in ((self.record_path, self.writer), (self.predictions_path, self.prediction_file)):
                if handle is not None:
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
