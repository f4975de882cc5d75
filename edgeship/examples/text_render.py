"""Labelled text images rendered here, for the PP-OCR examples and the camera demo (nothing downloaded).

Words, numbers and sign-like lines ("EXIT 12", "PLATE AB-1234") are drawn in DejaVu Sans with
Pillow, on coloured plates or straight onto scikit-image photos and plain paper. Every drawn line
comes with its ground truth (`TextItem`): the text, its orientation and the axis-aligned box
around its ink. Everything is drawn from a seeded numpy Generator, so the same seed gives the
same bytes.

Images are RGB uint8 [H, W, 3]; the PP-OCR examples turn them into BGR, as PaddleOCR reads images.
Boxes are [x1, y1, x2, y2] in pixels, x2/y2 one past the last ink pixel (so x2 - x1 is the width).
A line's detection ground truth is its `line_box`: the ink's box grown by LINE_BOX_PAD of its
height on every side, the way text datasets draw boxes around words and the way a DB detector's
unclipped boxes come out (measured here: DB's boxes reach 0.10-0.25 of the ink height past the ink;
the bare ink box gives small words an IoU near 0.5 with a correct detection).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from edgeship.errors import EdgeshipError

DEBIAN_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")

# What the renderer writes: words, numbers and sign-like strings. Every character is in the
# PP-OCRv4 recognizer's dictionary (printable ASCII, plus the few non-ASCII letters used here;
# a test checks them against the model's own `character` list). At most 13 characters, so most
# crops of a line fit the recognizer's 48x320 input without squeezing.
WORDS = (
    # words
    "OPEN", "CLOSED", "Coffee", "Station", "Welcome", "Parking", "Entrance", "Museum", "Garden",
    "Library", "Bakery", "Pharmacy", "Hotel", "Market", "Tickets", "Departures", "Arrivals",
    "Office", "Kitchen", "Reception", "Warning", "Danger", "Caution", "Private", "Bridge",
    "Harbor", "Airport", "North", "South", "Monday", "Friday", "Sunday", "morning", "evening",
    "delivery", "battery", "charging", "window", "orange", "yellow", "silver", "river",
    "mountain", "forest", "bread", "water", "fresh", "today", "price", "Café", "Bicycle",
    "Elevator", "Toilets", "Restaurant", "Pizza", "Books", "Garage", "Theatre", "Gallery",
    # numbers
    "2024", "1987", "365", "08:45", "12:30", "3.14", "0.75", "1,250", "99%", "$4.99", "#17",
    "No. 5", "+49 30 1234", "-18 °C", "21.5 °C", "7:05 PM",
    # sign-like lines
    "EXIT 12", "PLATE AB-1234", "23.5 kWh", "GATE B7", "ROOM 214", "SPEED 50", "BUS 42",
    "Platform 3", "Level -1", "Max 3.5 t", "OPEN 9-17", "Route 66", "Track 7", "Aisle 5",
    "Lot C-12", "Unit 7B", "Zone A3", "Km 128", "Pump 4", "Dock 9", "ID 55-0192",
    "Order #4471", "Call 555-0199", "STOP", "NO ENTRY", "ONE WAY", "KEEP LEFT", "Fire Exit",
    "Main St", "5th Ave", "Check-in", "Open 24/7", "15 min", "220 V", "12.6 V", "4.2 A",
    "Wi-Fi: Guest", "Batch 2024-07", "TAXI", "HOSPITAL", "Gate 22",
)

# scikit-image photos that ship inside the package, used as backgrounds.
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "brick", "gravel", "grass",
          "stereo_motorcycle", "immunohistochemistry", "hubble_deep_field", "moon")
# Those on which PP-OCRv4's detector finds nothing by itself (checked on 8 random windows each):
# the others hold real text (astronaut's name tag, the motorcycle's badges) or text-like blobs
# (the cat's eyes, the spoon's glints, moon craters), which an unlabelled scene would count as
# false detections. Labelled detection scenes and the demo video use only these.
TEXT_FREE_PHOTOS = ("rocket", "coins", "brick", "gravel", "grass", "immunohistochemistry", "hubble_deep_field")

# (plate, ink) colours of sign plates: light plates with dark ink, dark plates with light ink.
PLATES = (
    ((245, 245, 240), (20, 20, 20)), ((250, 215, 50), (15, 15, 15)), ((225, 230, 235), (10, 40, 110)),
    ((255, 255, 255), (170, 20, 20)), ((20, 60, 140), (250, 250, 250)), ((0, 100, 60), (245, 245, 245)),
    ((180, 25, 25), (255, 255, 255)), ((30, 30, 30), (240, 240, 200)), ((95, 55, 25), (250, 240, 220)),
)
PAPER_INKS = ((15, 15, 15), (40, 40, 45), (20, 30, 100), (110, 20, 20))
LINE_BOX_PAD = 0.15


@dataclass(frozen=True)
class TextItem:
    """One rendered line: its text, the box around its ink [x1, y1, x2, y2] (x2/y2 one past the
    last ink pixel) and its rotation in degrees (counter-clockwise; 180 is upside down)."""

    text: str
    box: tuple[int, int, int, int]
    angle: float = 0.0

    def line_box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The detection ground truth: the ink's box grown by LINE_BOX_PAD of its height, kept inside width x height."""
        x1, y1, x2, y2 = self.box
        pad = round(LINE_BOX_PAD * (y2 - y1))
        return max(0, x1 - pad), max(0, y1 - pad), min(width, x2 + pad), min(height, y2 + pad)

    def as_dict(self, width: int, height: int) -> dict:
        """{"box": line box, "ink_box": ink box, "text", "angle"}, as the demo video's ground truth lists it."""
        return {"box": list(self.line_box(width, height)), "ink_box": list(self.box), "text": self.text, "angle": self.angle}


