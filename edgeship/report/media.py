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


def frames_video(path: Path, frames: list[np.ndarray], repeat: int = 6, fps: float = 15.0) -> Path:
    """A video of these BGR frames (all one size), each held for `repeat` frames."""
    height, width = frames[0].shape[:2]
    with video_writer(Path(path), fps, (width, height)) as writer:
        for frame in frames:
            for _ in range(repeat):
                writer.write(np.ascontiguousarray(frame))
    return Path(path)


def hand_video(path: Path, count: int = 5) -> tuple[Path, list[np.ndarray]]:
    """The hand-landmark example's eval crops fp32 is surest holds a hand (there is no hand photo in
    any package: see edgeship.examples.hands), but the scikit-image logo's, whose blue is the
    demo's skeleton colour; 224x224 frames. Returns the video and its frames."""
    from edgeship.examples import hands

    chosen = [crop for crop in hands.EVAL_CROPS if crop[0] != "logo"][:count]
    frames = [np.ascontiguousarray(np.round(hands.crop_input(*crop) * 255).astype(np.uint8)[..., ::-1]) for crop in chosen]
    return frames_video(path, frames), frames


def face_video(path: Path, side: int = 384) -> tuple[Path, list[np.ndarray]]:
    """The face-detection example's photos with faces (the astronaut, the cameraman, the two side
    by side), side x side frames. Returns the video and its frames."""
    import cv2

    from edgeship.examples import faces

    photos = faces.eval_images()
    frames = [cv2.resize(np.ascontiguousarray(photos[name][..., ::-1]), (side, side), interpolation=cv2.INTER_AREA)
              for name in ("astronaut-face", "camera-face", "pair")]
    return frames_video(path, frames), frames


def colour_share(image: np.ndarray, lower: tuple[int, int, int], upper: tuple[int, int, int]) -> float:
    """The fraction of an image's pixels whose BGR values all lie within [lower, upper]."""
    return float(np.all((image >= lower) & (image <= upper), axis=-1).mean())


# BGR bounds around the demo overlay's colours after JPEG (edgeship_runtime.demo.overlay)
SKELETON_BLUE = ((200, 110, 0), (255, 210, 70))  # EDGE_COLOUR (255, 160, 0)
BOX_AMBER = ((0, 150, 200), (60, 255, 255))  # BOX_COLOUR (0, 200, 255)


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
