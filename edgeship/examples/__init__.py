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

from edgeship.examples import classic
from edgeship.examples.classic import digits_split
from edgeship.examples.common import current
from edgeship_runtime.files import staged_dir

# name -> (builder, generator version of the module that builds it)
BUILDERS: dict[str, tuple[Callable[[Path], Path], str]] = {
    name: (builder, classic.GENERATOR) for name, builder in classic.BUILDERS.items()
}
DEFAULT = ("digits", "mobilenetv2")


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
