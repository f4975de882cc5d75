"""The camera demo on converted artifacts: videos made from scikit-image photos and
scikit-learn digits go through the real pipeline, and a real headless Chromium looks at the
viewer page it serves."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.support import ROOT

cv2 = pytest.importorskip("cv2")


def demo(*args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeship_runtime.cli", "demo", *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def photo_video(tmp_path_factory):
    from edgeship.report.media import photo_video as make

    return make(tmp_path_factory.mktemp("video") / "photos.avi", width=640, height=480, frames_per_photo=8)


def last_video_frame(path):
    capture = cv2.VideoCapture(str(path))
    frame, count = None, 0
    while True:
        ok, image = capture.read()
        if not ok:
            return frame, count
        frame, count = image, count + 1


def imagenet_input(frame):
    """The mobilenetv2 example's preprocessing written out by hand: centre crop, 224x224, RGB/255, ImageNet mean/std, NCHW."""
    height, width = frame.shape[:2]
    side = min(height, width)
    crop = frame[(height - side) // 2:(height - side) // 2 + side, (width - side) // 2:(width - side) // 2 + side]
    rgb = cv2.resize(crop, (224, 224), interpolation=cv2.INTER_AREA)[..., ::-1].astype(np.float32) / 255
    return ((rgb - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]).astype(np.float32).transpose(2, 0, 1)[None]


def test_photo_video_through_mobilenetv2_stats_and_overlay(conversions, photo_video, tmp_path):
    import onnxruntime

    artifact = conversions("mobilenetv2", "fp32", target="onnx")
    assert json.loads((artifact / "manifest.json").read_text())["preprocess"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    out = tmp_path / "out"
    out.mkdir()
    result = demo(artifact, "--source", photo_video, "--no-server", "--threads", "1", "--output", out / "stats.json",
                  "--save-frame", out / "last.png", "--record", out / "annotated.avi", "--predictions", out / "predictions.jsonl")
    assert result.returncode == 0, result.stderr
    stats = json.loads((out / "stats.json").read_text())
    last_frame, frame_count = last_video_frame(photo_video)
    # every frame of a file is shown (files wait, they never drop), timed in every stage
    assert stats["final"] and stats["stopped_by"] == "end of source" and stats["error"] is None
    no_drops = {"capture->preprocess": 0, "preprocess->infer": 0, "infer->postprocess": 0, "postprocess->render": 0}
    assert stats["frames"] == {"captured": frame_count, "processed": frame_count, "dropped": 0, "dropped_by_queue": no_drops}
    for stage in ("capture", "preprocess", "infer", "postprocess", "render"):
        assert stats["stages"][stage]["count"] == frame_count and stats["stages"][stage]["mean_ms"] > 0
    assert stats["end_to_end"]["p50_ms"] >= stats["stages"]["infer"]["p50_ms"]
    assert stats["fps"] > 0 and stats["bottleneck"]["stage"] in stats["stages"] and stats["backend"] == "onnxruntime"
    assert stats["source"]["kind"] == "video" and stats["source"]["size"] == [640, 480]
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [p["frame"] for p in predictions] == list(range(frame_count))
    # the last frame's class, computed here without the demo's code, is the one shown
    session = onnxruntime.InferenceSession(str(artifact / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": imagenet_input(last_frame)})[0][0]
    assert predictions[-1]["class"] == int(np.argmax(logits)) and predictions[-1]["label"] == f"class_{int(np.argmax(logits))}"
    assert stats["last"]["label"] == predictions[-1]["label"]
    # the saved frame: the banner over the untouched video frame
    saved = cv2.imread(str(out / "last.png"))
    from edgeship_runtime.demo import BANNER_PX

    assert saved.shape == (480 + BANNER_PX, 640, 3)
    np.testing.assert_array_equal(saved[BANNER_PX:], last_frame)
    banner = saved[:BANNER_PX]
    assert ((banner[..., 1] > 200) & (banner[..., 0] < 150)).sum() > 50  # the class line, in green
    assert ((banner > 200).all(axis=-1)).sum() > 50  # the FPS / inference line, in white
    recorded, recorded_count = last_video_frame(out / "annotated.avi")
    assert recorded_count == frame_count and recorded.shape == saved.shape
    assert not list(out.glob("*.partial*"))


def test_digits_video_is_read_right_through_the_int8_tflite_artifact(conversions, tmp_path):
    from edgeship.report.media import digits_video

    artifact = conversions("digits", "int8")
    video, truth = digits_video(tmp_path / "digits.avi", count=80)
    result = demo(artifact, "--source", video, "--no-server", "--predictions", tmp_path / "p.jsonl", "--output", tmp_path / "stats.json")
    assert result.returncode == 0, result.stderr
    shown = [json.loads(line)["label"] for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    agreement = np.mean([label == str(digit) for label, digit in zip(shown, truth)])
    print(f"digits video: {agreement:.1%} of {len(truth)} frames read right")
    assert len(shown) == len(truth) and agreement >= 0.9


def test_a_live_source_drops_frames_instead_of_lagging(conversions, tmp_path):
    artifact = conversions("mobilenetv2", "fp32", target="onnx")
    # a 400 fps "camera" into a ~100-200 fps model: the queues must drop, and latency stay bounded
    result = demo(artifact, "--source", "pattern", "--fps", "400", "--duration", "4", "--no-server", "--threads", "1",
                  "--output", tmp_path / "stats.json")
    assert result.returncode == 0, result.stderr
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["source"]["live"] and stats["stopped_by"] == "duration"
    assert stats["frames"]["dropped"] > 0
    assert stats["frames"]["captured"] == stats["frames"]["processed"] + stats["frames"]["dropped"]
    # at most one frame in each of the four queues and one in each stage: no backlog builds up
    slowest = max(stats["stages"][s]["mean_ms"] for s in ("preprocess", "infer", "postprocess", "render"))
    assert stats["end_to_end"]["p50_ms"] < 12 * slowest, (stats["end_to_end"], slowest)


def test_headless_chromium_shows_the_annotated_stream_and_signals_write_stats(conversions, photo_video, tmp_path):
    from edgeship.report.browser import screenshot_viewer
    from edgeship.report.demo_table import served_demo

    artifact = conversions("mobilenetv2", "fp32", target="onnx")
    stats_path = tmp_path / "stats.json"
    with served_demo(artifact, photo_video, stats_path, seconds=300, stdout=subprocess.PIPE) as (process, url):
        assert url.startswith("http://127.0.0.1:"), url
        shot = screenshot_viewer(url, tmp_path / "viewer.png")
        process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 30
        while not stats_path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        snapshot = json.loads(stats_path.read_text())
        assert snapshot["final"] is False and snapshot["frames"]["processed"] > 0
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    final = json.loads(stats_path.read_text())
    assert final["final"] and final["stopped_by"] == "signal SIGTERM" and final["frames"]["processed"] >= snapshot["frames"]["processed"]
    assert json.loads(stdout)["stopped_by"] == "signal SIGTERM"
    assert shot["title"] == f"edgeship demo: {artifact.name}" and "FPS" in shot["stats_text"]
    from edgeship_runtime.demo import BANNER_PX

    assert shot["stream_size"] == [640, 480 + BANNER_PX]
    # the screenshot itself shows the annotated frame: the dark banner with the green class line
    screen = cv2.imread(str(tmp_path / "viewer.png"))
    banner_rows = ((screen == (24, 24, 24)).all(axis=-1).sum(axis=1) > 300).sum()
    assert banner_rows >= BANNER_PX // 2
    assert ((screen[..., 1] > 200) & (screen[..., 0] < 150) & (screen[..., 2] < 150)).sum() > 50
    kept = ROOT / "results" / "tests"
    kept.mkdir(parents=True, exist_ok=True)
    shutil.copy(tmp_path / "viewer.png", kept / "demo-viewer.png")  # attached to the results
    print(f"viewer screenshot: {kept / 'demo-viewer.png'}")


@pytest.mark.parametrize("args,message", [
    (("--source", "missing.avi"), r"--source missing.avi is neither `pattern`"),
    (("--record", "no/such/folder/out.avi", "--frames", "2"), r"--record no/such/folder/out.avi: folder .* does not exist"),
    (("--preprocess", '{"color": "purple"}'), r"preprocess color 'purple' is not one of rgb, bgr, gray"),
    (("--listen", "8080"), r"--listen '8080' is not HOST:PORT"),
])
def test_bad_demo_input_is_one_clear_line(conversions, tmp_path, args, message):
    artifact = conversions("digits", "fp32")
    result = demo(artifact, "--source", "pattern", "--frames", "3", *args, "--output", tmp_path / "stats.json")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgeship-runtime: error:"), result.stderr
    import re

    assert re.search(message, lines[0]), lines[0]
    assert not list(tmp_path.iterdir())  # nothing half-written


@pytest.fixture(scope="module")
def signs_video(tmp_path_factory):
    from edgeship.report.media import text_video

    folder = tmp_path_factory.mktemp("signs")
    video, truth = text_video(folder / "signs.avi", frames=24)
    return video, truth


def test_text_is_read_off_a_video_by_a_detector_and_a_recognizer(convert_example, signs_video, tmp_path):
    """PP-OCRv4 det + rec (onnx int8): the boxes land on the signs (frame pixels, through the
    preprocessing), each is recognized in a stage of its own, and the text matches the video's truth."""
    from edgeship.report.ocr import score_text_predictions

    video, truth = signs_video
    detector, recognizer = convert_example("ppocr-det", "onnx", "int8"), convert_example("ppocr-rec", "onnx", "int8")
    out = tmp_path / "out"
    out.mkdir()
    result = demo(detector, "--rec", recognizer, "--source", video, "--no-server", "--output", out / "stats.json",
                  "--predictions", out / "predictions.jsonl", "--save-frame", out / "last.png")
    assert result.returncode == 0, result.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert stats["task"] == "detect" and stats["pipeline"] == ["capture", "preprocess", "infer", "postprocess", "recognize", "render"]
    assert set(stats["stages"]) == set(stats["pipeline"])
    assert stats["frames"]["processed"] == len(truth) and stats["detections"]["frames_with_boxes"] == len(truth)
    assert stats["text_model"]["artifact"]["path"] == str(recognizer) and stats["stages"]["recognize"]["count"] == len(truth)
    scores = score_text_predictions(out / "predictions.jsonl", truth)
    print(f"signs video through {detector.name} + {recognizer.name}: detection F1 {scores['f1']:.3f}, "
          f"character accuracy {scores['char_accuracy']:.3f} over {scores['frames']} frames")
    assert scores["frames"] == len(truth) and scores["f1"] >= 0.8 and scores["char_accuracy"] >= 0.8
    last = cv2.imread(str(out / "last.png"))
    amber = (last[..., 2] > 200) & (last[..., 1] > 150) & (last[..., 0] < 60)
    assert amber.sum() > 200  # the boxes are drawn


def test_headless_chromium_shows_the_boxes_and_the_text_read(convert_example, signs_video, tmp_path):
    from edgeship.report.demo_table import viewer_screenshot

    video, _ = signs_video
    detector, recognizer = convert_example("ppocr-det", "onnx", "int8"), convert_example("ppocr-rec", "onnx", "int8")
    shot = viewer_screenshot(detector, video, tmp_path, seconds=120, text_model=recognizer)
    screen = cv2.imread(shot["screenshot"])
    amber = (screen[..., 2] > 200) & (screen[..., 1] > 150) & (screen[..., 0] < 60)
    assert amber.sum() > 200, "no box drawn in the screenshot"
    assert "recognize" in shot["stats_text"] or "FPS" in shot["stats_text"]
    kept = ROOT / "results" / "tests"
    kept.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot["screenshot"], kept / "demo-viewer-ocr.png")


def test_a_recognizer_needs_a_detector_first(convert_example, tmp_path):
    digits, recognizer = convert_example("digits", "onnx", "fp32"), convert_example("ppocr-rec", "onnx", "int8")
    result = demo(digits, "--rec", recognizer, "--source", "pattern", "--frames", "2", "--output", tmp_path / "stats.json")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--rec reads the boxes a text detector finds, but" in lines[0] and "task is classify" in lines[0]


def test_headless_chromium_shows_hand_landmarks_and_face_boxes_from_the_boards_cpu_artifacts(convert_example, tmp_path):
    """MediaPipe's hand landmarks and BlazeFace as the boards run them where no accelerator is (the
    tflite target's fp32 artifacts of their TFLite sources, fp16 weights widened): the viewer shows the
    hand skeleton drawn over crops fp32 takes for a hand, and a box on each face."""
    from edgeship.report.demo_table import viewer_screenshot
    from edgeship.report.media import BOX_AMBER, SKELETON_BLUE, colour_share, face_video, hand_video

    kept = ROOT / "results" / "tests"
    kept.mkdir(parents=True, exist_ok=True)
    for example, (video, frames), colour, task in (("hand-landmark", hand_video(tmp_path / "hands.avi"), SKELETON_BLUE, "keypoints"),
                                                   ("face-detection", face_video(tmp_path / "faces.avi"), BOX_AMBER, "detect")):
        artifact = convert_example(example, "tflite", "fp32")
        manifest = json.loads((artifact / "manifest.json").read_text())
        assert manifest["accuracy"]["passed"] and manifest["task"]["name"] == task
        shot = viewer_screenshot(artifact, video, tmp_path / example, seconds=120)
        screen = cv2.imread(shot["screenshot"])
        source = max(colour_share(frame, *colour) for frame in frames)
        drawn = colour_share(screen, *colour)
        print(f"{example}: {drawn:.4f} of the screenshot in the overlay's colour, at most {source:.4f} of a source frame")
        assert drawn > 3 * source + 0.001, f"{example}: nothing drawn in the screenshot"
        stats = json.loads((tmp_path / example / "viewer-stats.json").read_text())
        assert stats["task"] == task and stats["frames"]["processed"] > 0
        shutil.copy(shot["screenshot"], kept / f"demo-viewer-{example}.png")