def font_path() -> Path:
    """DejaVu Sans: matplotlib's bundled copy, else Debian's fonts-dejavu-core."""
    candidates = []
    spec = importlib.util.find_spec("matplotlib")  # its path only: importing matplotlib is slow
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf")
    candidates.append(DEBIAN_FONT)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise EdgeshipError(f"DejaVuSans.ttf not found (looked at {', '.join(map(str, candidates))}); "
                        "`pip install matplotlib` (it ships the font) or `apt-get install fonts-dejavu-core`")


@cache
def _font(size: int):
    from PIL import ImageFont

    return ImageFont.truetype(str(font_path()), size)


def text_mask(text: str, size: int) -> np.ndarray:
    """The text's coverage (uint8, 0..255) at font size `size`, cropped to its ink."""
    from PIL import Image, ImageDraw

    font = _font(size)
    left, top, right, bottom = font.getbbox(text)
    pad = 2
    canvas = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
    ImageDraw.Draw(canvas).text((pad - left, pad - top), text, font=font, fill=255)
    mask = np.asarray(canvas)
    x1, y1, x2, y2 = _ink_box(mask)
    return np.ascontiguousarray(mask[y1:y2, x1:x2])


def _ink_box(alpha: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if not len(rows):
        raise ValueError("nothing was drawn")
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _cover(image: np.ndarray, width: int, height: int, rng: np.random.Generator, zoom: float = 1.0) -> np.ndarray:
    """A random width x height window of the image scaled to cover it (times `zoom`), maybe mirrored."""
    import cv2

    scale = max(width / image.shape[1], height / image.shape[0]) * zoom
    scaled = cv2.resize(image, (max(width, round(image.shape[1] * scale)), max(height, round(image.shape[0] * scale))),
                        interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top = int(rng.integers(0, scaled.shape[0] - height + 1))
    left = int(rng.integers(0, scaled.shape[1] - width + 1))
    window = scaled[top:top + height, left:left + width]
    return np.ascontiguousarray(window[:, ::-1] if rng.random() < 0.5 else window)


@cache
def photo(name: str) -> np.ndarray:
    """A scikit-image photo as RGB uint8 (grey photos repeated over three channels)."""
    import skimage.data

    image = getattr(skimage.data, name)()
    image = np.asarray(image[0] if isinstance(image, tuple) else image)  # stereo_motorcycle: (left, right, disparity)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    image = image[..., :3].astype(np.uint8)
    image.flags.writeable = False  # shared by the cache
    return image


def photo_background(width: int, height: int, rng: np.random.Generator, name: str | None = None,
                     photos: tuple[str, ...] = PHOTOS) -> np.ndarray:
    """A random window of a photo (one of `photos` unless named), scaled to cover width x height."""
    name = name or photos[int(rng.integers(len(photos)))]
    return _cover(photo(name), width, height, rng, zoom=float(rng.uniform(1.0, 1.6)))


def paper_background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Light paper: a slightly tinted base, a soft lighting gradient and a little grain."""
    base = rng.uniform(212, 245) + rng.uniform(-8, 8, size=3)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    direction = rng.uniform(-1, 1, size=2)
    gradient = (xs / width - 0.5) * direction[0] * 18 + (ys / height - 0.5) * direction[1] * 18
    grain = rng.normal(0, 3.0, size=(height, width, 1))
    return np.clip(base + gradient[..., None] + grain, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class _Sign:
    """A line ready to paste: its colour image, where it covers the background, and its ink."""

    rgb: np.ndarray      # h, w, 3 float32
    cover: np.ndarray    # h, w float32 in 0..1 (plate and ink)
    ink: np.ndarray      # h, w uint8 coverage of the text alone

    def flipped(self) -> _Sign:
        return _Sign(self.rgb[::-1, ::-1], self.cover[::-1, ::-1], self.ink[::-1, ::-1])

    def rotated(self, angle: float) -> _Sign:
        """Turned `angle` degrees counter-clockwise about its centre, the canvas grown to fit."""
        import cv2

        height, width = self.ink.shape
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
        cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
        new_width, new_height = int(np.ceil(width * cos + height * sin)), int(np.ceil(width * sin + height * cos))
        matrix[0, 2] += new_width / 2 - width / 2
        matrix[1, 2] += new_height / 2 - height / 2

        def turn(array, interpolation):
            return cv2.warpAffine(array, matrix, (new_width, new_height), flags=interpolation, borderValue=0)

        return _Sign(turn(self.rgb, cv2.INTER_LINEAR), turn(self.cover, cv2.INTER_LINEAR), turn(self.ink, cv2.INTER_LINEAR))

    def scaled(self, factor: float) -> _Sign:
        import cv2

        size = (max(1, round(self.ink.shape[1] * factor)), max(1, round(self.ink.shape[0] * factor)))
        interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
        return _Sign(cv2.resize(self.rgb, size, interpolation=interpolation), cv2.resize(self.cover, size, interpolation=interpolation),
                     cv2.resize(self.ink, size, interpolation=interpolation))

    def paste(self, canvas: np.ndarray, x: int, y: int) -> tuple[int, int, int, int]:
        """Blend onto canvas (float32, in place) with its top-left at (x, y); the ink's box on the canvas."""
        height, width = self.ink.shape
        cover = self.cover[..., None]
        region = canvas[y:y + height, x:x + width]
        region[:] = region * (1 - cover) + self.rgb * cover
        x1, y1, x2, y2 = _ink_box(self.ink)
        return x + x1, y + y1, x + x2, y + y2


def _jitter(colour, rng: np.random.Generator, amount: float = 10.0) -> np.ndarray:
    return np.clip(np.asarray(colour, np.float32) + rng.uniform(-amount, amount, size=3), 0, 255)


def _plate_padding(size: int) -> tuple[int, int]:
    return round(0.45 * size), round(0.32 * size)


def _make_sign(mask: np.ndarray, size: int, plate, ink_colour, rng: np.random.Generator) -> _Sign:
    """The text on a plate (rounded rectangle, sometimes with a border), or bare ink when plate is None."""
    from PIL import Image, ImageDraw

    ink = mask.astype(np.float32) / 255
    if plate is None:
        rgb = np.broadcast_to(np.asarray(ink_colour, np.float32), mask.shape + (3,)).copy()
        return _Sign(rgb, ink, mask)
    pad_x, pad_y = _plate_padding(size)
    height, width = mask.shape[0] + 2 * pad_y, mask.shape[1] + 2 * pad_x
    plate_image = Image.new("L", (width, height), 0)
    ImageDraw.Draw(plate_image).rounded_rectangle((0, 0, width - 1, height - 1), radius=max(2, size // 5), fill=255)
    cover = np.asarray(plate_image, np.float32) / 255
    rgb = np.broadcast_to(np.asarray(plate, np.float32), (height, width, 3)).copy()
    if rng.random() < 0.4:  # a border line in the ink colour, as on road and door signs
        border = Image.new("L", (width, height), 0)
        inset, line = max(2, size // 8), max(1, size // 14)
        ImageDraw.Draw(border).rounded_rectangle((inset, inset, width - 1 - inset, height - 1 - inset),
                                                radius=max(2, size // 6), outline=255, width=line)
        weight = np.asarray(border, np.float32)[..., None] / 255
        rgb = (rgb * (1 - weight) + np.asarray(ink_colour, np.float32) * weight).astype(np.float32)
    full_ink = np.zeros((height, width), np.uint8)
    full_ink[pad_y:pad_y + mask.shape[0], pad_x:pad_x + mask.shape[1]] = mask
    weight = ink[..., None]
    rgb[pad_y:pad_y + mask.shape[0], pad_x:pad_x + mask.shape[1]] *= 1 - weight
    rgb[pad_y:pad_y + mask.shape[0], pad_x:pad_x + mask.shape[1]] += weight * np.asarray(ink_colour, np.float32)
    return _Sign(rgb, cover, full_ink)


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _choose_sign(text: str, size: int, background: np.ndarray, on_paper: bool, plate_share: float,
                 rng: np.random.Generator) -> _Sign:
    """Bare ink where it stands out from the background under it, else a plate.

    `background` is the patch the sign will cover (plate-sized)."""
    mask = text_mask(text, size)
    if on_paper:
        if rng.random() < plate_share / 3:
            plate, ink = PLATES[int(rng.integers(len(PLATES)))]
            return _make_sign(mask, size, _jitter(plate, rng), _jitter(ink, rng, 6), rng)
        return _make_sign(mask, size, None, _jitter(PAPER_INKS[int(rng.integers(len(PAPER_INKS)))], rng, 6), rng)
    if rng.random() >= plate_share:
        luminance = _luminance(background.astype(np.float32))
        mean, spread = float(luminance.mean()), float(luminance.std())
        bare_ink = (15.0, 15.0, 15.0) if mean > 128 else (245.0, 245.0, 245.0)
        # Bare ink only on a calm background it stands out from: a fair test, not camouflage.
        if spread < 30 and abs(mean - _luminance(np.asarray(bare_ink))) > 130:
            return _make_sign(mask, size, None, _jitter(bare_ink, rng, 5), rng)
    plate, ink = PLATES[int(rng.integers(len(PLATES)))]
    return _make_sign(mask, size, _jitter(plate, rng), _jitter(ink, rng, 6), rng)


def _footprint(text: str, size: int) -> tuple[int, int]:
    """Height and width a line takes on its plate (bare ink takes less)."""
    left, top, right, bottom = _font(size).getbbox(text)
    pad_x, pad_y = _plate_padding(size)
    return bottom - top + 2 * pad_y, right - left + 2 * pad_x


def _finish(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A little sensor noise, then back to uint8."""
    noise = rng.standard_normal(canvas.shape, dtype=np.float32) * np.float32(2.0)
    return np.clip(canvas + noise, 0, 255).round().astype(np.uint8)


def render_scene(rng: np.random.Generator, width: int = 640, height: int = 480, background: str | np.ndarray | None = None,
                 lines: tuple[int, int] = (3, 6), font_sizes: tuple[int, int] = (18, 44),
                 upside_down: float = 0.15, plate_share: float = 0.6,
                 photos: tuple[str, ...] = TEXT_FREE_PHOTOS) -> tuple[np.ndarray, list[TextItem]]:
    """A width x height scene with several lines of text on a photo or on paper.

    background: "paper", a photo's name, an RGB uint8 image of height x width, or None for a
    random choice (a third paper, else one of `photos`: by default those without text of their
    own, so the lines drawn are all there is). Lines do not overlap (their plates keep a margin);
    `upside_down` is the share drawn rotated by 180 degrees, `plate_share` the share on plates
    (bare ink only goes where it stands out). Returns the RGB image and one TextItem per line."""
    if background is None:
        background = "paper" if rng.random() < 1 / 3 else photos[int(rng.integers(len(photos)))]
    on_paper = isinstance(background, str) and background == "paper"
    if isinstance(background, np.ndarray):
        if background.shape != (height, width, 3):
            raise ValueError(f"background is {background.shape}, not ({height}, {width}, 3)")
        base = background.astype(np.uint8)
    else:
        base = paper_background(width, height, rng) if on_paper else photo_background(width, height, rng, background)
    canvas = base.astype(np.float32)
    taken: list[tuple[int, int, int, int]] = []
    items = []
    margin = 6
    for _ in range(int(rng.integers(lines[0], lines[1] + 1))):
        for _attempt in range(40):
            text = WORDS[int(rng.integers(len(WORDS)))]
            size = int(rng.integers(font_sizes[0], font_sizes[1] + 1))
            foot_height, foot_width = _footprint(text, size)
            if foot_width > width - 2 * margin or foot_height > height - 2 * margin:
                continue
            x = int(rng.integers(margin, width - margin - foot_width + 1))
            y = int(rng.integers(margin, height - margin - foot_height + 1))
            spot = (x - margin, y - margin, x + foot_width + margin, y + foot_height + margin)
            if any(spot[0] < other[2] and other[0] < spot[2] and spot[1] < other[3] and other[1] < spot[3] for other in taken):
                continue
            sign = _choose_sign(text, size, base[y:y + foot_height, x:x + foot_width], on_paper, plate_share, rng)
            angle = 180.0 if rng.random() < upside_down else 0.0
            if angle:
                sign = sign.flipped()
            # bare ink is smaller than its footprint: centre it there
            sign_height, sign_width = sign.ink.shape
            box = sign.paste(canvas, x + (foot_width - sign_width) // 2, y + (foot_height - sign_height) // 2)
            taken.append(spot)
            items.append(TextItem(text, box, angle))
            break
    return _finish(canvas, rng), items


def render_line_crop(rng: np.random.Generator, text: str | None = None, font_sizes: tuple[int, int] = (22, 40),
                     upside_down: bool = False, plate_share: float = 0.5) -> tuple[np.ndarray, TextItem]:
    """One line cut out as a text detector would cut it: the ink plus a margin of its
    surroundings (plate, photo or paper). upside_down turns the whole crop by 180 degrees, as a
    detector's crop of upside-down text is. Returns the RGB crop and its TextItem (box in the crop)."""
    text = text if text is not None else WORDS[int(rng.integers(len(WORDS)))]
    size = int(rng.integers(font_sizes[0], font_sizes[1] + 1))
    foot_height, foot_width = _footprint(text, size)
    on_paper = rng.random() < 0.35
    width, height = foot_width + 2 * size, foot_height + 2 * size
    base = paper_background(width, height, rng) if on_paper else photo_background(width, height, rng)
    canvas = base.astype(np.float32)
    x, y = size, size
    sign = _choose_sign(text, size, base[y:y + foot_height, x:x + foot_width], on_paper, plate_share, rng)
    sign_height, sign_width = sign.ink.shape
    x1, y1, x2, y2 = sign.paste(canvas, x + (foot_width - sign_width) // 2, y + (foot_height - sign_height) // 2)
    ink_height = y2 - y1
    # A DB detector's box (after unclipping) sits a little outside the ink, unevenly.
    top, bottom = (round(ink_height * rng.uniform(0.12, 0.35)) for _ in range(2))
    left, right = (round(ink_height * rng.uniform(0.1, 0.45)) for _ in range(2))
    crop_box = (max(0, x1 - left), max(0, y1 - top), min(width, x2 + right), min(height, y2 + bottom))
    crop = _finish(canvas, rng)[crop_box[1]:crop_box[3], crop_box[0]:crop_box[2]]
    box = (x1 - crop_box[0], y1 - crop_box[1], x2 - crop_box[0], y2 - crop_box[1])
    if upside_down:
        crop_height, crop_width = crop.shape[:2]
        crop = crop[::-1, ::-1]
        box = (crop_width - box[2], crop_height - box[3], crop_width - box[0], crop_height - box[1])
    return np.ascontiguousarray(crop), TextItem(text, box, 180.0 if upside_down else 0.0)


def moving_signs(frames: int = 90, size: tuple[int, int] = (640, 480), seed: int = 0) -> Iterator[tuple[np.ndarray, list[dict]]]:
    """(RGB frame, ground truth) for each of `frames` frames of signs moving over a photo.

    Each sign keeps to its own horizontal lane (so none covers another), drifts and bounces,
    grows and shrinks a little, and about half lean a few degrees. The ground truth of a frame:
    [{"box": [x1, y1, x2, y2], "ink_box": [...], "text", "angle"}]: box is the line box (as the
    detection example labels lines), ink_box the box around the ink, angle in degrees
    counter-clockwise. `edgeship.report.media.text_video` writes them as a video."""
    width, height = size
    if width < 320 or height < 240:
        raise ValueError(f"video size {size} is too small for four lanes of signs; use at least (320, 240)")
    rng = np.random.default_rng(seed)
    name = TEXT_FREE_PHOTOS[int(rng.integers(len(TEXT_FREE_PHOTOS)))]
    # a backdrop larger than the frame, panned slowly
    backdrop = _cover(photo(name), width + frames, height + frames // 2, rng, zoom=1.2).astype(np.float32)
    lanes = 4
    lane_height = height // lanes
    signs: list[dict[str, Any]] = []
    for lane in range(lanes):
        for _attempt in range(40):
            text = WORDS[int(rng.integers(len(WORDS)))]
            font_size = int(rng.integers(20, 33))
            if _footprint(text, font_size)[1] * 1.2 < width * 0.6:
                break
        plate, ink = PLATES[int(rng.integers(len(PLATES)))]
        sign = _make_sign(text_mask(text, font_size), font_size, _jitter(plate, rng), _jitter(ink, rng, 6), rng)
        signs.append({
            "text": text, "sign": sign, "lane": lane,
            "angle": float(rng.uniform(-6, 6)) if rng.random() < 0.5 else 0.0,
            "speed": float(rng.uniform(2.0, 6.0)) * (1 if rng.random() < 0.5 else -1),
            "phase": float(rng.uniform(0, 2 * np.pi)), "start": float(rng.uniform(0, 1)),
        })
    for index in range(frames):
        canvas = backdrop[index // 2:index // 2 + height, index:index + width].copy()
        items = []
        for spec in signs:
            sign = spec["sign"].scaled(1.0 + 0.12 * np.sin(spec["phase"] + index / 12))
            angle = spec["angle"] + (1.5 * np.sin(spec["phase"] + index / 9) if spec["angle"] else 0.0)
            if angle:
                sign = sign.rotated(angle)
            sign_height, sign_width = sign.ink.shape
            room_x = max(0, width - sign_width)
            # a triangle wave: drift one way, bounce off the frame's edge, drift back
            travel = (spec["start"] * 2 * room_x + spec["speed"] * index) % (2 * room_x or 1)
            x = int(travel if travel <= room_x else 2 * room_x - travel)
            lane_top = spec["lane"] * lane_height
            room_y = max(0, lane_height - sign_height)
            y = lane_top + int(room_y * (0.5 + 0.4 * np.sin(spec["phase"] * 2 + index / 15)))
            y = min(y, height - sign_height)
            box = sign.paste(canvas, x, y)
            items.append(TextItem(spec["text"], box, round(float(angle), 2)).as_dict(width, height))
        yield _finish(canvas, rng), items


__all__ = ["PHOTOS", "TEXT_FREE_PHOTOS", "WORDS", "TextItem", "font_path", "paper_background", "photo", "photo_background",
           "moving_signs", "render_line_crop", "render_scene", "text_mask"]
