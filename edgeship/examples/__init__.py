"""Example models made here from data that ships inside packages: nothing is downloaded at run
time (the PP-OCR models come from a hash-pinned PyPI wheel fetched on the host).

Each example lands in examples/<name>/: model.onnx, calib/NNN.npy (one sample each, batch 1),
eval.npz (inputs named like the model's input, plus `labels` in the task's format where they
exist), preprocess.json, metadata.json, and task.json where the task is not a plain classifier.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from edgeship.examples import classic, embed, faces, hands, ppocr, selfie, vad, yolo
from edgeship.examples.classic import digits_split
from edgeship.examples.common import current
from edgeship_runtime.files import staged_dir

# name -> (builder, generator version of the module that builds it)
BUILDERS: dict[str, tuple[Callable[[Path], Path], str]] = {
    name: (builder, module.GENERATOR) for module in (classic, ppocr, yolo, embed, faces, hands, selfie, vad)
    for name, builder in module.BUILDERS.items()
}
DEFAULT = tuple(BUILDERS)


def example_request(folder: Path, target: str, quant: str, out: Path, needs_calibration: bool):
    """The conversion request of an example folder for a target and mode: its model (model.onnx, else model.tflite), data, labels,
    task and preprocess record, and the static input shapes its metadata gives for dynamic inputs."""
    import json

    from edgeship.convert import Request

    metadata = json.loads((folder / "metadata.json").read_text())
    labels = next((path for path in (folder / "labels.json", folder / "labels.txt") if path.exists()), None)
    shapes = [f"{name}:{','.join(str(d) for d in shape)}" for name, shape in metadata.get("input_shape", {}).items()]
    # frozen inputs (a sample rate) and the state a stateful model feeds back, as the metadata gives them
    values = [f"{name}={value}" for name, value in metadata.get("input_values", {}).items()]
    state = [f"{output}:{feeds}" for output, feeds in metadata.get("state", {}).items()]
    # a TFLite source (MediaPipe's models) when the example has no ONNX model
    model = folder / "model.onnx" if (folder / "model.onnx").exists() or not (folder / "model.tflite").exists() else folder / "model.tflite"
    return Request(target=target, model=model, quant=quant, calib=folder / "calib" if needs_calibration else None,
                   eval=folder / "eval.npz", labels=labels, input_shapes=shapes, out=out,
                   preprocess=folder / "preprocess.json" if (folder / "preprocess.json").exists() else None,
                   task=str(folder / "task.json") if (folder / "task.json").exists() else None, name=folder.name,
                   input_values=values, state=state)


def build_examples(root: Path, names=DEFAULT, force: bool = False) -> list[Path]:
    """Build the named examples under root (each written to a temp folder, then renamed)."""
    written = []
    for name in names:
        builder, generator = BUILDERS[name]
        final = root / name
        if current(final, generator) and not force:
            written.append(final)
            continue
        root.mkdir(parents=True, exist_ok=True)
        with staged_dir(final) as staging:
            shutil.rmtree(staging)  # the builders make their folder themselves
            builder(staging)
        written.append(final)
    return written


__all__ = ["BUILDERS", "DEFAULT", "build_examples", "digits_split"]
