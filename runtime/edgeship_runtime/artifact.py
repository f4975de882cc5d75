"""An artifact directory written by `invoke convert`: the model file plus manifest.json.

An artifact is input from elsewhere (a controller, a copy, a download): `open` validates its
manifest once (edgeship_runtime.manifest), and every file the runtime then reads goes through
`member`: confined to the folder, listed in the manifest, its sha256 checked before it is opened.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import numpy as np

from edgeship_runtime import sequence
from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.files import TreeLimits, UnsafePath, confined, open_regular, scan_tree, sha256_file

AGAIN = "copy the artifact again (or convert the model again)"
MAX_READ_BYTES = 64 << 20  # what read_member holds in memory: settings and records; arrays are read by `arrays`
MAX_NPZ_BYTES = 2 << 30  # one .npz, compressed (its arrays unpacked are bounded by edgeship_runtime.npz)
# Nothing in an artifact folder is a link or a special file: a runtime opens files the model names
# (ONNX external data, an IR's weights) wherever they point. Regular files nobody listed are
# allowed: a board's release or a user may keep an engine cache or notes beside them.
FOLDER_LIMITS = TreeLimits(hard_links=True)
# the backends whose runtime reads an ONNX model, whatever its file is called (OpenVINO also reads its IR)
READS_ONNX = frozenset({"onnxruntime", "tensorrt", "openvino"})


@dataclass
class Artifact:
    path: Path
    manifest: dict
    # relative name -> ((device, inode, size, mtime), sha256): each file hashed once while unchanged
    _hashes: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def open(cls, path, hashes: dict | None = None) -> Artifact:
        """The artifact in folder `path`, its manifest validated and the folder walked: any link or
        special file in it is an ArtifactError. `hashes`: another Artifact's `_hashes` of the same
        folder (a bench runner's parent's), so files it verified unchanged are not hashed again."""
        from edgeship_runtime.manifest import read_manifest

        path = Path(path)
        artifact = cls(path, read_manifest(path), dict(hashes or {}))
        try:
            scan_tree(path, FOLDER_LIMITS, f"artifact {path}")
        except UnsafePath as error:
            raise ArtifactError(f"{error}; an artifact holds only its own files: {AGAIN}") from None
        task = artifact.manifest.get("task")
        if isinstance(task, dict) and task.get("anchors") is not None:  # read by the task code by name: verified here, once
            artifact.member(task["anchors"], "ssd anchors")
        return artifact

    @property
    def verified(self) -> dict:
        """Each file hashed so far: relative name -> ((device, inode, size, mtime), sha256), for
        Artifact.open(hashes=) in another process on the same folder."""
        return dict(self._hashes)

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

    @contextlib.contextmanager
    def _verified(self, relative: str, what: str, limit: int) -> Iterator[tuple[BinaryIO, str]]:
        """One of the artifact's own files (see `member`) open for reading, with its sha256: the
        open file is what is hashed (as it streams, never held whole) and then read, so what is
        checked is what is used. (The bytes could still change between the two reads if another
        process wrote the file meanwhile; a writer on the board is not who crafts artifacts.)"""
        path = self._confined(relative, what)
        digest = self._listed(relative, what)
        try:
            with open_regular(path, limit, what) as handle:
                info = os.fstat(handle.fileno())
                key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
                known = self._hashes.get(relative)
                if known is None or known[0] != key:
                    hashing = hashlib.sha256()
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        hashing.update(block)
                    known = self._hashes[relative] = (key, hashing.hexdigest())
                    handle.seek(0)
                if digest is not None and known[1] != digest:
                    raise self._changed(path)
                yield handle, known[1]
        except UnsafePath as error:
            raise ArtifactError(f"{error}; {AGAIN}") from None

    def read_member(self, relative: str, what: str = "file") -> bytes:
        """The bytes of one of the artifact's own small files (settings, records; see `member`),
        at most MAX_READ_BYTES, hashed as they are read."""
        with self._verified(relative, what, MAX_READ_BYTES) as (handle, _):
            return handle.read(MAX_READ_BYTES + 1)[:MAX_READ_BYTES]

    def arrays(self, relative: str, what: str, specs: dict[str, list | None]) -> tuple[dict[str, np.ndarray], str]:
        """The arrays named in `specs` (name -> the manifest's shape) of one of the artifact's own
        .npz files, and the file's sha256: verified as `member` does, and every array's header
        checked against its shape before anything is unpacked (edgeship_runtime.npz)."""
        from edgeship_runtime.npz import BadNpz, load

        with self._verified(relative, what, MAX_NPZ_BYTES) as (handle, digest):
            try:
                return load(handle, specs), digest
            except BadNpz as error:
                raise ArtifactError(f"{self.path / relative} ({what}) {error}; {AGAIN}") from None

    def model_path(self) -> Path:
        """The model file, verified, and when the backend's runtime reads ONNX (by the backend, not
        the file's name: ONNX Runtime loads a model whatever it is called), every external-data
        file it names verified too, before any runtime opens it: they would otherwise open
        whatever the names point at."""
        relative = self.manifest["artifact"]["file"]
        path = self.member(relative, "model")
        if self.backend in READS_ONNX or path.suffix.lower() == ".onnx":
            from edgeship_runtime.onnx_external import NotOnnx, external_data_locations

            if self.backend == "openvino" and _is_xml(path):
                return path  # an OpenVINO IR: its weights are the .bin the backend verifies
            try:
                locations = external_data_locations(path)
            except NotOnnx as error:
                raise ArtifactError(f"{path} is not a readable ONNX model ({error}), which {self.backend} reads it as; {AGAIN}") from None
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
        tensors = {spec["name"]: spec for spec in (self.inputs if which == "inputs" else self.outputs)}
        # each tensor's samples stacked on its batch axis (edgeship_runtime.sequence): the header checks that shape
        specs = {name: spec.get("shape") if sequence.batch_axis(spec) == 0 or not spec.get("shape") else sequence.stacked_shape(spec)
                 for name, spec in tensors.items()}
        arrays, _ = self.arrays(relative, f"reference {which}", {name: specs.get(name) for name in (names if names is not None else specs)})
        wanted = names if names is not None else list(arrays)
        missing = [name for name in wanted if name not in arrays]
        if missing:
            raise ArtifactError(f"{path} lacks the arrays {missing} (it holds {sorted(arrays)[:8]}); {AGAIN}")
        counts = {sequence.count(arrays[name], tensors.get(name, {})) for name in wanted}
        if wanted and (len(counts) != 1 or 0 in counts):
            raise ArtifactError(f"{path}: the arrays {wanted} do not hold the same number (at least 1) of samples on their batch axes; {AGAIN}")
        return arrays

    def samples(self, stacked: dict[str, np.ndarray], names: list[str]) -> list[dict]:
        """Stacked arrays -> one dict per sample, each sliced on its input's batch axis."""
        return sequence.split(stacked, [spec for spec in self.inputs if spec["name"] in names])

    def sample_input(self, batch: int = 1) -> dict[str, np.ndarray]:
        """A real input for benchmarking: the first reference sample, repeated to `batch` on each
        input's batch axis."""
        inputs = self.reference("inputs", [spec["name"] for spec in self.inputs])
        feeds = {}
        for spec in self.inputs:
            first, axis = sequence.take(inputs[spec["name"]], spec, 0), sequence.batch_axis(spec)
            if batch != 1 and axis is None:
                raise ArtifactError(f"{self.path / 'manifest.json'}: input {spec['name']!r} has no batch axis (a sample is its whole "
                                    f"shape {spec.get('shape')}), so it cannot be run in batches of {batch}; bench it with batch 1")
            feeds[spec["name"]] = np.repeat(first, batch, axis=axis or 0).astype(spec.get("dtype", "float32"))
        return feeds


def _is_xml(path: Path) -> bool:
    """Whether a file starts as XML does (an OpenVINO IR), which no ONNX protobuf can: '<' is a
    field tag of a wire type ONNX never uses."""
    with open(path, "rb") as handle:
        head = handle.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<")
