"""From a camera frame to the source model's input: the artifact's `preprocess` record.

The record is what a user states once at conversion (`invoke convert --preprocess FILE.json`)
and the demo applies on the board: colour order, optional inversion, pixel scale, per-channel
mean/std, how to fit the frame to the model's size, and the layout. Values are those of the
source model (the runtime maps them to the artifact, e.g. folded mean/std, itself).

    {"color": "rgb", "scale": 0.00392156862745098, "mean": [0.485, 0.456, 0.406],
     "std": [0.229, 0.224, 0.225], "resize": "center_crop"}
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.tasks.geometry import guess_layout

COLORS = ("rgb", "bgr", "gray")
# center_crop: the largest centred window of the input's aspect ratio, resized; stretch: resized to
# the input; letterbox: resized to fit keeping the aspect ratio, padded grey (114), centred (YOLO);
# pad: scaled to the input's height keeping the aspect ratio (at most its width), the rest of the
# width padded with zeros after normalization (PaddleOCR's text recognizers and classifiers).
RESIZES = ("center_crop", "stretch", "letterbox", "pad")
LAYOUTS = ("NCHW", "NHWC")
KEYS = {"color", "invert", "scale", "mean", "std", "resize", "layout"}


def _channels(layout: str, shape: list) -> int:
    return int(shape[1] if layout == "NCHW" else shape[3])


def validate(spec, input_spec: dict, where: str) -> dict:
    """The complete record for one image input, or ArtifactError naming `where`, the value and the fix."""
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise ArtifactError(f"{where}: preprocess must be a JSON object such as {{\"color\": \"rgb\", \"scale\": 0.0039}}, not {spec!r}")
    unknown = set(spec) - KEYS
    if unknown:
        raise ArtifactError(f"{where}: unknown preprocess key(s) {sorted(unknown)}; the keys are {sorted(KEYS)}")
    shape = list(input_spec["shape"])
    layout = spec.get("layout") or guess_layout(shape)
    if layout not in LAYOUTS:
        raise ArtifactError(f"{where}: input {input_spec['name']!r} has shape {shape}, which is not an image with 1 or 3 channels; "
                            f"set \"layout\" to NCHW or NHWC if it is one")
    channels = _channels(layout, shape)
    if channels not in (1, 3):
        raise ArtifactError(f"{where}: input {input_spec['name']!r} ({layout} {shape}) has {channels} channels; "
                            f"the demo feeds 1 (gray) or 3 (colour)")
    color = spec.get("color", "gray" if channels == 1 else "rgb")
    if color not in COLORS:
        raise ArtifactError(f"{where}: preprocess color {color!r} is not one of {', '.join(COLORS)}")
    if (color == "gray") != (channels == 1):
        raise ArtifactError(f"{where}: preprocess color {color!r} does not fit input {input_spec['name']!r} with {channels} channel(s); "
                            f"use {'gray' if channels == 1 else 'rgb or bgr'}")
    resize = spec.get("resize", "center_crop")
    if resize not in RESIZES:
        raise ArtifactError(f"{where}: preprocess resize {resize!r} is not one of {', '.join(RESIZES)}")
    result = {"color": color, "invert": bool(spec.get("invert", False)), "resize": resize, "layout": layout}
    try:
        result["scale"] = float(spec.get("scale", 1 / 255))
        for key, default in (("mean", 0.0), ("std", 1.0)):
            value = spec.get(key, [default] * channels)
            value = [float(v) for v in (value if isinstance(value, list) else [value] * channels)]
            if len(value) != channels:
                raise ArtifactError(f"{where}: preprocess {key} has {len(value)} values; input {input_spec['name']!r} has {channels} channel(s)")
            result[key] = value
    except (TypeError, ValueError) as error:
        raise ArtifactError(f"{where}: preprocess scale/mean/std must be numbers ({error})") from None
    if not all(result["std"]) or not result["scale"]:
        raise ArtifactError(f"{where}: preprocess scale and std must not be 0")
    return result


@dataclass
class Preprocess:
    """Callable: a BGR uint8 frame (H, W, 3) -> {input name: float32 array of the input's shape}."""

    name: str
    shape: list
    spec: dict

    @classmethod
    def for_artifact(cls, artifact, override: dict | None = None) -> Preprocess:
        inputs = artifact.inputs
        if len(inputs) != 1:
            raise ArtifactError(f"{artifact.path}: the demo feeds one image input; this model takes {[i['name'] for i in inputs]}")
        spec = dict(artifact.manifest.get("preprocess") or {})
        spec.update(override or {})
        return cls(inputs[0]["name"], list(inputs[0]["shape"]), validate(spec, inputs[0], str(artifact.path / "manifest.json")))

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the model input."""
        return (self.shape[2], self.shape[3]) if self.spec["layout"] == "NCHW" else (self.shape[1], self.shape[2])

    def transform(self, frame_hw: tuple[int, int]) -> dict:
        """Where a frame's pixels land in the model input (boxes map back through it)."""
        from edgeship_runtime.tasks.geometry import fit_transform

        mode = self.spec["resize"]
        return fit_transform(frame_hw, self.size, "stretch" if mode == "pad" else mode)

    def fit(self, frame: np.ndarray) -> np.ndarray:
        import cv2

        height, width = self.size
        if self.spec["resize"] == "letterbox":
            from edgeship_runtime.tasks.geometry import letterbox

            return letterbox(frame, (height, width))
        if self.spec["resize"] == "pad":
            scaled_width = max(1, min(width, int(np.ceil(frame.shape[1] * height / frame.shape[0]))))
            return cv2.resize(frame, (scaled_width, height), interpolation=cv2.INTER_LINEAR)
        if self.spec["resize"] == "center_crop":
            frame_h, frame_w = frame.shape[:2]
            crop_h, crop_w = frame_h, round(frame_h * width / height)
            if crop_w > frame_w:
                crop_w, crop_h = frame_w, round(frame_w * height / width)
            top, left = (frame_h - crop_h) // 2, (frame_w - crop_w) // 2
            frame = frame[top:top + crop_h, left:left + crop_w]
        shrinking = frame.shape[0] >= height and frame.shape[1] >= width
        return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)

    def __call__(self, frame: np.ndarray) -> dict[str, np.ndarray]:
        import cv2

        image = self.fit(frame)
        color = self.spec["color"]
        if color == "rgb":
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        elif color == "gray":
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[:, :, None]
        if self.spec["invert"]:
            image = 255 - image
        scaled = image.astype(np.float32) * np.float32(self.spec["scale"])
        value = (scaled - np.asarray(self.spec["mean"], np.float32)) / np.asarray(self.spec["std"], np.float32)
        height, width = self.size
        if value.shape[1] < width:  # "pad": zeros after normalization fill the rest of the width
            value = np.concatenate([value, np.zeros((height, width - value.shape[1], value.shape[2]), np.float32)], axis=1)
        if self.spec["layout"] == "NCHW":
            value = value.transpose(2, 0, 1)
        return {self.name: np.ascontiguousarray(value[None], dtype=np.float32)}
