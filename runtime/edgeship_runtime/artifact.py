"""An artifact directory written by `invoke convert`: the model file plus manifest.json.

An artifact is input from elsewhere (a controller, a copy, a download): `open` validates its
manifest once (edgeship_runtime.manifest), and every file the runtime then reads goes through
`member`: confined to the folder, listed in the manifest, its sha256 checked before it is opened.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.files import UnsafePath, confined, sha256_file

AGAIN = "copy the artifact again (or convert the model again)"
MAX_READ_BYTES = 1 << 30  # what read_member holds in memory


@dataclass
class Artifact:
    path: Path
    manifest: dict
    # relative name -> ((device, inode, size, mtime), sha256): each file hashed once while unchanged
    _hashes: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def open(cls, path) -> Artifact:
        from edgeship_runtime.manifest import read_manifest

        path = Path(path)
        artifact = cls(path, read_manifest(path))
        task = artifact.manifest.get("task")
        if isinstance(task, dict) and task.get("anchors") is not None:  # read by the task code by name: verified here, once
            artifact.member(task["anchors"], "ssd anchors")
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
        io_map = (self.manifest.get("artifact_io") or {}).get("mapping") or {}
        specs = self.inputs if kind == "inputs" else self.outputs
        return {spec["name"]: (io_map.get(kind) or {}).get(spec["name"], {"name": spec["name"], "perm": None}) for spec in specs}

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

    # -- the files it is made of -----------------------------------------------------------
    def _confined(self, relative: str, what: str) -> Path:
        try:
            return confined(self.path, relative, what)
        except UnsafePath as error:
            raise ArtifactError(f"{error}; {AGAIN}") from None

    def _sha256(self, relative: str, path: Path) -> str:
        info = os.lstat(path)
        key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        known = self._hashes.get(relative)
        if known is None or known[0] != key:
            known = self._hashes[relative] = (key, sha256_file(path))
        return known[1]

    def _listed(self, relative: str, what: str) -> str | None:
        """The sha256 the manifest lists for `relative` (None for a manifest without `files`)."""
        listed = self.manifest.get("files")
        if listed is None:
            return None
        if relative not in listed:
            raise ArtifactError(f"{self.path}: {what} {relative!r} is not listed in manifest.json's files with its sha256; "
                                f"an artifact reads only its own listed files: {AGAIN}")
        return listed[relative]

    def _changed(self, path: Path) -> ArtifactError:
        return ArtifactError(f"{path}: its sha256 differs from manifest.json's (the file changed after conversion); {AGAIN}")

    def member(self, relative: str, what: str = "file") -> Path:
        """The path of one of the artifact's own files, to open now: inside the folder, reached
        through no link, a regular file, listed in the manifest's `files` with the sha256 it has.
        (An Artifact made in code from a manifest without `files` is its maker's: only confined.)"""
        path = self._confined(relative, what)
        digest = self._listed(relative, what)
        if digest is not None and self._sha256(relative, path) != digest:
            raise self._changed(path)
        return path

    def read_member(self, relative: str, what: str = "file") -> bytes:
        """The bytes of one of the artifact's own files (see `member`), hashed as they are read:
        what is checked is what is used."""
        path = self._confined(relative, what)
        digest = self._listed(relative, what)
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except OSError as error:
            raise ArtifactError(f"{path} cannot be read ({error.strerror}); {AGAIN}") from None
        with os.fdopen(descriptor, "rb") as handle:
            if os.fstat(handle.fileno()).st_size > MAX_READ_BYTES:
                raise ArtifactError(f"{path} is over {MAX_READ_BYTES >> 20} MB, more than a reference file holds; {AGAIN}")
            data = handle.read()
        if digest is not None and hashlib.sha256(data).hexdigest() != digest:
            raise self._changed(path)
        return data

    def model_path(self) -> Path:
        """The model file, verified, with every external-data file an ONNX model names verified
        too, before any runtime opens it (they would otherwise open whatever the names point at)."""
        relative = self.manifest["artifact"]["file"]
        path = self.member(relative, "model")
        if path.suffix.lower() == ".onnx":
            from edgeship_runtime.onnx_external import NotOnnx, external_data_locations

            try:
                locations = external_data_locations(path)
            except NotOnnx as error:
                raise ArtifactError(f"{path} is not a readable ONNX model ({error}); {AGAIN}") from None
            folder = PurePosixPath(relative).parent
            for location in locations:
                self.member(location if folder == PurePosixPath(".") else f"{folder}/{location}", f"external data of {relative}")
        return path

    def verify_files(self) -> list[str]:
        """Names of listed files whose sha256 differs from the manifest or that are gone (empty
        when all match); a listed name that became a link or a special file is an ArtifactError."""
        bad = []
        for relative, digest in sorted((self.manifest.get("files") or {}).items()):
            if not os.path.lexists(self.path / relative):
                bad.append(relative)
                continue
            if self._sha256(relative, self._confined(relative, "listed file")) != digest:
                bad.append(relative)
        return bad

    def reference(self, which: str = "outputs", names: list[str] | None = None) -> dict[str, np.ndarray]:
        """Reference arrays, stacked on axis 0: "inputs", "outputs" (fp32) or "expected" (converted, x86).
        `names`: the arrays that must be there (the model's inputs or outputs), with as many samples each."""
        relative = (self.manifest.get("reference") or {}).get(which)
        if not relative:
            raise ArtifactError(f"{self.path / 'manifest.json'}: reference.{which} is missing (made by an older edgeship?); "
                                "convert the model again")
        path = self.path / relative
        data_bytes = self.read_member(relative, f"reference {which}")
        try:
            with np.load(io.BytesIO(data_bytes), allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except Exception as error:  # zipfile, zlib and numpy each raise their own on a damaged file
            raise ArtifactError(f"{path} is not a readable .npz ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                                f"{AGAIN}") from None
        wanted = names if names is not None else list(arrays)
        missing = [name for name in wanted if name not in arrays]
        if missing:
            raise ArtifactError(f"{path} lacks the arrays {missing} (it holds {sorted(arrays)[:8]}); {AGAIN}")
        counts = {len(arrays[name]) if arrays[name].ndim else 0 for name in wanted}
        if wanted and (len(counts) != 1 or 0 in counts):
            raise ArtifactError(f"{path}: the arrays {wanted} do not hold the same number (at least 1) of samples on axis 0; {AGAIN}")
        return arrays

    def samples(self, stacked: dict[str, np.ndarray], names: list[str]) -> list[dict]:
        count = len(stacked[names[0]])
        return [{name: stacked[name][index:index + 1] for name in names} for index in range(count)]

    def sample_input(self, batch: int = 1) -> dict[str, np.ndarray]:
        """A real input for benchmarking: the first reference sample, repeated to `batch`."""
        inputs = self.reference("inputs", [spec["name"] for spec in self.inputs])
        return {spec["name"]: np.repeat(inputs[spec["name"]][:1], batch, axis=0).astype(np.float32) for spec in self.inputs}
