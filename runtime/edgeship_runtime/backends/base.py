"""The small base every backend shares (after Polygraphy's runners).

It does the state checks, input validation, layout permutation, int8/uint8
(de)quantization and timing; a backend fills in `_load`, `_infer` and `_close`, and
reports each artifact tensor's dtype and quantization through `_io_details`.
Callers speak the source model's language: dict of float32 arrays by source tensor name,
in the source layout.
"""

from __future__ import annotations

import time

import numpy as np

from edgeship_runtime import sequence
from edgeship_runtime.artifact import Artifact
from edgeship_runtime.errors import ArtifactError, RuntimeUnavailable
from edgeship_runtime.profile import ProfileUnavailable


def to_layout(value: np.ndarray, perm) -> np.ndarray:
    return value if perm is None else np.ascontiguousarray(value.transpose(perm))


def from_layout(value: np.ndarray, perm) -> np.ndarray:
    return value if perm is None else np.ascontiguousarray(value.transpose(np.argsort(perm)))


def quantize(value: np.ndarray, dtype, scale: float, zero_point: int) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind in "iu" and scale:
        info = np.iinfo(dtype)
        return np.clip(np.round(value / scale + zero_point), info.min, info.max).astype(dtype)
    return np.asarray(value, dtype)


def denormalize(value: np.ndarray, normalize: dict | None) -> np.ndarray:
    """Source-domain (normalized) input -> the raw values a model with mean/std folded in
    takes: raw = value * std + mean, per channel on the artifact's last axis."""
    if not normalize:
        return value
    std, mean = np.asarray(normalize["std"], np.float32), np.asarray(normalize["mean"], np.float32)
    return np.asarray(value, np.float32) * std + mean


