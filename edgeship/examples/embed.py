"""An embedding model made here from data that ships inside packages (nothing downloaded).

- digits-embed: the trained digits CNN (classic.py) cut at its penultimate layer: the 64 ReLU
  features the classifier's last layer reads, one vector per image. The features are real (the
  network was trained to tell the digits apart), so the test split's digits cluster by class and
  retrieval top-1 (each image's nearest other image is the same digit) means something.

No embedding model in a PyPI wheel fits yet: the sentence embedders packaged there (all-MiniLM-L6-v2)
take int64 token ids, which the conversion path does not feed yet, and the face embedder looked at
(arcface 0.0.8, a 15 kB wheel) fetches its weights at run time.

It lands in examples/digits-embed/: model.onnx, calib/NNN.npy (the digits example's), eval.npz (the
digits test split: `input`, and `labels` the digit of each image, for retrieval top-1),
preprocess.json, task.json and metadata.json.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from edgeship.examples import classic
from edgeship.examples.common import GeneratorVersion, write_metadata

OUTPUT_NAME = "embedding"
TASK = {"name": "embed"}


def penultimate(model) -> str:
    """The tensor the model's last node reads: for a classifier, the features its last layer scores."""
    last = next(node for node in model.graph.node if model.graph.output[0].name in node.output)
    weights = {initializer.name for initializer in model.graph.initializer}
    return next(name for name in last.input if name not in weights)


def cut_at_penultimate(source: Path, destination: Path) -> str:
    """Write `source` cut after its penultimate tensor (renamed OUTPUT_NAME) to `destination`;
    returns the tensor's name in the source."""
    import onnx
    from onnx.utils import Extractor

    model = onnx.shape_inference.infer_shapes(onnx.load(str(source)), strict_mode=True)  # the Extractor reads the cut's shape here
    tensor = penultimate(model)
    cut = Extractor(model).extract_model([model.graph.input[0].name], [tensor])
    for node in cut.graph.node:
        node.output[:] = [OUTPUT_NAME if name == tensor else name for name in node.output]
    cut.graph.output[0].name = OUTPUT_NAME
    onnx.checker.check_model(cut, full_check=True)  # shapes inferred: the output keeps its [1, 64]
    onnx.save(cut, str(destination))
    return tensor


def build_digits_embed(folder: Path) -> Path:
    with tempfile.TemporaryDirectory() as scratch:
        digits = classic.build_digits(Path(scratch) / "digits")
        source_metadata = json.loads((digits / "metadata.json").read_text())
        folder.mkdir(parents=True)
        tensor = cut_at_penultimate(digits / "model.onnx", folder / "model.onnx")
        shutil.copytree(digits / "calib", folder / "calib")
        shutil.copy(digits / "eval.npz", folder / "eval.npz")  # `input` and `labels`: the digit of each test image
        shutil.copy(digits / "preprocess.json", folder / "preprocess.json")
    import onnx

    dims = [d.dim_value for d in onnx.load(str(folder / "model.onnx")).graph.output[0].type.tensor_type.shape.dim]
    (folder / "task.json").write_text(json.dumps(TASK, indent=2) + "\n")
    write_metadata(folder, {
        "name": "digits-embed",
        "description": "The digits example's trained CNN (scikit-learn's 8x8 digits) cut at its penultimate layer with "
                       f"onnx.utils.Extractor: the {dims[-1]} ReLU features its last layer scores, one embedding per image.",
        "weights": "trained (the digits example's)",
        "source": {"example": "digits", "cut_at": tensor, "fp32_test_accuracy_torch": source_metadata["fp32_test_accuracy_torch"]},
        "input": source_metadata["input"],
        "output": {"name": OUTPUT_NAME, "shape": dims},
        "task": TASK,
        "split": source_metadata["split"],
        "calibration": source_metadata["calibration"],
        "eval": {"samples": source_metadata["split"]["test"], "from": "the digits test split",
                 "labels": "the digit of each image (retrieval top-1)"},
        "torch_version": source_metadata["torch_version"],
    }, GENERATOR)
    return folder


# Made again when this file or the digits example's (whose model it cuts) changes.
GENERATOR = GeneratorVersion(__file__) + classic.GENERATOR
BUILDERS = {"digits-embed": build_digits_embed}
