"""The first two examples, made here from data that ships inside packages (nothing downloaded).

- digits: a small CNN trained with fixed seeds on scikit-learn's 8x8 digits, with a
  held-out labelled test split (eval.npz) and a calibration set from the training split.
- mobilenetv2: the MobileNetV2 architecture at 224x224x3 with fixed-seed RANDOM weights
  (for speed work only; its outputs mean nothing), BatchNorm statistics taken from
  scikit-image photos so activations have realistic ranges, and a calibration set of
  crops of those photos.

Each lands in examples/<name>/: model.onnx, calib/NNN.npy (one sample each, batch 1),
eval.npz (inputs named like the model's input, plus `labels` where they exist), and
metadata.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgeship.examples.common import GeneratorVersion, write_metadata

SEED = 0
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
CALIBRATION_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")
EVAL_PHOTOS = ("cat", "colorwheel", "stereo_motorcycle", "astronaut")


def _torch():
    import torch

    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # one thread: the same float summation order on every machine
    return torch


def _export(model, sample, path: Path, input_name: str, output_name: str) -> None:
    import warnings

    torch = _torch()
    model.eval()
    # The TorchScript exporter needs no extra packages and its graphs convert cleanly
    # with every vendor toolchain we target (opset 13 is within all of their ranges).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is deprecated, not gone
        torch.onnx.export(model, (sample,), str(path), dynamo=False, opset_version=13,
                          input_names=[input_name], output_names=[output_name], do_constant_folding=True)


def _write_example(folder: Path, calibration: np.ndarray, eval_arrays: dict, metadata: dict) -> None:
    (folder / "calib").mkdir(parents=True)
    for index, sample in enumerate(calibration):
        np.save(folder / "calib" / f"{index:03d}.npy", sample[None].astype(np.float32))
    np.savez(folder / "eval.npz", **eval_arrays)
    (folder / "labels.txt").write_text("\n".join(metadata["labels"]) + "\n")
    # what `invoke convert --preprocess` records in the artifact, for the camera demo
    (folder / "preprocess.json").write_text(json.dumps(metadata["input"]["preprocess"], indent=2) + "\n")
    write_metadata(folder, metadata, GENERATOR)


def digits_split():
    """scikit-learn's digits as NCHW float32 in [0, 1]: (train_x, test_x, train_y, test_y), stratified, seeded."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]  # N,1,8,8 in [0,1]
    return train_test_split(images, digits.target, test_size=0.2, random_state=SEED, stratify=digits.target)


def build_digits(folder: Path, epochs: int = 40) -> Path:
    torch = _torch()
    train_x, test_x, train_y, test_y = digits_split()

    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(SEED)
    inputs, targets = torch.from_numpy(train_x), torch.from_numpy(train_y.astype(np.int64))
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(inputs), generator=generator)
        for start in range(0, len(order), 64):
            batch = order[start:start + 64]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(inputs[batch]), targets[batch])
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        test_accuracy = float((model(torch.from_numpy(test_x)).argmax(1).numpy() == test_y).mean())

    folder.mkdir(parents=True)
    _export(model, torch.zeros(1, 1, 8, 8), folder / "model.onnx", "input", "logits")
    calibration = train_x[np.random.default_rng(SEED).permutation(len(train_x))[:100]]
    _write_example(folder, calibration, {"input": test_x, "labels": test_y.astype(np.int64)}, {
        "name": "digits",
        "description": "Small CNN trained with fixed seeds on scikit-learn's 8x8 digits (pixels/16, NCHW).",
        "weights": "trained",
        "labels": [str(d) for d in range(10)],
        "input": {"name": "input", "shape": [1, 1, 8, 8], "layout": "NCHW", "preprocessing": "pixel / 16",
                  # a camera sees dark ink on light paper; the digits have bright ink on black (0..16)
                  "preprocess": {"color": "gray", "invert": True, "scale": 1 / 255, "resize": "center_crop"}},
        "output": {"name": "logits", "shape": [1, 10]},
        "split": {"train": len(train_x), "test": len(test_x), "seed": SEED, "stratified": True},
        "calibration": {"samples": len(calibration), "from": "training split"},
        "fp32_test_accuracy_torch": test_accuracy,
        "torch_version": torch.__version__,
    })
    return folder


def _photo(name: str) -> np.ndarray:
    import skimage.data

    image = getattr(skimage.data, name)()
    image = image[0] if isinstance(image, tuple) else image
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return image[..., :3]


