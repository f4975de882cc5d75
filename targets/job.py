"""The job the controller hands to the worker (job.json), as a typed object."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SOURCE_MOUNT = "/in/model"  # where the source model is mounted in the container


def _fallback_task() -> str:
    from edgeship_runtime.tasks import fallback

    return fallback().name


@dataclass(frozen=True)
class Source:
    path: str  # inside the container
    file: str
    format: str  # "onnx", "tflite", "keras", "savedmodel"
    sha256: str = ""


@dataclass
class Job:
    target: str
    source: Source
    quant: str = ""
    options: dict[str, str] = field(default_factory=dict)
    inputs: list[dict] = field(default_factory=list)  # [{"name", "shape", "dtype"}], static shapes
    outputs: list[dict] = field(default_factory=list)  # [{"name", "shape"}], "?" where the model leaves a dim symbolic
    calibration: dict | None = None  # {"files", "samples", "sha256", "path"}
    eval: dict | None = None  # {"samples", "labelled", "sha256", "path", and "sequences": [steps of each] for a stateful model's}
    state: list[dict] = field(default_factory=list)  # [{"output", "input"}]: outputs fed back as inputs (edgeship_runtime.sequence)
    labels: list[str] | None = None
    preprocess: dict | None = None
    task: dict = field(default_factory=lambda: {"name": _fallback_task()})  # what the model is for (edgeship_runtime.tasks)
    # The cleaned ONNX graph every ONNX-consuming target converts (targets/graph.py ran it in its
    # own step): {"path" in the container, "renamed": {"inputs"/"outputs": {source: graph name}},
    # "steps": [...]}. None for native sources, which are converted as they are.
    graph: dict | None = None
    image: dict = field(default_factory=dict)  # {"tag", "id", "lock_sha256"}
    tolerances: dict = field(default_factory=dict)
    cache_key: str = ""
    gpus: bool = False
    out: str = "/out"
    edgeship_version: str = ""
    model_name: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        return cls(**{**data, "source": Source(**data["source"])})

    @classmethod
    def load(cls, path: str | Path) -> Job:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_dict(self) -> dict:
        return asdict(self)

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path

    @property
    def model_path(self) -> str:
        """The model the converter reads: the cleaned graph for ONNX sources, else the source."""
        return self.graph["path"] if self.graph else self.source.path

    def graph_name(self, name: str) -> str:
        """A source input/output's name in the model the converter reads (the clean-up keeps
        names, except ones no toolchain accepts)."""
        if not self.graph:
            return name
        renamed = self.graph.get("renamed", {})
        return renamed.get("inputs", {}).get(name) or renamed.get("outputs", {}).get(name) or name

    @property
    def input_names(self) -> list[str]:
        return [spec["name"] for spec in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [spec["name"] for spec in self.outputs]

    def provisional_artifact(self, folder: Path, model_file: Path, io_mapping: dict, backend: str):
        """The artifact being made, as the board runtime sees one, before its manifest exists:
        enough of a manifest for a runtime backend to load and run it."""
        from edgeship_runtime.artifact import Artifact, sha256_file

        manifest = {"artifact": {"file": model_file.name, "sha256": sha256_file(model_file)}, "runtime_backend": backend,
                    "target": self.target, "inputs": self.inputs, "outputs": self.outputs, "artifact_io": {"mapping": io_mapping},
                    "options": {"quant": self.quant, **self.options}, "source": {"sha256": self.source.sha256}}
        return Artifact(folder, manifest)