def dequantize(value: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    if value.dtype.kind in "iu" and scale:
        return (value.astype(np.float32) - zero_point) * np.float32(scale)
    return value.astype(np.float32, copy=False)


class Backend:
    """Load once, infer many times, close. Use as a context manager.

    Besides inference, a backend owns what is particular to its runtime: the pip extra that
    installs it, its accelerator's detection, a compatibility check of an artifact against the
    board's runtime, and a `prepare_artifact` step that deploy runs before the first inference.
    """

    name = "base"
    accelerator = "cpu"  # "cpu", or the accelerator this backend needs, as detect() names it
    extra: str | None = None  # the runtime's pip extra that installs this backend's package
    packages: tuple[str, ...] = ()  # distributions whose versions `detect` reports
    cpu_fallback: str | None = None  # a CPU backend that runs the very same model file, if any
    profiler: str | None = None  # how this runtime times each operator (`_profile`), or None where it does not
    no_profiler = "offers no per-operator timing through its Python API"  # why not, where profiler is None

    # -- what is particular to this runtime, outside inference ------------------------------
    @classmethod
    def detect_accelerator(cls, sysroot: str = "/") -> dict:
        """{"present": bool, ...details} of this backend's accelerator on the board below sysroot."""
        return {"present": cls.accelerator == "cpu"}

    @classmethod
    def compatibility(cls, manifest: dict, board: dict) -> dict | None:
        """Will this board's runtime load the artifact? A record (None when there is nothing to
        match), or ArtifactError naming what to install or rebuild."""
        return None

    @classmethod
    def unusable(cls, artifact: Artifact) -> str | None:
        """Why this artifact cannot run on the accelerator even where the board has it (e.g. a coral
        artifact that was not compiled for the Edge TPU), or None. `select.choose` treats such an
        artifact as it treats a missing accelerator: a clear error, or the labelled CPU fallback."""
        return None

    @classmethod
    def prepare_artifact(cls, artifact: Artifact, board: dict, cache: str | None = None, allow_cpu_fallback: bool = False) -> dict:
        """Work to do once per artifact on the board before it runs (e.g. build an engine for
        this board's accelerator); deploy runs it after the files are verified."""
        return {"prepared": False, "skipped": f"{artifact.path} runs on {cls.name}, which needs no preparation"}

    def __init__(self, artifact: Artifact, threads: int | None = None, **options):
        self.artifact = artifact
        self.threads = threads
        self.options = options
        self.loaded = False
        self.batch = 1
        self.last_infer_s: float | None = None
        self._inputs = artifact.mapping("inputs")
        self._outputs = artifact.mapping("outputs")
        self._shapes = {spec["name"]: list(spec["shape"]) for spec in artifact.inputs}
        self._batch_axes = {spec["name"]: sequence.batch_axis(spec) for spec in artifact.inputs}  # None: a sample is the whole shape

    # -- what a backend implements -------------------------------------------------------
    def _load(self) -> None:
        raise NotImplementedError

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """feeds and results by ARTIFACT tensor name, in the artifact's layout and dtypes."""
        raise NotImplementedError

    def _close(self) -> None:
        pass

    def _io_details(self) -> dict[str, tuple]:
        """artifact tensor name -> (numpy dtype, scale, zero_point) for every input and output."""
        raise NotImplementedError

    def _set_batch(self, batch: int) -> None:
        raise NotImplementedError(f"{self.name} cannot change the batch size of {self.artifact.model_file.name}")

    def _profile(self, feeds: dict[str, np.ndarray], runs: int) -> dict[str, tuple[str, float]]:
        """Run feeds `runs` times under the runtime's own profiler: {node name: (op type, total ms
        over the runs)}. ProfileUnavailable where the runtime has no per-operator timing."""
        raise ProfileUnavailable(f"{self.name} {self.no_profiler}")

    # -- the shared part -------------------------------------------------------------------
    def load(self) -> Backend:
        if self.loaded:
            raise RuntimeError(f"{self.name}: load() called twice")
        try:
            self._load()
            self._details = self._io_details()
        except (ArtifactError, RuntimeUnavailable):
            raise
        except Exception as error:  # each vendor runtime raises its own type on a file it cannot read
            first = (str(error).strip().splitlines() or [""])[0][:300]
            raise ArtifactError(f"{self.name} could not load {self.artifact.model_file} ({type(error).__name__}: {first}); the file is "
                                f"damaged or not a model this runtime reads: copy the artifact again, or convert the model again") from None
        self.loaded = True
        return self

    def set_batch(self, batch: int) -> None:
        self._require_loaded()
        if batch != self.batch:
            self._set_batch(batch)
            self._details = self._io_details()
            self.batch = batch

    def prepare(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Validate source-layout float inputs and turn them into the artifact's feeds."""
        self._require_loaded()
        missing = set(self._inputs) - set(inputs)
        if missing:
            raise ValueError(f"{self.name}: missing inputs {sorted(missing)}; the model takes {sorted(self._inputs)}")
        feeds = {}
        for source, mapping in self._inputs.items():
            value = np.asarray(inputs[source])
            expected, axis = list(self._shapes[source]), self._batch_axes[source]
            if axis is not None:
                expected[axis] = self.batch
            if list(value.shape) != expected:
                raise ValueError(f"{self.name}: input {source!r} has shape {list(value.shape)}, expected {expected}")
            dtype, scale, zero_point = self._details[mapping["name"]]
            feeds[mapping["name"]] = quantize(denormalize(to_layout(value, mapping["perm"]), mapping.get("normalize")), dtype, scale, zero_point)
        return feeds

    def finish(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = {}
        for source, mapping in self._outputs.items():
            _, scale, zero_point = self._details[mapping["name"]]
            results[source] = from_layout(dequantize(raw[mapping["name"]], scale, zero_point), mapping["perm"])
        return results

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Float inputs by source name (source layout) -> float outputs by source name."""
        return self.infer_prepared(self.prepare(inputs))

    def infer_prepared(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run feeds made by `prepare` (artifact layout and dtypes); float outputs by source name."""
        started = time.perf_counter()
        raw = self._infer(feeds)
        self.last_infer_s = time.perf_counter() - started
        return self.finish(raw)

    def profile(self, inputs: dict[str, np.ndarray], runs: int, top: int = 10) -> dict:
        """Per-operator times of `runs` inferences of these (source-layout float) inputs: the top
        operators and op types, each {op, type, ms (mean per run), share} (edgeship_runtime.profile)."""
        from edgeship_runtime.profile import summarize

        return summarize(self._profile(self.prepare(inputs), runs), runs, top)

    def close(self) -> None:
        if self.loaded:
            self._close()
            self.loaded = False

    def _require_loaded(self) -> None:
        if not self.loaded:
            raise RuntimeError(f"{self.name}: call load() before inference")

    def __enter__(self) -> Backend:
        return self.load() if not self.loaded else self

    def __exit__(self, *exc) -> None:
        self.close()
