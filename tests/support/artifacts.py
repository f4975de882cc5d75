"""A real, tiny artifact as `invoke convert --target onnx` writes one (tiny_cnn on ONNX Runtime,
references computed by ONNX Runtime itself), without a container: for the board runtime's tests
and the bad-input corpus, which then damage copies of it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from tests.support import tiny_cnn

SAMPLES = 4


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listed_files(folder: Path) -> dict[str, str]:
    return {path.relative_to(folder).as_posix(): sha256(path) for path in sorted(folder.rglob("*"))
            if path.is_file() and not path.is_symlink() and path.name != "manifest.json"}


def write_manifest(folder: Path, manifest: dict, relist: bool = True) -> dict:
    """manifest.json of `folder`, its `files` map made anew from what the folder holds (relist)."""
    if relist:
        manifest["files"] = listed_files(folder)
        manifest["artifact"]["sha256"] = manifest["files"].get(manifest["artifact"]["file"], manifest["artifact"].get("sha256"))
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def tiny_artifact(folder: Path, seed: int = 0) -> Path:
    import onnxruntime

    folder.mkdir(parents=True)
    (folder / "reference").mkdir()
    model = tiny_cnn(folder / "model.onnx", seed=seed)
    inputs = np.random.default_rng(seed).standard_normal((SAMPLES, 1, 1, 8, 8)).astype(np.float32)
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    outputs = np.stack([session.run(["logits"], {"input": sample})[0] for sample in inputs])
    np.savez(folder / "reference" / "inputs.npz", input=inputs[:, 0])
    np.savez(folder / "reference" / "outputs.npz", logits=outputs[:, 0])
    np.savez(folder / "reference" / "expected.npz", logits=outputs[:, 0])
    manifest = {
        "schema": 1, "model": "tiny", "target": "onnx", "runtime_backend": "onnxruntime",
        "options": {"quant": "fp32", "input_shapes": {"input": [1, 1, 8, 8]}},
        "source": {"file": "tiny.onnx", "format": "onnx", "sha256": sha256(model)},
        "artifact": {"file": "model.onnx", "sha256": "", "size": model.stat().st_size},
        "inputs": [{"name": "input", "shape": [1, 1, 8, 8], "dtype": "float32"}],
        "outputs": [{"name": "logits", "shape": [1, 4], "dtype": "float32"}],
        "artifact_io": {"mapping": {"inputs": {"input": {"name": "input", "perm": None}},
                                    "outputs": {"logits": {"name": "logits", "perm": None}}}},
        "labels": ["a", "b", "c", "d"],
        "task": {"name": "classify"},
        "reference": {"inputs": "reference/inputs.npz", "outputs": "reference/outputs.npz", "expected": "reference/expected.npz",
                      "samples": SAMPLES, "source": "seeded random normal (no data given)"},
        "accuracy": {"passed": True, "task": "classify", "tolerances": {"min_cosine": 0.99, "min_top1_agreement": 0.9}},
        "logs": ["convert.log"], "cache_key": "test",
    }
    write_manifest(folder, manifest)
    return folder
