"""Helpers the tests share: the repository root, tiny real ONNX models built with onnx.helper,
and the command line run as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from edgeship.paths import REPO_ROOT as ROOT


def tiny_cnn(path: Path, batch="1", channels=1, size=8, classes=4, seed=0) -> Path:
    """Conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm, float32 NCHW; batch may be a dim_param."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = [
        numpy_helper.from_array(rng.standard_normal((8, channels, 3, 3)).astype(np.float32), "conv_w"),
        numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "conv_b"),
        numpy_helper.from_array(rng.standard_normal((8, classes)).astype(np.float32), "fc_w"),
        numpy_helper.from_array(rng.standard_normal(classes).astype(np.float32), "fc_b"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "conv_w", "conv_b"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"]),
    ]
    batch_dim = int(batch) if str(batch).isdigit() else batch
    graph = helper.make_graph(
        nodes, "tiny_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch_dim, channels, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch_dim, classes])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="edgeship-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run an invoke task the way a user does (`invoke TASK ...`) and capture its output."""
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=cwd, capture_output=True, text=True, timeout=3600)


def stand_in_example_files(config: Path, root: Path) -> Path:
    """Empty stand-ins, under root, for every file and folder a conversions file names (the
    examples are made by `./dev examples`, which the unit tier does not run). Returns the
    config's copy in root; load it with check_sha=False: the stand-ins' hashes are not the
    models'."""
    import tomllib

    text = config.read_text()
    data = tomllib.loads(text)
    for table in data.get("models", {}).values():
        for key, value in table.items():
            if key == "calibration":
                (root / value).mkdir(parents=True, exist_ok=True)
            elif key in ("path", "eval", "labels", "preprocess", "task") and isinstance(value, str) and "/" in value:
                (root / value).parent.mkdir(parents=True, exist_ok=True)
                (root / value).touch()
    copy = root / config.name
    copy.write_text(text)
    return copy


def stand_in_example_dirs(root: Path, names) -> list[Path]:
    """Example folders with only what choosing their conversions reads (an empty metadata.json):
    stand-ins for `./dev examples` in the unit tier."""
    folders = []
    for name in names:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "metadata.json").write_text("{}")
        folders.append(folder)
    return folders
