"""YOLO-shaped object detectors with fixed-seed RANDOM weights, for latency work only.

- yolov8n: the YOLOv8n architecture (Ultralytics' yolov8.yaml at scale n: depth 0.33, width
  0.25) with C2f blocks, SPPF, the upsample+concat PAN neck and the anchor-free Detect head.
- yolo11n: the YOLO11n architecture (yolo11.yaml at scale n: depth 0.5, width 0.25) with C3k2
  blocks, the C2PSA attention block and the depthwise classification branch of its head.

Both take a 1x3x640x640 RGB/255 letterboxed image (`images`) and decode boxes inside the graph,
as Ultralytics' ONNX export does: `output0` is [1, 84, 8400], per anchor (cx, cy, w, h) in input
pixels then 80 sigmoid class scores. Nothing is downloaded and Ultralytics is not used (its code
fetches fonts and assets at run time): the layers are written here from the published layer
tables. The weights are random, so the outputs mean nothing and no accuracy claim can be made;
BatchNorm statistics come from scikit-image photos so activations, and therefore quantization,
have realistic ranges. The task's threshold is 0.01 so that fp32 finds boxes to judge a conversion by
(see TASK).

Each lands in examples/<name>/: model.onnx, calib/NNN.npy (16 letterboxed photo crops),
eval.npz (4 crops of other photos, no labels), labels.txt, preprocess.json, task.json and
metadata.json.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from types import SimpleNamespace

import numpy as np

from edgeship.examples.common import GeneratorVersion, write_metadata

SEED = 0
IMAGE_SIZE = 640
NUM_CLASSES = 80
DFL_BINS = 16  # Ultralytics' reg_max: each box side is a distribution over 16 distances
STRIDES = (8, 16, 32)  # P3, P4, P5
LETTERBOX_FILL = 114  # the grey Ultralytics pads letterboxed images with
INPUT_NAME, OUTPUT_NAME = "images", "output0"  # the names Ultralytics' ONNX export uses
CALIBRATION_SAMPLES, EVAL_SAMPLES = 16, 4
CALIBRATION_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "hubble_deep_field", "immunohistochemistry")
EVAL_PHOTOS = ("stereo_motorcycle", "retina", "clock", "colorwheel")
# conf 0.01, not Ultralytics' 0.25: these random weights score nearly every cell far below 0.25 on the
# reference photos (YOLOv8n finds no box there, YOLO11n one: F1 against fp32 over nothing), and at 0.01
# fp32 finds 30 (YOLOv8n) and about 50 (YOLO11n) boxes on the first eval photo. A trained model wants 0.25 back (--task or task.json).
TASK = {"name": "detect", "decoder": "yolov8", "conf": 0.01, "iou": 0.45}
PREPROCESS = {"color": "rgb", "scale": 1 / 255, "resize": "letterbox"}
# Every op the exported graphs may hold: the ones all four toolchains (onnx2tf, ONNX Runtime,
# rknn-toolkit2, TensorRT) take. Anything else (Mod, NonZero, shape arithmetic left unfolded...)
# fails the build rather than a conversion much later.
PORTABLE_OPS = frozenset({"Conv", "Sigmoid", "Mul", "Add", "Sub", "Div", "Concat", "Split", "MaxPool", "Resize",
                          "Reshape", "Transpose", "Softmax", "MatMul", "Constant",
                          "Identity"})  # the exporter aliases identical initialisers (the box biases) with Identity

# (from, repeats, block, arguments) rows of Ultralytics' model yaml files, before depth/width
# scaling; `from` is -1 (the previous layer) or the indices whose outputs a Concat/Detect takes.
YOLOV8_LAYERS = (
    (-1, 1, "Conv", (64, 3, 2)),  # 0 P1/2
    (-1, 1, "Conv", (128, 3, 2)),  # 1 P2/4
    (-1, 3, "C2f", (128, True)),
    (-1, 1, "Conv", (256, 3, 2)),  # 3 P3/8
    (-1, 6, "C2f", (256, True)),
    (-1, 1, "Conv", (512, 3, 2)),  # 5 P4/16
    (-1, 6, "C2f", (512, True)),
    (-1, 1, "Conv", (1024, 3, 2)),  # 7 P5/32
    (-1, 3, "C2f", (1024, True)),
    (-1, 1, "SPPF", (1024, 5)),  # 9
    (-1, 1, "Upsample", ()),
    ((-1, 6), 1, "Concat", ()),
    (-1, 3, "C2f", (512,)),  # 12
    (-1, 1, "Upsample", ()),
    ((-1, 4), 1, "Concat", ()),
    (-1, 3, "C2f", (256,)),  # 15 P3 out
    (-1, 1, "Conv", (256, 3, 2)),
    ((-1, 12), 1, "Concat", ()),
    (-1, 3, "C2f", (512,)),  # 18 P4 out
    (-1, 1, "Conv", (512, 3, 2)),
    ((-1, 9), 1, "Concat", ()),
    (-1, 3, "C2f", (1024,)),  # 21 P5 out
    ((15, 18, 21), 1, "Detect", ()),
)
YOLO11_LAYERS = (
    (-1, 1, "Conv", (64, 3, 2)),  # 0 P1/2
    (-1, 1, "Conv", (128, 3, 2)),  # 1 P2/4
    (-1, 2, "C3k2", (256, False, 0.25)),
    (-1, 1, "Conv", (256, 3, 2)),  # 3 P3/8
    (-1, 2, "C3k2", (512, False, 0.25)),
    (-1, 1, "Conv", (512, 3, 2)),  # 5 P4/16
    (-1, 2, "C3k2", (512, True)),
    (-1, 1, "Conv", (1024, 3, 2)),  # 7 P5/32
    (-1, 2, "C3k2", (1024, True)),
    (-1, 1, "SPPF", (1024, 5)),  # 9
    (-1, 2, "C2PSA", ()),  # 10
    (-1, 1, "Upsample", ()),
    ((-1, 6), 1, "Concat", ()),
    (-1, 2, "C3k2", (512, False)),  # 13
    (-1, 1, "Upsample", ()),
    ((-1, 4), 1, "Concat", ()),
    (-1, 2, "C3k2", (256, False)),  # 16 P3 out
    (-1, 1, "Conv", (256, 3, 2)),
    ((-1, 13), 1, "Concat", ()),
    (-1, 2, "C3k2", (512, False)),  # 19 P4 out
    (-1, 1, "Conv", (512, 3, 2)),
    ((-1, 10), 1, "Concat", ()),
    (-1, 2, "C3k2", (1024, True)),  # 22 P5 out
    ((16, 19, 22), 1, "Detect", ()),
)


@dataclass(frozen=True)
class Architecture:
    title: str
    layers: tuple
    depth: float  # repeats multiplier
    width: float  # channels multiplier
    max_channels: int
    depthwise_class_branch: bool  # YOLO11's head (Ultralytics' legacy=False); YOLOv8's has full 3x3 convs
    reference_parameters: int  # Ultralytics' model summary (the yaml's comment for this scale), BatchNorm included
    reference_gflops: float  # Ultralytics' fused summary at 640 (BatchNorm folded away, as in the export)


ARCHITECTURES = {
    "yolov8n": Architecture("YOLOv8n", YOLOV8_LAYERS, 0.33, 0.25, 1024, False, 3_157_200, 8.7),
    "yolo11n": Architecture("YOLO11n", YOLO11_LAYERS, 0.50, 0.25, 1024, True, 2_624_080, 6.5),
}


@functools.cache
def _blocks() -> SimpleNamespace:
    """The building blocks, defined on first use so importing edgeship.examples does not import torch."""
    import torch

    nn = torch.nn

    class Conv(nn.Module):
        """Conv2d (no bias) -> BatchNorm -> SiLU, 'same' padding."""

        def __init__(self, c_in, c_out, kernel=1, stride=1, groups=1, act=True):
            super().__init__()
            self.conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False)
            self.bn = nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.03)  # Ultralytics' BatchNorm settings
            self.act = nn.SiLU() if act else nn.Identity()

        def forward(self, x):
            return self.act(self.bn(self.conv(x)))

    class Bottleneck(nn.Module):
        def __init__(self, c_in, c_out, shortcut=True, expansion=0.5):
            super().__init__()
            hidden = int(c_out * expansion)
            self.cv1, self.cv2 = Conv(c_in, hidden, 3), Conv(hidden, c_out, 3)
            self.add = shortcut and c_in == c_out

        def forward(self, x):
            return x + self.cv2(self.cv1(x)) if self.add else self.cv2(self.cv1(x))

    class C2f(nn.Module):
        """Split in two, chain bottlenecks on one half, concatenate every intermediate, 1x1 conv."""

        def __init__(self, c_in, c_out, repeats=1, shortcut=False, expansion=0.5):
            super().__init__()
            self.c = int(c_out * expansion)
            self.cv1 = Conv(c_in, 2 * self.c)
            self.cv2 = Conv((2 + repeats) * self.c, c_out)
            self.m = nn.ModuleList(self._inner(shortcut) for _ in range(repeats))

        def _inner(self, shortcut):
            return Bottleneck(self.c, self.c, shortcut, expansion=1.0)

        def forward(self, x):
            parts = list(self.cv1(x).split((self.c, self.c), 1))  # sizes, not chunk(): chunk exports as shape arithmetic
            for block in self.m:
                parts.append(block(parts[-1]))
            return self.cv2(torch.cat(parts, 1))

    class C3k(nn.Module):
        """CSP bottleneck with 3 convs (YOLOv5's C3) and 3x3 inner bottlenecks."""

        def __init__(self, c_in, c_out, repeats=2, shortcut=True):
            super().__init__()
            hidden = c_out // 2
            self.cv1, self.cv2, self.cv3 = Conv(c_in, hidden), Conv(c_in, hidden), Conv(2 * hidden, c_out)
            self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut, expansion=1.0) for _ in range(repeats)))

        def forward(self, x):
            return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))

    class C3k2(C2f):
        """C2f whose inner blocks are C3k (c3k=True) or half-width bottlenecks."""

        def __init__(self, c_in, c_out, repeats=1, c3k=False, expansion=0.5, shortcut=True):
            self.c3k = c3k
            super().__init__(c_in, c_out, repeats, shortcut, expansion)

        def _inner(self, shortcut):
            return C3k(self.c, self.c, 2, shortcut) if self.c3k else Bottleneck(self.c, self.c, shortcut)

    class SPPF(nn.Module):
        """Spatial pyramid pooling, fast: three chained 5x5 max pools, all four maps concatenated."""

        def __init__(self, c_in, c_out, kernel=5):
            super().__init__()
            hidden = c_in // 2
            self.cv1, self.cv2 = Conv(c_in, hidden), Conv(hidden * 4, c_out)
            self.m = nn.MaxPool2d(kernel, 1, kernel // 2)

        def forward(self, x):
            maps = [self.cv1(x)]
            for _ in range(3):
                maps.append(self.m(maps[-1]))
            return self.cv2(torch.cat(maps, 1))

    class Attention(nn.Module):
        """Multi-head self-attention over all positions, plus a depthwise 3x3 positional term."""

        def __init__(self, channels, heads, key_ratio=0.5):
            super().__init__()
            self.heads, self.head_dim = heads, channels // heads
            self.key_dim = int(self.head_dim * key_ratio)
            self.scale = self.key_dim ** -0.5
            self.qkv = Conv(channels, channels + 2 * self.key_dim * heads, act=False)
            self.proj = Conv(channels, channels, act=False)
            self.pe = Conv(channels, channels, 3, groups=channels, act=False)

        def forward(self, x):
            batch, channels, height, width = x.shape
            q, k, v = self.qkv(x).view(batch, self.heads, 2 * self.key_dim + self.head_dim, height * width).split(
                [self.key_dim, self.key_dim, self.head_dim], dim=2)
            attention = ((q.transpose(-2, -1) @ k) * self.scale).softmax(dim=-1)
            v_map = v.reshape(batch, channels, height, width)
            return self.proj((v @ attention.transpose(-2, -1)).view(batch, channels, height, width) + self.pe(v_map))

    class PSABlock(nn.Module):
        def __init__(self, channels, heads):
            super().__init__()
            self.attn = Attention(channels, heads)
            self.ffn = nn.Sequential(Conv(channels, channels * 2), Conv(channels * 2, channels, act=False))

        def forward(self, x):
            x = x + self.attn(x)
            return x + self.ffn(x)

    class C2PSA(nn.Module):
        def __init__(self, c_in, c_out, repeats=1):
            super().__init__()
            if c_in != c_out:
                raise ValueError(f"C2PSA keeps its channel count: got {c_in} in, {c_out} out")
            self.c = c_in // 2
            self.cv1, self.cv2 = Conv(c_in, 2 * self.c), Conv(2 * self.c, c_in)
            self.m = nn.Sequential(*(PSABlock(self.c, heads=self.c // 64) for _ in range(repeats)))

        def forward(self, x):
            a, b = self.cv1(x).split((self.c, self.c), dim=1)
            return self.cv2(torch.cat((a, self.m(b)), 1))

    class Concat(nn.Module):
        def forward(self, inputs):
            return torch.cat(inputs, 1)

    class Detect(nn.Module):
        """Anchor-free head: per level a box branch (4 x 16 DFL logits) and a class branch, decoded in
        the graph the way Ultralytics' export does it, so `output0` is ready for NMS."""

        def __init__(self, channels, depthwise_class_branch, image_size):
            super().__init__()
            box_hidden = max(16, channels[0] // 4, 4 * DFL_BINS)
            class_hidden = max(channels[0], min(NUM_CLASSES, 100))

            def class_branch(c):
                if not depthwise_class_branch:
                    return nn.Sequential(Conv(c, class_hidden, 3), Conv(class_hidden, class_hidden, 3), nn.Conv2d(class_hidden, NUM_CLASSES, 1))
                return nn.Sequential(nn.Sequential(Conv(c, c, 3, groups=c), Conv(c, class_hidden)),
                                     nn.Sequential(Conv(class_hidden, class_hidden, 3, groups=class_hidden), Conv(class_hidden, class_hidden)),
                                     nn.Conv2d(class_hidden, NUM_CLASSES, 1))

            self.cv2 = nn.ModuleList(nn.Sequential(Conv(c, box_hidden, 3), Conv(box_hidden, box_hidden, 3), nn.Conv2d(box_hidden, 4 * DFL_BINS, 1))
                                     for c in channels)
            self.cv3 = nn.ModuleList(class_branch(c) for c in channels)
            # DFL: the expected distance under each side's softmax, as a fixed 1x1 conv with weights 0..15.
            # Counted as parameters, as Ultralytics counts it.
            self.dfl = nn.Conv2d(DFL_BINS, 1, 1, bias=False).requires_grad_(False)
            self.dfl.weight.data[:] = torch.arange(DFL_BINS, dtype=torch.float32).view(1, DFL_BINS, 1, 1)
            # Ultralytics' bias initialisation: class scores start near 0.01 objects per image.
            for box_branch, class_branch_, stride in zip(self.cv2, self.cv3, STRIDES):
                cast(Any, box_branch)[-1].bias.data[:] = 2.0  # a Sequential: its last layer is the 1x1 conv
                cast(Any, class_branch_)[-1].bias.data[:] = math.log(5 / NUM_CLASSES / (640 / stride) ** 2)
            # Anchor centres (in grid cells) and strides for the fixed input size, computed once here
            # so the graph holds constants instead of shape arithmetic.
            self.grid_sizes = [image_size // stride for stride in STRIDES]
            centres, strides = [], []
            for size, stride in zip(self.grid_sizes, STRIDES):
                cells = torch.arange(size, dtype=torch.float32) + 0.5
                y, x = torch.meshgrid(cells, cells, indexing="ij")
                centres.append(torch.stack((x, y)).view(2, -1))
                strides.append(torch.full((1, size * size), float(stride)))
            self.register_buffer("anchors", torch.cat(centres, 1)[None], persistent=False)  # 1, 2, A
            self.register_buffer("strides", torch.cat(strides, 1)[None], persistent=False)  # 1, 1, A
            self.anchor_count = int(cast(Any, self.anchors).shape[-1])

        def forward(self, features):
            box_logits = torch.cat([branch(f).view(-1, 4 * DFL_BINS, size * size)
                                    for branch, f, size in zip(self.cv2, features, self.grid_sizes)], 2)
            class_logits = torch.cat([branch(f).view(-1, NUM_CLASSES, size * size)
                                      for branch, f, size in zip(self.cv3, features, self.grid_sizes)], 2)
            bins = box_logits.view(-1, 4, DFL_BINS, self.anchor_count).transpose(2, 1).softmax(1)
            distances = self.dfl(bins).view(-1, 4, self.anchor_count)  # left, top, right, bottom in cells
            left_top, right_bottom = distances.split((2, 2), 1)
            top_left_corner, bottom_right_corner = self.anchors - left_top, self.anchors + right_bottom
            centre, size = (top_left_corner + bottom_right_corner) / 2, bottom_right_corner - top_left_corner
            return torch.cat((torch.cat((centre, size), 1) * cast(Any, self.strides), class_logits.sigmoid()), 1)

    class Network(nn.Module):
        """The layers of one table in order; each remembers where its input comes from."""

        def __init__(self, layers, sources):
            super().__init__()
            self.layers = nn.ModuleList(layers)
            self.sources = sources
            self.kept = {index for source in sources if isinstance(source, tuple) for index in source if index >= 0}

        def forward(self, x):
            outputs: list = []
            for layer, source in zip(self.layers, self.sources):
                if isinstance(source, tuple):
                    x = layer([x if index == -1 else outputs[index] for index in source])
                else:
                    x = layer(x)
                outputs.append(x if len(outputs) in self.kept else None)
            return x

    return SimpleNamespace(torch=torch, Conv=Conv, C2f=C2f, C3k2=C3k2, SPPF=SPPF, C2PSA=C2PSA, Concat=Concat,
                           Detect=Detect, Network=Network)


def yolo_network(name: str, image_size: int = IMAGE_SIZE):
    """The named architecture (a key of ARCHITECTURES) as a torch module with torch's default
    random initialisation (seed it first for fixed weights), BatchNorm statistics untouched."""
    architecture = ARCHITECTURES[name]
    blocks = _blocks()

    def scaled_channels(channels):
        return math.ceil(min(channels, architecture.max_channels) * architecture.width / 8) * 8

    channels, layers, sources = [3], [], []
    for source, repeats, block, arguments in architecture.layers:
        repeats = max(round(repeats * architecture.depth), 1) if repeats > 1 else repeats
        c_in = channels[source] if isinstance(source, int) else None
        if block == "Conv":
            c_out, kernel, stride = scaled_channels(arguments[0]), arguments[1], arguments[2]
            layer = blocks.Conv(c_in, c_out, kernel, stride)
        elif block in ("C2f", "C3k2"):
            c_out = scaled_channels(arguments[0])
            layer = getattr(blocks, block)(c_in, c_out, repeats, *arguments[1:])
        elif block == "SPPF":
            c_out = scaled_channels(arguments[0])
            layer = blocks.SPPF(c_in, c_out, arguments[1])
        elif block == "C2PSA":
            c_out = c_in
            layer = blocks.C2PSA(c_in, c_out, repeats)
        elif block == "Upsample":
            c_out = c_in
            layer = blocks.torch.nn.Upsample(scale_factor=2, mode="nearest")
        elif block == "Concat":
            c_out = sum(channels[index] if index == -1 else channels[index + 1] for index in source)
            layer = blocks.Concat()
        elif block == "Detect":
            c_out = 4 + NUM_CLASSES
            layer = blocks.Detect([channels[index + 1] for index in source], architecture.depthwise_class_branch, image_size)
        else:
            raise ValueError(f"{name}: unknown block {block!r} in its layer table")
        layers.append(layer)
        sources.append(source)
        channels.append(c_out)
    return blocks.Network(layers, sources)


def parameter_count(model) -> int:
    """Every parameter, the fixed DFL weights included: the figure Ultralytics' model summary prints."""
    return sum(parameter.numel() for parameter in model.parameters())


def _photo(name: str) -> np.ndarray:
    """A scikit-image photo as HxWx3 uint8 RGB (grey photos repeated over three channels)."""
    import skimage.data

    image = getattr(skimage.data, name)()
    image = image[0] if isinstance(image, tuple) else image  # stereo pairs: the left view
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])


def letterbox(image: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """Scale the longer side to `size` (bilinear, as Ultralytics' LetterBox), centre on grey 114."""
    import cv2

    height, width = image.shape[:2]
    scale = size / max(height, width)
    new_height, new_width = round(height * scale), round(width * scale)
    resized = cv2.resize(image, (new_width, new_height), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((size, size, 3), LETTERBOX_FILL, np.uint8)
    top, left = (size - new_height) // 2, (size - new_width) // 2
    canvas[top:top + new_height, left:left + new_width] = resized
    return canvas


def letterboxed_crops(names, count: int, rng: np.random.Generator) -> np.ndarray:
    """Random crops (half to all of each side, so the aspect ratio and the padding vary), letterboxed
    to 640x640, RGB/255, NCHW float32."""
    samples = []
    for index in range(count):
        photo = _photo(names[index % len(names)])
        height, width = photo.shape[:2]
        crop_height, crop_width = round(height * rng.uniform(0.5, 1.0)), round(width * rng.uniform(0.5, 1.0))
        top, left = rng.integers(0, height - crop_height + 1), rng.integers(0, width - crop_width + 1)
        crop = photo[top:top + crop_height, left:left + crop_width]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        samples.append(letterbox(np.ascontiguousarray(crop)).transpose(2, 0, 1))
    return (np.stack(samples).astype(np.float32) / 255.0).astype(np.float32)


def _export(torch, model, path: Path) -> None:
    import warnings

    import onnx

    model.eval()
    # The TorchScript exporter needs no extra packages, folds BatchNorm into the convolutions, and
    # opset 13 is within every vendor toolchain's range (the same choice as the classic examples).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is deprecated, not gone
        torch.onnx.export(model, (torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE),), str(path), dynamo=False, opset_version=13,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], do_constant_folding=True)
    graph = onnx.load(str(path)).graph
    foreign = sorted({node.op_type for node in graph.node} - PORTABLE_OPS)
    if foreign:
        raise RuntimeError(f"{path}: the export holds ops not every edge toolchain takes: {', '.join(foreign)}; "
                           "rewrite the layers that make them with static shapes")


def _check_runs(path: Path, sample: np.ndarray) -> np.ndarray:
    """Run the export once in ONNX Runtime: it must load and give [1, 84, 8400]."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (output,) = session.run([OUTPUT_NAME], {INPUT_NAME: sample})
    expected = (1, 4 + NUM_CLASSES, sum((IMAGE_SIZE // stride) ** 2 for stride in STRIDES))
    if output.shape != expected:
        raise RuntimeError(f"{path}: output {OUTPUT_NAME} has shape {list(output.shape)}, expected {list(expected)}")
    return output


def _build(name: str, folder: Path) -> Path:
    import torch

    architecture = ARCHITECTURES[name]
    torch.manual_seed(SEED)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # one thread: the same float summation order on every run
    try:
        model = yolo_network(name)
        rng = np.random.default_rng(SEED)
        calibration = letterboxed_crops(CALIBRATION_PHOTOS, CALIBRATION_SAMPLES, rng)
        eval_inputs = letterboxed_crops(EVAL_PHOTOS, EVAL_SAMPLES, rng)
        # Random weights give exploding or vanishing activations; BatchNorm statistics measured on
        # real photos bring every layer back to a realistic range, so quantization behaves as it
        # would on a trained network (the outputs are still meaningless).
        model.train()
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = None  # cumulative average over the photo batch
        with torch.no_grad():
            model(torch.from_numpy(calibration))
        model.eval()
        from torch.utils.flop_counter import FlopCounterMode

        with torch.no_grad(), FlopCounterMode(display=False) as flop_counter:
            model(torch.from_numpy(eval_inputs[:1]))
        gflops = flop_counter.get_total_flops() / 1e9
        folder.mkdir(parents=True)
        _export(torch, model, folder / "model.onnx")
    finally:  # the caller's torch settings, as they were
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    output = _check_runs(folder / "model.onnx", eval_inputs[:1])

    (folder / "calib").mkdir()
    for index, sample in enumerate(calibration):
        np.save(folder / "calib" / f"{index:03d}.npy", sample[None])
    np.savez(folder / "eval.npz", **{INPUT_NAME: eval_inputs})  # type: ignore[arg-type]  # numpy types **kwds as allow_pickle
    labels = [f"class_{index}" for index in range(NUM_CLASSES)]  # random weights: no class has a meaning
    (folder / "labels.txt").write_text("\n".join(labels) + "\n")
    # what `invoke convert --preprocess` records in the artifact, for the camera demo
    (folder / "preprocess.json").write_text(json.dumps(PREPROCESS, indent=2) + "\n")
    (folder / "task.json").write_text(json.dumps(TASK, indent=2) + "\n")
    anchors = output.shape[-1]
    write_metadata(folder, {
        "name": name,
        "description": f"{architecture.title} architecture (640x640x3) with fixed-seed RANDOM weights, for latency only: "
                       "outputs are meaningless and no accuracy claim can be made; BatchNorm statistics measured on "
                       "scikit-image photos.",
        "weights": f"RANDOM weights, for latency only (torch seed {SEED})",
        "architecture": {"title": architecture.title, "depth": architecture.depth, "width": architecture.width,
                         "max_channels": architecture.max_channels, "dfl_bins": DFL_BINS, "strides": list(STRIDES),
                         "parameters": parameter_count(model), "reference_parameters": architecture.reference_parameters,
                         "gflops": round(gflops, 2), "reference_gflops": architecture.reference_gflops},
        "labels": labels,
        "task": TASK,
        "input": {"name": INPUT_NAME, "shape": [1, 3, IMAGE_SIZE, IMAGE_SIZE], "layout": "NCHW",
                  "preprocessing": f"RGB/255, letterboxed to {IMAGE_SIZE}x{IMAGE_SIZE} on grey {LETTERBOX_FILL}",
                  "preprocess": PREPROCESS},
        "output": {"name": OUTPUT_NAME, "shape": list(output.shape),
                   "format": f"per anchor ({anchors}): cx, cy, w, h in input pixels, then {NUM_CLASSES} sigmoid class scores; "
                             "boxes decoded in the graph (DFL), no NMS"},
        "calibration": {"samples": len(calibration), "from": "letterboxed crops of scikit-image photos: " + ", ".join(CALIBRATION_PHOTOS)},
        "eval": {"samples": len(eval_inputs), "from": "letterboxed crops of scikit-image photos: " + ", ".join(EVAL_PHOTOS),
                 "labels": None},
        "torch_version": torch.__version__,
    }, GENERATOR)
    return folder


def build_yolov8n(folder: Path) -> Path:
    """examples/yolov8n: YOLOv8n with RANDOM weights (see the module docstring)."""
    return _build("yolov8n", folder)


def build_yolo11n(folder: Path) -> Path:
    """examples/yolo11n: YOLO11n with RANDOM weights (see the module docstring)."""
    return _build("yolo11n", folder)


# Examples made by another version of this file are made again.
GENERATOR = GeneratorVersion(__file__)
BUILDERS = {"yolov8n": build_yolov8n, "yolo11n": build_yolo11n}
