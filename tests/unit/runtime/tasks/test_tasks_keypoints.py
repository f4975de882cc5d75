"""keypoints: mean keypoint error and PCK against fp32 and against labels, on hand-made landmarks whose
answers are known (a 30 x 40 box of points has a 50 px diagonal: a point moved by 3 px is 0.06 of it)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.tasks import against_labels, check_labels, compare, default_tolerances, postprocess, validate
from edgeship_runtime.tasks.geometry import fit_transform, points_to_frame

INPUTS = [{"name": "input_1", "shape": [1, 224, 224, 3]}]
# 4 points (x, y, depth) spanning a 30 x 40 box: its diagonal is 50 px
CORNERS = np.array([[10, 20, 0.5], [40, 20, -1.0], [40, 60, 2.0], [10, 60, 0.0]])
FLAT = [{"name": "landmarks", "shape": [1, 12]}, {"name": "presence", "shape": [1, 1]}]


def _record(outputs=FLAT, **changes) -> dict:
    record = {"name": "keypoints", "output": "landmarks", "num_keypoints": 4, "presence": "presence", **changes}
    return validate(record, outputs, None, "task.json", INPUTS)


def _sample(points=CORNERS, score=0.9, shape=(1, 12)) -> dict:
    return {"landmarks": np.asarray(points, np.float32).reshape(shape), "presence": np.array([[score]], np.float32)}


def _moved(index: int, dx: float, dy: float = 0.0) -> np.ndarray:
    points = CORNERS.copy()
    points[index, :2] += [dx, dy]
    return points


def test_a_point_moved_by_3_px_is_an_error_of_3_over_the_hands_diagonal():
    report = compare(_record(), [_sample()], [_sample(_moved(2, 3.0))], default_tolerances("keypoints", "fp16"))
    metrics = report["metrics"]
    assert metrics["mean_keypoint_error"] == pytest.approx(3 / 50 / 4)  # one point of four off by 0.06
    assert metrics["max_keypoint_error"] == pytest.approx(0.06)
    assert metrics["pck"] == pytest.approx(0.75)  # 0.06 > 0.05: that point is missed
    assert metrics["samples_judged"] == 1 and metrics["samples_without_object"] == 0 and metrics["objects_lost"] == 0
    assert not report["passed"] and report["failed"] == ["output 'landmarks': PCK against fp32 0.75 < 0.98 (min_pck)"]
    assert report["judged_by"] == ["PCK against fp32"]


def test_depth_is_not_part_of_the_error_and_a_point_within_the_threshold_counts():
    points = _moved(0, 1.5, 2.0)  # 2.5 px: 0.05 of the diagonal, on the threshold
    points[:, 2] += 100.0
    report = compare(_record(), [_sample()], [_sample(points)], default_tolerances("keypoints", "fp32"))
    assert report["metrics"]["mean_keypoint_error"] == pytest.approx(0.05 / 4)
    assert report["metrics"]["pck"] == 1.0 and report["passed"]


def test_normalized_by_the_input_the_same_move_is_3_over_the_inputs_diagonal():
    metrics = compare(_record(normalize_by="input"), [_sample()], [_sample(_moved(2, 3.0))], default_tolerances("keypoints", "fp16"))["metrics"]
    assert metrics["max_keypoint_error"] == pytest.approx(3 / np.hypot(224, 224))
    assert metrics["pck"] == 1.0


def test_normalized_coordinates_are_read_in_input_pixels():
    # an input 100 high and 200 wide: x is scaled by 200, y by 100; judged against its diagonal
    record = _record(coordinates="normalized", normalize_by="input", input_size=[100, 200])
    moved = _moved(1, 3.0, 4.0)
    metrics = compare(record, [_sample(CORNERS / [200, 100, 1])], [_sample(moved / [200, 100, 1])],
                      default_tolerances("keypoints", "fp16"))["metrics"]
    assert metrics["max_keypoint_error"] == pytest.approx(5 / np.hypot(100, 200), rel=1e-5)


def test_k_by_d_layout_gives_the_same_answer_as_the_flat_one():
    outputs = [{"name": "landmarks", "shape": [1, 4, 3]}, {"name": "presence", "shape": [1, 1]}]
    record = validate({"name": "keypoints", "output": "landmarks", "presence": "presence"}, outputs, None, "m", INPUTS)
    assert record["num_keypoints"] == 4 and record["dims"] == 3 and record["input_size"] == [224, 224]
    metrics = compare(record, [_sample(shape=(1, 4, 3))], [_sample(_moved(2, 3.0), shape=(1, 4, 3))],
                      default_tolerances("keypoints", "fp16"))["metrics"]
    assert metrics["pck"] == pytest.approx(0.75)


def test_samples_where_fp32_finds_no_object_are_left_out():
    noise = np.random.default_rng(0).uniform(0, 224, (4, 3))
    reference = [_sample(), _sample(noise, score=0.1)]
    converted = [_sample(_moved(2, 3.0)), _sample(noise[::-1], score=0.1)]  # the absent one's points are far off: ignored
    metrics = compare(_record(), reference, converted, default_tolerances("keypoints", "fp16"))["metrics"]
    assert metrics["samples_judged"] == 1 and metrics["samples_without_object"] == 1
    assert metrics["pck"] == pytest.approx(0.75) and metrics["max_keypoint_error"] == pytest.approx(0.06)


def test_an_object_the_converted_model_loses_counts_every_point_as_missed():
    reference = [_sample(), _sample()]
    converted = [_sample(), _sample(score=0.3)]  # the same points, but below the presence threshold
    metrics = compare(_record(), reference, converted, default_tolerances("keypoints", "fp16"))["metrics"]
    assert metrics["objects_lost"] == 1 and metrics["pck"] == 0.5 and metrics["mean_keypoint_error"] == 0.0


def test_a_presence_logit_goes_through_a_sigmoid():
    record = _record(presence_logit=True)
    # logit 0.1 -> 0.52 >= 0.5: present; logit -0.1 -> 0.48: absent
    metrics = compare(record, [_sample(score=0.1), _sample(score=-0.1)], [_sample(score=0.1), _sample(score=-0.1)],
                      default_tolerances("keypoints", "fp16"))["metrics"]
    assert metrics["samples_judged"] == 1 and metrics["samples_without_object"] == 1


def test_no_object_on_any_sample_is_not_measurable_and_the_verdict_comes_from_the_tensors():
    reference = [_sample(score=0.01), _sample(score=0.2)]
    report = compare(_record(), reference, [_sample(score=0.01), _sample(score=0.2)], default_tolerances("keypoints", "fp16"))
    metrics = report["metrics"]
    assert metrics["pck"] is None and metrics["mean_keypoint_error"] is None
    assert metrics["not_measurable"] == "fp32 finds no object on any sample (presence below the threshold)"
    assert metrics["samples_judged"] == 0 and metrics["samples_without_object"] == 2
    assert report["passed"]  # identical tensors: the generic gates pass, never PCK
    assert report["judged_by"][0].startswith("every output's min_cosine, min_snr_db, max_range_error (instead: PCK against fp32 not measurable")
    assert "PCK against fp32" not in report["judged_by"]
    # and the same with tensors that moved: the fallback fails them
    moved = compare(_record(), reference, [_sample(CORNERS * 3, 0.01), _sample(score=0.9)], default_tolerances("keypoints", "fp16"))
    assert not moved["passed"] and any("(min_snr_db)" in line for line in moved["failed"])  # tripled: cosine 1, SNR 0


def test_without_a_presence_output_every_sample_is_judged():
    record = validate({"name": "keypoints", "output": "landmarks", "num_keypoints": 4}, FLAT, None, "m", INPUTS)
    metrics = compare(record, [_sample(score=0.0)], [_sample(_moved(2, 3.0), score=0.0)], default_tolerances("keypoints", "int8"))["metrics"]
    assert metrics["samples_judged"] == 1 and metrics["pck"] == pytest.approx(0.75)


@pytest.mark.parametrize(("outputs", "record", "message"), [
    ([{"name": "landmarks", "shape": [1, 62]}], {"num_keypoints": 21},
     r"task.json: task 'keypoints' reads output 'landmarks' of shape \[1, 62\], which is not 21 points of 2 or 3 values"),
    ([{"name": "landmarks", "shape": [1, 84]}], {"num_keypoints": 21},
     r"shape \[1, 84\], which is not 21 points of 2 or 3 values"),
    ([{"name": "landmarks", "shape": [1, 63]}], {},
     r"shape \[1, 63\]; give \"num_keypoints\""),
    ([{"name": "landmarks", "shape": [1, 21, 4]}], {},
     r"shape \[1, 21, 4\]; keypoints needs \[N, K, D\] with D 2 or 3"),
    ([{"name": "landmarks", "shape": [1, 21, 3]}], {"num_keypoints": 20},
     r"shape \[1, 21, 3\]; keypoints needs \[N, K, D\] with D 2 or 3 \(num_keypoints 20"),
    ([{"name": "landmarks", "shape": [1, 63]}], {"num_keypoints": 21, "dims": 2},
     r"which is not 21 points of 2 or 3 values"),
    ([{"name": "landmarks", "shape": [1, 2, 3, 4, 5]}], {},
     r"keypoints needs \[N, K\*D\] or \[N, K, D\]"),
    ([{"name": "landmarks", "shape": [1, 63]}, {"name": "score", "shape": [1, 2]}], {"num_keypoints": 21, "presence": "score"},
     r"presence output 'score' has shape \[1, 2\]; it must hold one score per sample"),
    ([{"name": "landmarks", "shape": [1, 63]}], {"num_keypoints": 21, "presence": "score"},
     r"presence output 'score' is not an output of the model; the outputs are \['landmarks'\]"),
    ([{"name": "landmarks", "shape": [1, 63]}], {"num_keypoints": 21, "edges": [[0, 1], [20, 21]]},
     r"edges \[\[20, 21\]\] name keypoints beyond the model's 21 \(indices 0..20\)"),
    ([{"name": "landmarks", "shape": [1, 63]}], {"num_keypoints": 21, "edges": [[0, 1, 2]]},
     r"task parameter edges=\[\[0, 1, 2\]\] must be a list of \[i, j\] pairs"),
])
def test_a_record_that_does_not_fit_the_outputs_is_refused_in_one_line(outputs, record, message):
    with pytest.raises(ArtifactError, match=message) as caught:
        validate({"name": "keypoints", "output": "landmarks", **record}, outputs, None, "task.json", INPUTS)
    assert "\n" not in str(caught.value)


def test_normalized_coordinates_need_the_input_size():
    with pytest.raises(ArtifactError, match=r"keypoints needs \"input_size\": \[height, width\]"):
        validate({"name": "keypoints", "output": "landmarks", "num_keypoints": 4, "coordinates": "normalized"}, FLAT, None, "m", None)
    record = validate({"name": "keypoints", "output": "landmarks", "num_keypoints": 4, "coordinates": "normalized", "input_size": [100, 200]},
                      FLAT, None, "m", None)
    assert record["input_size"] == [100, 200]


def test_against_labels_known_error_and_pck():
    record = _record()
    labels = np.stack([CORNERS[:, :2], CORNERS[:, :2]]).astype(np.float32)
    check_labels(record, labels, 2, "eval.npz")
    figures = against_labels(record, [_sample(), _sample(_moved(3, 0.0, -4.0))], labels)
    assert figures["samples"] == 2 and figures["pck"] == pytest.approx(7 / 8)
    assert figures["mean_keypoint_error"] == pytest.approx(4 / 50 / 8)


@pytest.mark.parametrize("labels", [np.zeros((2, 4, 3), np.float32), np.zeros((3, 4, 2), np.float32), np.zeros((2, 4, 2), np.int64),
                                    np.full((2, 4, 2), np.nan, np.float32)])
def test_labels_in_another_format_are_refused(labels):
    with pytest.raises(ArtifactError, match=r"eval.npz: labels are .* task 'keypoints' takes float \[N, K, 2\] keypoints .*\[2, 4, 2\], finite"):
        check_labels(_record(), labels, 2, "eval.npz")


def test_postprocess_gives_the_points_the_edges_and_the_presence():
    record = _record(edges=[[0, 1], [1, 2]])
    result = postprocess(record, _sample(score=0.8), None)
    assert result["kind"] == "keypoints" and result["points"] == CORNERS[:, :2].tolist() and result["edges"] == [[0, 1], [1, 2]]
    assert result["label"] == "4 keypoints" and result["confidence"] == pytest.approx(0.8)
    nothing = postprocess(record, _sample(score=0.2), None)
    assert nothing["points"] == [] and nothing["label"] == "nothing found"


def test_points_map_back_to_the_frame_through_the_centre_crop():
    # a 448 x 672 frame centre-cropped to 448 x 448 (left 112) and halved to 224: input (10, 20) is frame (132, 40)
    transform = fit_transform((448, 672), (224, 224), "center_crop")
    assert points_to_frame(np.array([[10.0, 20.0], [224.0, 224.0]]), transform).tolist() == [[132.0, 40.0], [560.0, 448.0]]


def test_the_overlay_draws_the_points_and_their_edges():
    pytest.importorskip("cv2")
    from edgeship_runtime.demo.overlay import EDGE_COLOUR, POINT_COLOUR, draw_points

    frame = np.zeros((100, 100, 3), np.uint8)
    drawn = draw_points(frame, [[10, 10], [90, 10]], [[0, 1]])
    assert tuple(drawn[10, 10]) == POINT_COLOUR and tuple(drawn[10, 50]) == EDGE_COLOUR
    assert not frame.any()  # the frame itself is left as it was
