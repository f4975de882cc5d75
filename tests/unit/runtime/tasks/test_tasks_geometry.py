from __future__ import annotations

import numpy as np
import pytest

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.preprocess import Preprocess
from edgeship_runtime.tasks import boxes_to_frame, boxes_to_input, fit_transform, letterbox, match_boxes
from edgeship_runtime.tasks.geometry import box_iou


def _white_bounds(image: np.ndarray) -> list[int]:
    """x1, y1, x2, y2 (pixel edges) of the pixels above mid-grey."""
    ys, xs = np.nonzero(image.reshape(image.shape[0], image.shape[1], -1).max(axis=2) > 180)
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


@pytest.mark.parametrize("mode", ["stretch", "center_crop", "letterbox"])
@pytest.mark.parametrize("frame_hw,input_hw", [((480, 640), (224, 224)), ((640, 480), (256, 320)), ((100, 300), (64, 64)), ((37, 53), (640, 640))])
def test_boxes_round_trip_frame_input_frame_within_a_pixel(mode, frame_hw, input_hw):
    transform = fit_transform(frame_hw, input_hw, mode)
    frame_h, frame_w = frame_hw
    # boxes inside what the model sees (a centre crop drops the frame's edges)
    boxes = np.array([[0.40, 0.40, 0.60, 0.55], [0.36, 0.35, 0.45, 0.65], [0.5, 0.5, 0.5, 0.5]]) * [frame_w, frame_h, frame_w, frame_h]
    on_input = boxes_to_input(boxes, transform)
    assert np.all(on_input >= 0) and np.all(on_input[:, [0, 2]] <= input_hw[1]) and np.all(on_input[:, [1, 3]] <= input_hw[0])
    assert np.abs(boxes_to_frame(on_input, transform) - boxes).max() <= 1.0


def test_fit_transform_describes_each_mode():
    stretch = fit_transform((480, 640), (240, 240), "stretch")
    assert stretch["scale"] == [0.5, 0.375] and stretch["offset"] == [0.0, 0.0]
    crop = fit_transform((480, 640), (240, 240), "center_crop")
    assert crop["crop"] == [0, 80, 480, 480] and crop["scale"] == [0.5, 0.5] and crop["offset"] == [0.0, -40.0]
    box = fit_transform((480, 640), (320, 320), "letterbox")
    assert box["resized_hw"] == [240, 320] and box["pad"] == [40, 0] and box["scale"] == [0.5, 0.5]
    with pytest.raises(ArtifactError, match="resize mode 'fill'"):
        fit_transform((480, 640), (320, 320), "fill")


@pytest.mark.parametrize("frame_hw,rect", [((200, 400), (100, 50, 200, 150)), ((300, 120, 3), (20, 200, 100, 260)), ((64, 64), (8, 8, 40, 24))])
def test_letterboxed_content_lands_where_fit_transform_says(frame_hw, rect):
    frame = np.zeros(frame_hw, np.uint8)
    x1, y1, x2, y2 = rect
    frame[y1:y2, x1:x2] = 255
    image = letterbox(frame, (320, 320))
    assert image.shape == (320, 320, *frame_hw[2:]) and image.dtype == np.uint8
    transform = fit_transform(frame_hw[:2], (320, 320), "letterbox")
    expected = boxes_to_input(np.array([rect], float), transform)[0]
    assert np.abs(np.array(_white_bounds(image)) - expected).max() <= 1.0
    top, left = transform["pad"]
    resized_h, resized_w = transform["resized_hw"]
    if top:
        assert (image[:top] == 114).all() and (image[top + resized_h:] == 114).all()
    if left:
        assert (image[:, :left] == 114).all() and (image[:, left + resized_w:] == 114).all()


def test_center_crop_geometry_is_the_one_preprocess_applies():
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[100:300, 200:400] = 255
    fitted = Preprocess("image", [1, 3, 224, 224], {"resize": "center_crop", "layout": "NCHW"}).fit(frame)
    expected = boxes_to_input(np.array([[200, 100, 400, 300]], float), fit_transform((480, 640), (224, 224), "center_crop"))[0]
    assert np.abs(np.array(_white_bounds(fitted)) - expected).max() <= 1.0


def test_box_iou():
    assert box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]]).tolist() == [[1 / 3, 0.0, 1.0]]


def test_match_boxes_is_greedy_one_to_one_and_class_aware():
    truth = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], float)
    both = match_boxes(np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 0, 30, 10]], float), truth)
    assert (both["tp"], both["fp"], both["fn"]) == (2, 1, 0) and both["pairs"] == [(0, 0), (2, 1)]
    assert both["precision"] == pytest.approx(2 / 3) and both["recall"] == 1.0 and both["f1"] == pytest.approx(0.8)
    # the second box is in the right place with the wrong class
    wrong_class = match_boxes(truth, truth, classes_pred=[0, 1], classes_truth=[0, 2])
    assert (wrong_class["tp"], wrong_class["fp"], wrong_class["fn"]) == (1, 1, 1)
    shifted = match_boxes(np.array([[4, 0, 14, 10]], float), truth[:1])  # IoU 6/14 < 0.5
    assert shifted["tp"] == 0 and shifted["f1"] == 0.0
    assert match_boxes(np.zeros((0, 4)), np.zeros((0, 4))) == {"tp": 0, "fp": 0, "fn": 0, "precision": 1.0, "recall": 1.0, "f1": 1.0,
                                                             "pairs": []}
    missed = match_boxes(np.zeros((0, 4)), truth)
    assert (missed["precision"], missed["recall"], missed["f1"]) == (0.0, 0.0, 0.0)
