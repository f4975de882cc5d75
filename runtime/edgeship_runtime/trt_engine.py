"""TensorRT engines from an artifact's ONNX, built where they run and cached by what decides them.

An engine is only valid for the TensorRT version and the GPU (name and compute capability)
that built it, and it differs by precision, workspace and, for int8, calibration data. The
cache key is the sha256 of all of these plus the ONNX file's own sha256, so a board that
changes JetPack or moves its SD card to another module builds a new engine instead of
failing to deserialize an old one. Cache files are written to a temporary name and
renamed, so an interrupted build never leaves a half engine behind.

The artifact directory carries `tensorrt.json` (precision, workspace, calibration file, and
for a rescued int8 build `fp16_layers`: the layers to keep in fp16), written by the jetson
target; the same code builds the test engine on a conversion host with a GPU
(`invoke convert --target jetson --gpus`) and the real one on the board.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from edgeship_runtime.errors import ArtifactError, RuntimeUnavailable

CONFIG_FILE = "tensorrt.json"
PRECISIONS = ("fp32", "fp16", "int8")


def cache_dir(explicit=None) -> Path:
    """Where engines live: the explicit folder, $EDGESHIP_ENGINE_CACHE, or ~/.cache/edgeship/engines."""
    chosen = explicit or os.environ.get("EDGESHIP_ENGINE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "edgeship", "engines")
    return Path(chosen)


def cache_key(onnx_sha256: str, tensorrt_version: str, gpu_name: str, compute_capability: str, precision: str,
              workspace_mib: int, calibration_sha256: str | None = None, fp16_layers: list[str] | tuple[str, ...] = ()) -> str:
    """The engine's identity: every input that changes what TensorRT builds (the layers an int8
    engine keeps in fp16 too: they change the engine, not the ONNX file)."""
    if precision not in PRECISIONS:
        raise ArtifactError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    material = {"onnx": onnx_sha256, "tensorrt": tensorrt_version, "gpu": gpu_name, "sm": str(compute_capability),
                "precision": precision, "workspace_mib": int(workspace_mib),
                "calibration": calibration_sha256 if precision == "int8" else None}
    if precision == "int8" and fp16_layers:  # absent otherwise, so engines cached before rescue existed keep their keys
        material["fp16_layers"] = sorted(fp16_layers)
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def build_config(artifact) -> dict:
    """The artifact's tensorrt.json: precision, workspace, calibration data, fp16 layers."""
    path = artifact.path / CONFIG_FILE
    if not path.exists():
        raise ArtifactError(f"{path} is missing; convert the model with `invoke convert --target jetson`")
    try:
        config = json.loads(artifact.read_member(CONFIG_FILE, "TensorRT build settings"))
    except (ValueError, RecursionError) as error:
        raise ArtifactError(f"{path} is not valid JSON ({str(error)[:200]}); convert the model again") from None
    if not isinstance(config, dict) or not isinstance(config.get("workspace_mib"), int):
        raise ArtifactError(f"{path} must be an object with precision and workspace_mib; convert the model again")
    if config.get("precision") not in PRECISIONS:
        raise ArtifactError(f"{path}: precision {config.get('precision')!r} is not one of {', '.join(PRECISIONS)}")
    layers = config.setdefault("fp16_layers", [])
    if not isinstance(layers, list) or not all(isinstance(name, str) and name for name in layers):
        raise ArtifactError(f"{path}: fp16_layers must be a list of layer names, not {layers!r}; convert the model again")
    if layers and config["precision"] != "int8":
        raise ArtifactError(f"{path}: fp16_layers only apply to an int8 engine, this one is {config['precision']}; convert the model again")
    return config


