"""Videos for the camera demo, made here from images that ship inside packages (no downloads).

- `photo_video`: a slow pan across scikit-image's photos (astronaut, coffee, chelsea, ...),
  the kind of footage a camera in front of real scenes gives.
- `digits_video`: scikit-learn's labelled 8x8 digits drawn as dark ink on light paper, one
  digit per frame, with the labels returned: a video whose right answers are known.

Both are MJPG .avi files, the format cheap USB cameras deliver and OpenCV reads everywhere.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from edgeship.errors import EdgeshipError
from edgeship_runtime.files import staged_file

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "cat", "immunohistochemistry")


def _writer(path: Path, fps: float, size: tuple[int, int]):
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), float(fps), size)
    if not writer.isOpened():
        raise EdgeshipError(f"OpenCV cannot write an MJPG video at {path}; check that the folder is writable")
    return writer


@contextlib.contextmanager
def video_writer(path: Path, fps: float, size: tuple[int, int]):
    """An MJPG writer into a staged file that becomes `path` only when the block completes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with staged_file(path, suffix=".avi") as partial:
        writer = _writer(partial, fps, size)
        try:
            yield writer
        finally:
            writer.release()


def photo_video(path: Path, width: int = 640, height: int = 480, fps: float = 15.0, frames_per_photo: int = 30,
                photos=PHOTOS) -> Path:
    """Pan a window of width x height across each photo (scaled to cover it): len(photos) * frames_per_photo frames."""
    import cv2
    from skimage import data

    path = Path(path)
    with video_writer(path, fps, (width, height)) as writer:
        for name in photos:
            photo = getattr(data, name)()
            if photo.ndim == 2:
                photo = np.stack([photo] * 3, axis=-1)
            photo = cv2.cvtColor(np.ascontiguousarray(photo[..., :3]), cv2.COLOR_RGB2BGR)
            scale = max(width * 1.25 / photo.shape[1], height * 1.25 / photo.shape[0])
            photo = cv2.resize(photo, (round(photo.shape[1] * scale), round(photo.shape[0] * scale)), interpolation=cv2.INTER_AREA)
            span_x, span_y = photo.shape[1] - width, photo.shape[0] - height
            for index in range(frames_per_photo):
                t = index / max(1, frames_per_photo - 1)
                x, y = round(span_x * t), round(span_y * (1 - t) / 2)
                writer.write(np.ascontiguousarray(photo[y:y + height, x:x + width]))
    return path


def digits_video(path: Path, count: int = 60, side: int = 320, fps: float = 15.0, seed: int = 0) -> tuple[Path, list[int]]:
    """`count` digits of scikit-learn's set (a fixed-seed sample), each drawn dark on light paper
    filling a side x side frame; returns the video and each frame's true digit."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.images))[:count]
    path = Path(path)
    with video_writer(path, fps, (side, side)) as writer:
        for index in order:
            ink = digits.images[index] / 16.0  # 0 (paper) .. 1 (ink)
            paper = np.round(255 * (1 - ink)).astype(np.uint8)
            frame = np.kron(paper, np.ones((side // 8, side // 8), np.uint8))
            writer.write(np.ascontiguousarray(np.stack([frame] * 3, axis=-1)))
    return path, [int(digits.target[i]) for i in order]


def text_video(path: Path, frames: int = 90, size: tuple[int, int] = (640, 480), fps: float = 15.0, seed: int = 0) -> tuple[Path, list[dict]]:
    """Signs and text moving over a scikit-image photo (edgeship.examples.text_render draws them), with
    the ground truth of every frame: [{"frame": i, "items": [{"box", "ink_box", "text", "angle"}]}]."""
    from edgeship.examples.text_render import moving_signs

    path = Path(path)
    truth = []
    with video_writer(path, fps, size) as writer:
        for index, (frame, items) in enumerate(moving_signs(frames, size, seed)):
            writer.write(np.ascontiguousarray(frame[..., ::-1]))  # OpenCV writes BGR
            truth.append({"frame": index, "items": items})
    return path, truth
