"""Published latency figures of the same networks on the boards edgeship targets, with their
source, to read beside what a run measured. They are NOT measured here, and the report says so.

A figure is shown beside a measured row only where the hardware matches: a real board of that
family (not a simulated one, not under emulation), running on the accelerator the figure was
published for (not a CPU fallback), the same network at the same input shape and precision.
Rows of the same network on the figure's runtime that are not that hardware (a simulated board,
which is a container on the controller's CPU; an emulated one; the controller; another precision)
are listed in the published table's "beside" column instead, each labelled with how it differs
(`alongside`): the runtimes compared side by side, never a figure of the board.
Our example networks have the published architectures (MobileNetV2 at 224x224, YOLOv8n and
YOLO11n at 640x640, PP-OCRv4 at the shapes below) but, for MobileNetV2 and the YOLOs, fixed-seed
random weights: latency is comparable, accuracy is not.

Each figure names where it was read (a vendor's README or documentation page, at the version or
commit that held it) and what the publisher measured (model execution only, one NPU core, ...).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class PublishedFigure:
    board: str                  # as the publisher names the hardware
    board_match: tuple[str, ...]  # device-tree compatible strings (any one) of that hardware
    model_match: str            # which board model strings qualify ("" = any board with a matching compatible)
    accelerator: str            # as the board runtime names it: rknpu, nvidia_gpu, edgetpu, cpu
    backends: tuple[str, ...]   # edgeship runtime backends that run on it
    model: str                  # edgeship's example model name
    published_model: str        # the publisher's name for it
    input_shape: tuple[int, ...]  # NCHW, as our ONNX source takes it
    precision: str              # edgeship's quantization mode that corresponds
    latency_ms: float
    fps: float | None
    conditions: str             # what the publisher measured
    source: str                 # who published it, where
    url: str

    def as_dict(self) -> dict:
        return {**asdict(self), "label": "published, not measured here"}


RKNN_ZOO = ("Rockchip, rknn_model_zoo v1.6.0 README, \"Model performance benchmark (FPS)\"",
            "https://github.com/airockchip/rknn_model_zoo/blob/eaa94d6f57ca553d493bf3bd7399a070452d2774/README.md")
RKNN_CONDITIONS = "RK3588 @single_core, maximum NPU frequency; model inference only, no pre- or post-processing"
RK3588 = ("rockchip,rk3588", "rockchip,rk3588s")
CORAL = ("Google Coral, \"Edge TPU performance benchmarks\", Table 1 (time per inference)", "https://coral.ai/docs/edgetpu/benchmarks/")
ULTRALYTICS_JETSON = ("Ultralytics docs, \"Quick Start Guide: NVIDIA Jetson\", YOLO11 benchmarks on Jetson Orin Nano Super Developer Kit "
                      "(Ultralytics 8.3.51, JetPack 6.1)",
                      "https://github.com/ultralytics/ultralytics/blob/01007503ffb223506d5b4b76d69e1e7145f49693/docs/en/guides/nvidia-jetson.md")
ULTRALYTICS_RPI = ("Ultralytics docs, \"Quick Start Guide: Raspberry Pi\", Raspberry Pi 5 YOLO11 benchmarks (Ultralytics 8.3.39)",
                   "https://github.com/ultralytics/ultralytics/blob/01007503ffb223506d5b4b76d69e1e7145f49693/docs/en/guides/raspberry-pi.md")
ULTRALYTICS_CONDITIONS = "`yolo benchmark` on COCO8 at 640, inference time per image"
PI5 = ("raspberrypi,5-model-b", "brcm,bcm2712")


ACCELERATORS = {"rknpu": "NPU", "nvidia_gpu": "GPU", "edgetpu": "Edge TPU", "cpu": "CPU"}


def _fps(fps: float) -> float:
    return round(1000.0 / fps, 2)


FIGURES: tuple[PublishedFigure, ...] = (
    PublishedFigure("Rockchip RK3588 NPU (one core)", RK3588, "", "rknpu", ("rknnlite",), "mobilenetv2", "mobilenetv2-12",
                    (1, 3, 224, 224), "int8", _fps(433.0), 433.0, RKNN_CONDITIONS, *RKNN_ZOO),
    PublishedFigure("Rockchip RK3588 NPU (one core)", RK3588, "", "rknpu", ("rknnlite",), "yolov8n", "yolov8n",
                    (1, 3, 640, 640), "int8", _fps(59.6), 59.6, RKNN_CONDITIONS, *RKNN_ZOO),
    PublishedFigure("Rockchip RK3588 NPU (one core)", RK3588, "", "rknpu", ("rknnlite",), "ppocr-det", "ppocrv4_det",
                    (1, 3, 480, 480), "int8", _fps(43.0), 43.0, RKNN_CONDITIONS, *RKNN_ZOO),
    PublishedFigure("Rockchip RK3588 NPU (one core)", RK3588, "", "rknpu", ("rknnlite",), "ppocr-rec", "ppocrv4_rec",
                    (1, 3, 48, 320), "fp16", _fps(35.7), 35.7, RKNN_CONDITIONS, *RKNN_ZOO),
    PublishedFigure("Coral Dev Board (Edge TPU)", ("fsl,imx8mq-phanbell",), "", "edgetpu", ("edgetpu",), "mobilenetv2", "MobileNet v2 (224x224)",
                    (1, 3, 224, 224), "int8", 2.6, None,
                    "TensorFlow Lite model compiled for the Edge TPU, C++ benchmark; model execution only, no input processing", *CORAL),
    PublishedFigure("NVIDIA Jetson Orin Nano Super Developer Kit (GPU)", ("nvidia,tegra234",), "orin nano", "nvidia_gpu", ("tensorrt",), "yolo11n",
                    "YOLO11n TensorRT (FP16)", (1, 3, 640, 640), "fp16", 4.91, None, ULTRALYTICS_CONDITIONS, *ULTRALYTICS_JETSON),
    PublishedFigure("NVIDIA Jetson Orin Nano Super Developer Kit (GPU)", ("nvidia,tegra234",), "orin nano", "nvidia_gpu", ("tensorrt",), "yolo11n",
                    "YOLO11n TensorRT (FP32)", (1, 3, 640, 640), "fp32", 7.60, None, ULTRALYTICS_CONDITIONS, *ULTRALYTICS_JETSON),
    PublishedFigure("NVIDIA Jetson Orin Nano Super Developer Kit (GPU)", ("nvidia,tegra234",), "orin nano", "nvidia_gpu", ("tensorrt",), "yolo11n",
                    "YOLO11n TensorRT (INT8)", (1, 3, 640, 640), "int8", 3.91, None, ULTRALYTICS_CONDITIONS, *ULTRALYTICS_JETSON),
    PublishedFigure("Raspberry Pi 5 (CPU)", PI5, "", "cpu", ("litert",), "yolo11n",
                    "YOLO11n TF Lite (FP32)", (1, 3, 640, 640), "fp32", 317.398, None, ULTRALYTICS_CONDITIONS, *ULTRALYTICS_RPI),
    PublishedFigure("Raspberry Pi 5 (CPU)", PI5, "", "cpu", ("onnxruntime",), "yolo11n",
                    "YOLO11n ONNX (FP32)", (1, 3, 640, 640), "fp32", 168.082, None, ULTRALYTICS_CONDITIONS, *ULTRALYTICS_RPI),
    # Ultralytics exports these three at full precision (half=False, its default): fp32 as published
    PublishedFigure("Raspberry Pi 5 (CPU)", PI5, "", "cpu", ("openvino",), "yolo11n",
                    "YOLO11n OpenVINO (FP32)", (1, 3, 640, 640), "fp32", 81.192, None, ULTRALYTICS_CONDITIONS, *ULTRALYTICS_RPI),
    PublishedFigure("Raspberry Pi 5 (CPU)", PI5, "", "cpu", ("ncnn",), "yolo11n",
                    "YOLO11n NCNN (FP32)", (1, 3, 640, 640), "fp32", 88.026, None, ULTRALYTICS_CONDITIONS, *ULTRALYTICS_RPI),
    PublishedFigure("Raspberry Pi 5 (CPU)", PI5, "", "cpu", ("mnn",), "yolo11n",
                    "YOLO11n MNN (FP32)", (1, 3, 640, 640), "fp32", 112.554, None, ULTRALYTICS_CONDITIONS, *ULTRALYTICS_RPI),
)


def _shape_of(row: dict) -> tuple[int, ...] | None:
    shapes = list((row.get("input_shapes") or {}).values())
    return tuple(int(d) for d in shapes[0]) if len(shapes) == 1 else None


def why_not(figure: PublishedFigure, row: dict) -> str | None:
    """None when `figure` describes the same hardware, network, shape and mode as the measured `row`; else the first difference."""
    if row.get("model") != figure.model:
        return "another network"
    if not row.get("board") or row.get("source") != "board":
        return "not run on a board"
    if row.get("simulated") or row.get("emulated"):
        return "a simulated board (a container on the controller), not the hardware"
    if not set(row.get("compatible") or ()) & set(figure.board_match) or figure.model_match not in str(row.get("board_model") or "").lower():
        return "another board"
    if row.get("fallback") or row.get("accelerator") != figure.accelerator or row.get("backend") not in figure.backends:
        return f"not on the {ACCELERATORS[figure.accelerator]}"
    if _shape_of(row) not in (None, figure.input_shape):
        return f"input {list(_shape_of(row) or ())} differs from {list(figure.input_shape)}"
    if row.get("quant") != figure.precision:
        return f"{row.get('quant')} here, {figure.precision} published"
    return None


def matching(row: dict) -> list[PublishedFigure]:
    """The published figures that may stand beside this measured row (same hardware, network, shape and mode)."""
    return [figure for figure in FIGURES if why_not(figure, row) is None]


def for_models(models: set[str]) -> list[PublishedFigure]:
    """Every figure of these networks, for the report's reference table."""
    return [figure for figure in FIGURES if figure.model in models]


