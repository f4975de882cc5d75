"""Where the demo's frames come from: a camera, a video file, a folder of images or a test pattern.

`read()` gives (BGR uint8 frame, name) or None at the end. A `live` source (a camera, a paced
pattern, a video played in real time) never waits for the pipeline: its frames are dropped
instead when a stage falls behind.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np

from edgeship_runtime.errors import ArtifactError, RuntimeUnavailable

VIDEO_SUFFIXES = {".avi", ".mp4", ".mkv", ".mov", ".webm", ".mjpg", ".mjpeg", ".m4v"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}


def _cv2():
    try:
        import cv2
    except ImportError:
        raise RuntimeUnavailable("the demo needs OpenCV; install the runtime with its `demo` extra "
                                 "(pip install 'edgeship-runtime[demo]', which deploy.yml does for boards with edgeship_release_demo=true)") from None
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
        self._started: float | None = None

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
