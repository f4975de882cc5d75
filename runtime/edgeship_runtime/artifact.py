"""An artifact directory written by `invoke convert`: the model file plus manifest.json."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.files import sha256_file


@dataclass
class Artifact:
    path: Path
    manifest: dict

    @classmethod
    def open(cls, path) -> Artifact:
        path = Path(path)
        manifest_path = path / "manifest.json"
        if not manifest_path.is_file():
            raise ArtifactError(f"{path} is not an edgeship artifact (no manifest.json); pass the directory `invoke convert` printed")
        try:
            manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as error:
            raise ArtifactError(f"{manifest_path} is not valid JSON ({error}); copy the artifact again") from None
        artifact = cls(path, manifest)
        if not artifact.model_file.is_file():
            raise ArtifactError(f"{artifact.model_file} is missing; copy the whole artifact directory")
        return artifact

    @property
    def model_file(self) -> Path:
        return self.path / self.manifest["artifact"]["file"]

    @property
    def backend(self) -> str:
        return self.manifest["runtime_backend"]

    @property
    def inputs(self) -> list[dict]:
        return self.manifest["inputs"]

    @property
    def outputs(self) -> list[dict]:
        return self.manifest["outputs"]

    @property
    def labels(self) -> list[str] | None:
        return self.manifest.get("labels")

    def mapping(self, kind: str) -> dict:
        """Source tensor name -> {"name": artifact tensor name, "perm": layout permutation or None}."""
        io = self.manifest.get("artifact_io", {}).get("mapping", {})
        specs = self.inputs if kind == "inputs" else self.outputs
        return {spec["name"]: io.get(kind, {}).get(spec["name"], {"name": spec["name"], "perm": None}) for spec in specs}

    def identity(self) -> dict:
        """The hashes that name this artifact in results."""
        return {
            "path": str(self.path),
            "target": self.manifest["target"],
            "backend": self.backend,
            "quant": self.manifest["options"].get("quant"),
            "artifact_sha256": self.manifest["artifact"]["sha256"],
            "source_sha256": self.manifest["source"]["sha256"],
            "cache_key": self.manifest.get("cache_key"),
        }

    def verify_files(self) -> list[str]:
        """Names of files whose sha256 differs from the manifest (empty when all match)."""
        bad = []
        for relative, digest in sorted(self.manifest.get("files", {}).items()):
            file = self.path / relative
            if not file.is_file() or sha256_file(file) != digest:
                bad.append(relative)
        return bad

    def reference(self, which: str = "outputs") -> dict[str, np.ndarray]:
        """Reference arrays, stacked on axis 0: "inputs", "outputs" (fp32) or "expected" (converted, x86)."""
        relative = self.manifest["reference"][which]
        with np.load(self.path / relative) as data:
            return {name: data[name] for name in data.files}

    def samples(self, stacked: dict[str, np.ndarray], names: list[str]) -> list[dict]:
        count = len(stacked[names[0]])
        return [{name: stacked[name][index:index + 1] for name in names} for index in range(count)]

    def sample_input(self, batch: int = 1) -> dict[str, np.ndarray]:
        """A real input for benchmarking: the first reference sample, repeated to `batch`."""
        inputs = self.reference("inputs")
        return {spec["name"]: np.repeat(inputs[spec["name"]][:1], batch, axis=0).astype(np.float32) for spec in self.inputs}