def _target_backend(target) -> str | None:
    """The runtime backend of a target's artifacts (a row that no board ran names no backend)."""
    import targets

    known = targets.TARGETS.get(str(target))
    return known.runtime_backend if known else None


def alongside(figure: PublishedFigure, row: dict) -> str | None:
    """How a measured row of the figure's network and runtime differs from what was published (the
    label it is listed with beside the figure); None for a row of another network or runtime, and
    one that matches outright (`matching`). A conversion no board ran is listed too, labelled."""
    if row.get("model") != figure.model or (row.get("backend") or _target_backend(row.get("target"))) not in figure.backends:
        return None
    if why_not(figure, row) is None:
        return None
    if row.get("mean_ms") is None:
        kind = "converted here; no such hardware ran it"
    elif row.get("source") != "board":
        kind = "this machine's CPU, not the board"
    elif row.get("emulated"):
        kind = "emulated board (qemu), not the hardware"
    elif row.get("simulated"):
        kind = "simulated board: a container on this machine's CPU, not the hardware"
    elif row.get("fallback") or row.get("accelerator") != figure.accelerator:
        kind = f"not on the {ACCELERATORS[figure.accelerator]}"
    else:
        kind = why_not(figure, row) or ""
    precision = "" if row.get("quant") == figure.precision else f", {row.get('quant')} here, {figure.precision} published"
    return f"{kind}{precision}"