def _crops(names, count: int, rng: np.random.Generator) -> np.ndarray:
    """Random 224x224 crops (after a random rescale), ImageNet-normalized, NCHW float32."""
    from skimage.transform import resize

    crops = []
    for index in range(count):
        photo = _photo(names[index % len(names)]).astype(np.float32) / 255.0
        short = min(photo.shape[:2])
        scale = rng.uniform(224 / short, max(256 / short, 224 / short * 1.6))
        height, width = max(224, round(photo.shape[0] * scale)), max(224, round(photo.shape[1] * scale))
        scaled = resize(photo, (height, width), anti_aliasing=True, preserve_range=True).astype(np.float32)
        top, left = rng.integers(0, height - 223), rng.integers(0, width - 223)
        crop = scaled[top:top + 224, left:left + 224]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crops.append(((crop - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(crops)).astype(np.float32)


def _mobilenetv2(torch, num_classes: int = 1000):
    nn = torch.nn

    def conv_bn(inp, out, kernel, stride, groups=1, relu=True):
        layers = [nn.Conv2d(inp, out, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(out)]
        return layers + ([nn.ReLU6(inplace=True)] if relu else [])

    class InvertedResidual(nn.Module):  # type: ignore[name-defined]  # torch is imported lazily, passed in
        def __init__(self, inp, out, stride, expand):
            super().__init__()
            hidden = inp * expand
            layers = conv_bn(inp, hidden, 1, 1) if expand != 1 else []
            layers += conv_bn(hidden, hidden, 3, stride, groups=hidden) + conv_bn(hidden, out, 1, 1, relu=False)
            self.block = nn.Sequential(*layers)
            self.residual = stride == 1 and inp == out

        def forward(self, x):
            return x + self.block(x) if self.residual else self.block(x)

    # (expansion, channels, repeats, first stride): the table of Sandler et al. 2018.
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    layers, channels = conv_bn(3, 32, 3, 2), 32
    for expand, out, repeats, stride in settings:
        for index in range(repeats):
            layers.append(InvertedResidual(channels, out, stride if index == 0 else 1, expand))
            channels = out
    layers += conv_bn(channels, 1280, 1, 1) + [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(1280, num_classes)]
    return nn.Sequential(*layers)


def build_mobilenetv2(folder: Path) -> Path:
    torch = _torch()
    rng = np.random.default_rng(SEED)
    model = _mobilenetv2(torch)
    calibration = _crops(CALIBRATION_PHOTOS, 32, rng)
    eval_inputs = _crops(EVAL_PHOTOS, 8, rng)
    # Random weights give exploding or vanishing activations; BatchNorm statistics measured
    # on real photos bring every layer back to a realistic range, so quantization behaves
    # as it would on a trained network (the outputs are still meaningless).
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # cumulative average over the photo batch
    with torch.no_grad():
        model(torch.from_numpy(calibration))
    folder.mkdir(parents=True)
    _export(model, torch.zeros(1, 3, 224, 224), folder / "model.onnx", "input", "logits")
    _write_example(folder, calibration, {"input": eval_inputs}, {
        "name": "mobilenetv2",
        "description": "MobileNetV2 (224x224x3) with fixed-seed RANDOM weights, for speed work only: outputs are meaningless, "
                       "no accuracy claim can be made; BatchNorm statistics measured on scikit-image photos.",
        "weights": "random (seed 0)",
        "labels": [f"class_{index}" for index in range(1000)],
        "input": {"name": "input", "shape": [1, 3, 224, 224], "layout": "NCHW", "preprocessing": "RGB/255, ImageNet mean/std",
                  "preprocess": {"color": "rgb", "scale": 1 / 255, "mean": IMAGENET_MEAN.tolist(), "std": IMAGENET_STD.tolist(),
                                 "resize": "center_crop"}},
        "output": {"name": "logits", "shape": [1, 1000]},
        "calibration": {"samples": len(calibration), "from": "crops of scikit-image photos: " + ", ".join(CALIBRATION_PHOTOS)},
        "eval": {"samples": len(eval_inputs), "from": "crops of scikit-image photos: " + ", ".join(EVAL_PHOTOS), "labels": None},
        "torch_version": torch.__version__,
    })
    return folder


# Examples made by another version of this file are made again.
GENERATOR = GeneratorVersion(__file__)
BUILDERS = {"digits": build_digits, "mobilenetv2": build_mobilenetv2}
