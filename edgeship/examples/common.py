"""What every example folder shares: its metadata.json, the version of the code that made it, and
the one way its .npz data sets are written."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from edgeship_runtime.artifact import sha256_file


class GeneratorVersion(str):
    """The first 16 hex digits of the sha256 of the module that builds an example: an example
    made by another version of that module is made again."""

    def __new__(cls, module_file: str) -> "GeneratorVersion":
        return super().__new__(cls, sha256_file(Path(module_file))[:16])


def write_metadata(folder: Path, metadata: dict, generator: str) -> None:
    """metadata.json with the model's sha256 and the generator version."""
    metadata["model_sha256"] = sha256_file(folder / "model.onnx")
    metadata["generator"] = generator
    (folder / "metadata.json").write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")


def current(folder: Path, generator: str) -> bool:
    try:
        return json.loads((folder / "metadata.json").read_text()).get("generator") == generator
    except (OSError, json.JSONDecodeError):
        return False


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez, with a fixed timestamp on every member: the same data gives the same bytes
    (np.savez stamps the current time, which would change the file, and so the conversion key,
    on every build)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            member = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(member, "w", force_zip64=True) as stream:
                np.lib.format.write_array(stream, np.asanyarray(array), allow_pickle=False)