def apply_precision_constraints(trt, network, builder_config, layer_names) -> list[str]:
    """Keep the named layers of an int8 network in fp16: each one's precision and output types
    set to HALF, and the builder told to obey them (OBEY_PRECISION_CONSTRAINTS: without it,
    TensorRT treats them as hints and may still pick int8 kernels). TensorRT's ONNX parser names
    each layer after its ONNX node (a node's extra layers get a suffix), so the names the jetson
    target recorded from the ONNX graph are the layers' own. Returns the layers constrained; a
    name the network lacks is an error, since the engine would not be the one that was judged."""
    wanted = set(layer_names)
    constrained = []
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        if layer.name in wanted:
            layer.precision = trt.DataType.HALF
            for output in range(layer.num_outputs):
                layer.set_output_type(output, trt.DataType.HALF)
            constrained.append(layer.name)
    missing = sorted(wanted - set(constrained))
    if missing:
        raise ArtifactError(f"{CONFIG_FILE} keeps layers in fp16 that the TensorRT network does not have: {', '.join(missing)}; "
                            "the ONNX file and tensorrt.json do not belong together, convert the model again")
    if constrained:
        builder_config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    return constrained


def _imports():
    try:
        import tensorrt as trt
    except ImportError:
        raise RuntimeUnavailable("the TensorRT backend needs TensorRT's Python bindings (JetPack on a Jetson; on an x86 GPU host, "
                                 "the tensorrt wheels from NVIDIA's index) and an NVIDIA GPU") from None
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            raise RuntimeUnavailable("the TensorRT backend needs cuda-python for device buffers and CUDA events (pip install cuda-python)") from None
    return trt, cudart


