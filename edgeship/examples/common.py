"""What every example folder shares: its metadata.json and the version of the code that made it."""

from __future__ import annotations

import json
from pathlib import Path

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