def check_cuda(result, what: str):
    """cuda-python returns (error, *values); raise on an error, return the value(s)."""
    error, *values = result if isinstance(result, tuple) else (result,)
    if int(error) != 0:
        raise RuntimeError(f"CUDA: {what} failed with error {int(error)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def gpu_identity(cudart) -> dict:
    """Name and compute capability of device 0; RuntimeUnavailable when there is no GPU."""
    try:
        count = check_cuda(cudart.cudaGetDeviceCount(), "cudaGetDeviceCount")
    except RuntimeError as error:
        raise RuntimeUnavailable(f"tensorrt: no usable CUDA device ({error})") from None
    if count < 1:
        raise RuntimeUnavailable("tensorrt: no CUDA device is visible; run on a Jetson or a machine with an NVIDIA GPU")
    properties = check_cuda(cudart.cudaGetDeviceProperties(0), "cudaGetDeviceProperties")
    name = properties.name.decode(errors="replace").rstrip("\0") if isinstance(properties.name, bytes) else str(properties.name)
    return {"name": name, "compute_capability": f"{properties.major}.{properties.minor}"}


def _calibrator(trt, cudart, batches: dict[str, np.ndarray], names: list[str], cache_file: Path):
    """TensorRT's entropy calibrator (implicit int8) fed with the packaged calibration samples."""

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()
            self.index, self.count = 0, len(batches[names[0]])
            self.device = {name: check_cuda(cudart.cudaMalloc(np.ascontiguousarray(batches[name][:1], np.float32).nbytes), "cudaMalloc")
                           for name in names}

        def get_batch_size(self):
            return 1

        def get_batch(self, tensor_names):
            if self.index >= self.count:
                return None
            pointers = []
            for name in tensor_names:
                host = np.ascontiguousarray(batches[name][self.index:self.index + 1], np.float32)
                to_device = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
                check_cuda(cudart.cudaMemcpy(self.device[name], host.ctypes.data, host.nbytes, to_device), "calibration copy")
                pointers.append(int(self.device[name]))
            self.index += 1
            return pointers

        def read_calibration_cache(self):
            return cache_file.read_bytes() if cache_file.is_file() else None

        def write_calibration_cache(self, cache):
            cache_file.write_bytes(bytes(cache))

        def free(self):
            for pointer in self.device.values():
                cudart.cudaFree(pointer)

    return Calibrator()


def build_engine(onnx_path: Path, precision: str, workspace_mib: int, calibration: dict[str, np.ndarray] | None = None,
                 calibration_cache: Path | None = None, log=print, fp16_layers: list[str] | tuple[str, ...] = ()) -> bytes:
    """Parse the ONNX model and build a serialized engine (the board's and `--gpus`' one code path)."""
    trt, cudart = _imports()
    gpu_identity(cudart)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(index)) for index in range(parser.num_errors))
        raise ArtifactError(f"TensorRT {trt.__version__} could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    calibrator = None
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # int8 layers without int8 kernels fall back to fp16, not fp32
    if precision == "int8":
        if not calibration:
            raise ArtifactError(f"{onnx_path.parent}: an int8 engine needs the artifact's calibration data (tensorrt.json names none)")
        names = [network.get_input(index).name for index in range(network.num_inputs)]
        calibrator = _calibrator(trt, cudart, calibration, names, calibration_cache or Path(tempfile.mkdtemp()) / "calibration.cache")
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator
        if fp16_layers:
            kept = apply_precision_constraints(trt, network, config, fp16_layers)
            log(f"tensorrt: {len(kept)} layer(s) kept in fp16 (the conversion's rescue plan)")
    started = time.monotonic()
    log(f"tensorrt: building a {precision} engine of {onnx_path.name} with TensorRT {trt.__version__} (workspace {workspace_mib} MiB)")
    try:
        serialized = builder.build_serialized_network(network, config)
    finally:
        if calibrator is not None:
            calibrator.free()
    if serialized is None:
        raise ArtifactError(f"TensorRT {trt.__version__} could not build a {precision} engine of {onnx_path} (see the TensorRT log above)")
    log(f"tensorrt: engine built in {time.monotonic() - started:.1f} s")
    return bytes(serialized)


def load_calibration(artifact, config: dict) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """The int8 calibration arrays (by input name, each checked against the input's shape before
    it is unpacked) and the file's sha256, or (None, None) for an engine without calibration."""
    calibration = config.get("calibration")
    if not calibration:
        return None, None
    if not isinstance(calibration, dict) or not isinstance(calibration.get("file"), str):
        raise ArtifactError(f"{artifact.path / CONFIG_FILE}: calibration must name its .npz file; convert the model again")
    shapes = {spec["name"]: spec.get("shape") for spec in artifact.inputs}
    names = calibration.get("inputs")  # the network's input names the jetson target stacked the samples by
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        names = list(shapes)
    specs = {name: shapes.get(name) for name in names}
    arrays, digest = artifact.arrays(calibration["file"], "calibration data", specs)
    missing = sorted(set(specs) - set(arrays))
    if missing:
        raise ArtifactError(f"{artifact.path / calibration['file']} lacks the calibration arrays {missing}; convert the model again")
    return arrays, digest


def ensure_engine(artifact, engine_cache=None, log=print) -> tuple[Path, dict]:
    """The cached engine of this artifact for this board's GPU and TensorRT, built on first use."""
    trt, cudart = _imports()
    gpu = gpu_identity(cudart)
    config = build_config(artifact)
    calibration, calibration_sha = load_calibration(artifact, config)
    key = cache_key(artifact.manifest["artifact"]["sha256"], trt.__version__, gpu["name"], gpu["compute_capability"],
                    config["precision"], config["workspace_mib"], calibration_sha, config["fp16_layers"])
    folder = cache_dir(engine_cache)
    engine_path = folder / f"{key}.engine"
    record = {"key": key, "path": str(engine_path), "tensorrt": trt.__version__, "gpu": gpu, "precision": config["precision"],
              "workspace_mib": config["workspace_mib"], "calibration_sha256": calibration_sha, "fp16_layers": len(config["fp16_layers"])}
    if engine_path.is_file():
        return engine_path, {**record, "cached": True, "build_s": 0.0}
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    engine = build_engine(artifact.model_path(), config["precision"], config["workspace_mib"], calibration,
                          folder / f"{key}.calibration.cache", log, config["fp16_layers"])
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".engine-", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(engine)
        os.replace(temporary, engine_path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    (folder / f"{key}.json").write_text(json.dumps({**record, "artifact": artifact.identity()}, indent=2, sort_keys=True) + "\n")
    return engine_path, {**record, "cached": False, "build_s": time.monotonic() - started}
