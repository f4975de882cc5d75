"""Host-side checks of everything a conversion reads, before any container starts.

Each check fails with one EdgeshipError line naming the file, the value and the fix.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from edgeship.convert.data_checks import Arrays, Scan
from edgeship.errors import EdgeshipError
from edgeship_runtime.files import sha256_file, tree_sha256
from targets.freeze import ONNX_DTYPES

_ONNX_FLOAT = 1  # onnx.TensorProto.FLOAT


def detect_format(model: Path) -> str:
    if not model.exists():
        raise EdgeshipError(f"model file {model} does not exist; check the --model path")
    if model.is_dir():
        if (model / "saved_model.pb").exists():
            return "savedmodel"
        raise EdgeshipError(f"{model} is a directory without saved_model.pb; pass an .onnx file, a .keras/.h5 file or a SavedModel directory")
    suffix = model.suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix in (".keras", ".h5"):
        return "keras"
    if suffix == ".tflite":
        with open(model, "rb") as handle:
            header = handle.read(8)
        if header[4:8] != b"TFL3":
            raise EdgeshipError(f"{model} is not a TFLite flatbuffer (no TFL3 identifier in its header); "
                                f"the file is truncated or not TFLite: export it again")
        return "tflite"
    raise EdgeshipError(f"{model}: unknown model format {suffix or '(no suffix)'!r}; pass an .onnx file, a .tflite file, "
                        f"a .keras/.h5 file or a SavedModel directory")


def load_onnx(model: Path):
    """Parse and check an ONNX file; return the ModelProto."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        proto = onnx.load(str(model), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise EdgeshipError(f"{model} is not a readable ONNX model ({detail}); the file is truncated or not ONNX: re-export it") from None
    from edgeship.convert.model_checks import external_data_files

    external = external_data_files(model, proto)  # a missing weights file is named before the checker trips on it
    try:
        # with external data, by path: the checker finds the weights files from the model's folder
        # (given the proto, it looks for them relative to the working directory)
        onnx.checker.check_model(str(model) if external else proto)
    except Exception as error:  # onnx raises ValidationError and several C++ wrappers
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise EdgeshipError(f"{model} is not a valid ONNX model ({detail}); re-export it with a supported opset") from None
    if not proto.graph.node or not proto.graph.output:
        raise EdgeshipError(f"{model} has an empty graph (no nodes or no outputs); re-export the model")
    return proto


def _dims(value_info) -> list[int | str]:
    dims: list[int | str] = []
    for dim in value_info.type.tensor_type.shape.dim:
        if dim.HasField("dim_value") and dim.dim_value > 0:
            dims.append(int(dim.dim_value))
        else:
            dims.append(dim.dim_param or "?")
    return dims


def parse_input_shapes(items) -> dict[str, list[int]]:
    """["name:1,3,224,224", ...] -> {"name": [1, 3, 224, 224]}."""
    shapes = {}
    for item in items or ():
        name, sep, dims = item.rpartition(":")
        try:
            shape = [int(d) for d in dims.split(",")]
        except ValueError:
            shape = []
        if not sep or not name or not shape or any(d <= 0 for d in shape):
            raise EdgeshipError(f"--input-shape {item!r} is not NAME:D0,D1,... with positive integers; write e.g. input:1,3,224,224")
        shapes[name] = shape
    return shapes


def onnx_signature(proto) -> tuple[list[dict], list[dict]]:
    """Declared inputs (not initializers) and outputs of an ONNX graph; dynamic dims are strings."""
    initializers = {init.name for init in proto.graph.initializer}
    inputs = [{"name": vi.name, "dims": _dims(vi), "float32": vi.type.tensor_type.elem_type == _ONNX_FLOAT,
               "dtype_code": vi.type.tensor_type.elem_type, "dtype": ONNX_DTYPES.get(vi.type.tensor_type.elem_type)}
              for vi in proto.graph.input if vi.name not in initializers]
    outputs = [{"name": vo.name, "dims": _dims(vo)} for vo in proto.graph.output]
    return inputs, outputs


def resolve_io(model: Path, declared_inputs: list[dict], declared_outputs: list[dict],
               input_shapes: dict[str, list[int]]) -> tuple[list[dict], list[dict]]:
    """Static input specs (dynamic dims filled from --input-shape) and output specs.

    Works for any source format: declared dims are ints, or strings/None for dynamic ones.
    """
    known = [item["name"] for item in declared_inputs]
    for name in input_shapes:
        if name not in known:
            raise EdgeshipError(f"--input-shape names {name!r}, but {model} has inputs {sorted(known)}; use one of those names")
    inputs = []
    for item in declared_inputs:
        name, dims = item["name"], [d if isinstance(d, int) and d > 0 else (d or "?") for d in item["dims"]]
        pretty = "[" + ",".join(str(d) for d in dims) + "]"
        if name in input_shapes:
            shape = input_shapes[name]
            if len(shape) != len(dims) or any(isinstance(d, int) and d != s for d, s in zip(dims, shape)):
                raise EdgeshipError(f"--input-shape {name}:{','.join(map(str, shape))} does not fit {model} input {name!r} of shape {pretty}; "
                                    f"keep its rank and fixed dimensions")
        elif any(not isinstance(d, int) for d in dims):
            example = ",".join(str(d) if isinstance(d, int) else "1" for d in dims)
            raise EdgeshipError(f"{model}: input {name!r} has a dynamic shape {pretty}; pass --input-shape {name}:{example} (your real sizes)")
        else:
            shape = [int(d) for d in dims]
        # ONNX sources name their dtype; other formats' readers say whether an input is float32
        dtype = item.get("dtype") or ("float32" if item.get("float32", True) else None)
        if dtype is None:
            raise EdgeshipError(f"{model}: input {name!r} is of type {item.get('dtype_code', 'other than float32')}; edgeship carries "
                                f"{', '.join(ONNX_DTYPES.values())} inputs (of ONNX sources; float32 of others), so export with one of those")
        inputs.append({"name": name, "shape": shape, "dtype": dtype})
    # Output dimensions the model leaves symbolic are "?" (they follow from the inputs).
    outputs = [{"name": item["name"], "shape": [d if isinstance(d, int) and d > 0 else "?" for d in item["dims"]]} for item in declared_outputs]
    return inputs, outputs


def onnx_io(model: Path, proto, input_shapes: dict[str, list[int]]) -> tuple[list[dict], list[dict]]:
    return resolve_io(model, *onnx_signature(proto), input_shapes)


def source_sha256(model: Path) -> str:
    """sha256 of a model file, or of a SavedModel directory's files (names and contents)."""
    return sha256_file(model) if model.is_file() else tree_sha256(model)


def external_sha256(files: list[Path]) -> str | None:
    """sha256 of an ONNX model's external-data files (names and contents), None without any: the
    weights are part of what a conversion reads, though the model file's own sha256 leaves them out."""
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + sha256_file(path).encode() + b"\n")
    return digest.hexdigest()


def external_data_of(model: Path) -> list[Path]:
    """The external-data files of an ONNX model ([] for other formats). Only the graph is parsed:
    the model was checked when it was planned, and the checker would read every weight again."""
    if model.suffix != ".onnx" or not model.is_file():
        return []
    import onnx

    from edgeship.convert.model_checks import external_data_files

    return external_data_files(model, onnx.load(str(model), load_external_data=False))


def _sample_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".npy", ".npz"))


def _fit(array_shape: tuple, spec: dict) -> bool:
    from edgeship.convert.axes import sample_fits

    return sample_fits(array_shape, spec)


def calibration_files(folder: Path, hint: str = "") -> list[Path]:
    if not folder.exists() or not folder.is_dir():
        raise EdgeshipError(f"calibration directory {folder} does not exist; pass --calib DIR holding one .npy sample per file")
    files = _sample_files(folder)
    if not files:
        raise EdgeshipError(f"calibration directory {folder} holds no .npy or .npz samples; add samples shaped like the model input{hint}")
    return files


def calibration_digest(files: list[Path]) -> str:
    return tree_sha256(files[0].parent, files)


def check_calibration(folder: Path, inputs: list[dict]) -> dict:
    """Validate a calibration directory (one .npy sample per file, or .npz by input name)."""
    files = calibration_files(folder, f" ({inputs[0]['name']}: {inputs[0]['shape']})")
    for path in files:
        if path.suffix != ".npz" and len(inputs) != 1:
            raise EdgeshipError(f"calibration sample {path} is a .npy, but the model has {len(inputs)} inputs; "
                                f"save .npz files keyed by input name")
        # shapes from the headers alone: a small compressed file may claim gigabytes, so nothing is unpacked here
        shapes = {name: header[0] for name, header in Arrays(path, "calibration sample", inputs[0]["name"]).headers.items()}
        for spec in inputs:
            if spec["name"] not in shapes:
                raise EdgeshipError(f"calibration sample {path} lacks input {spec['name']!r}; save .npz files keyed by every input name")
            if not _fit(shapes[spec["name"]], spec):
                raise EdgeshipError(f"calibration sample {path} has shape {list(shapes[spec['name']])}, "
                                    f"but input {spec['name']!r} needs {spec['shape']}; save samples of the model's input shape")
    return {"files": [p.name for p in files], "samples": len(files), "sha256": calibration_digest(files)}


def check_eval(path: Path, inputs: list[dict], state: list[dict] | None = None) -> dict:
    """Validate an evaluation set: .npz with every input stacked on its batch axis (edgeship.convert.axes),
    optional `labels`, and for a stateful model optional `sequence_lengths`."""
    if not path.is_file():
        raise EdgeshipError(f"evaluation set {path} does not exist; pass --eval FILE.npz with inputs stacked on axis 0 and optional labels")
    shapes = {name: header[0] for name, header in Arrays(path, "evaluation set").headers.items()}  # headers only, nothing unpacked
    from edgeship.convert.axes import eval_layout

    layout = eval_layout(path, shapes, inputs, state or [])
    # the labels' format (and count) depends on the task: check_eval_labels, once the task is known
    return {**layout, "labelled": "labels" in shapes, "sha256": sha256_file(path)}


def read_labels(path: Path) -> list[str]:
    if not path.is_file():
        raise EdgeshipError(f"labels file {path} does not exist; pass --labels FILE with one class name per line (or a JSON list)")
    text = path.read_text()
    if path.suffix == ".json":
        try:
            labels = json.loads(text)
        except json.JSONDecodeError as error:
            raise EdgeshipError(f"labels file {path} is not valid JSON ({error}); write a JSON list of class names") from None
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise EdgeshipError(f"labels file {path} must hold a JSON list of strings")
        return labels
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_preprocess(path: Path) -> dict:
    """The --preprocess JSON object, as written (validated against the input by check_preprocess)."""
    if not path.is_file():
        raise EdgeshipError(f"preprocess file {path} does not exist; pass --preprocess FILE.json such as "
                            '{"color": "rgb", "scale": 0.00392156862745098, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}')
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise EdgeshipError(f"preprocess file {path} is not valid JSON ({error}); write one JSON object") from None
    if not isinstance(spec, dict):
        raise EdgeshipError(f"preprocess file {path} must hold a JSON object (keys color, invert, scale, mean, std, resize, layout)")
    return spec


def check_preprocess(path: Path, spec: dict, inputs: list[dict]) -> dict:
    """The complete preprocess record for the model's one image input (the runtime's own validation)."""
    from edgeship_runtime.errors import ArtifactError
    from edgeship_runtime.preprocess import validate

    if len(inputs) != 1:
        raise EdgeshipError(f"--preprocess {path}: the model takes {len(inputs)} inputs ({', '.join(i['name'] for i in inputs)}); "
                            "a preprocess record describes one image input, drop --preprocess")
    try:
        return validate(spec, inputs[0], str(path))
    except ArtifactError as error:
        raise EdgeshipError(str(error)) from None


def read_task(spec: str | None) -> dict | None:
    """--task: a task name, or a JSON file with the task and its parameters (None: not given;
    `default_task` infers it once the data is known)."""
    from edgeship_runtime import tasks

    if spec is None:
        return None
    names = tasks.names()
    if spec in names:
        return {"name": spec}
    path = Path(spec)
    if not path.is_file():
        raise EdgeshipError(f"--task {spec!r} is neither a task ({', '.join(names)}) nor a JSON file; give one, e.g. "
                            f'--task task.json holding {{"name": "{names[0]}"}} and the task\'s parameters')
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise EdgeshipError(f"task file {path} is not valid JSON ({error}); write one JSON object such as {{\"name\": \"{names[0]}\"}}") from None
    if not isinstance(record, dict):
        raise EdgeshipError(f"task file {path} must hold a JSON object with a \"name\" ({', '.join(names)}) and its parameters")
    return record


def default_task(has_class_names: bool, eval_path: Path | None, labelled: bool) -> dict:
    """Without --task: the task the registry implies (a classifier when --labels names classes or the eval
    set labels each sample with one class id), else the fallback (cosine and SNR of every output)."""
    from edgeship_runtime import tasks

    labels = None
    if eval_path is not None and labelled:
        with np.load(eval_path, allow_pickle=False) as data:
            labels = data["labels"]
    return {"name": tasks.implied(has_class_names, labels)}


def check_task(where: str, record: dict, inputs: list[dict], outputs: list[dict], labels: list[str] | None) -> dict:
    """The complete task record, validated against the model's outputs (the board runtime's own check)."""
    from edgeship_runtime.errors import ArtifactError
    from edgeship_runtime.tasks import validate

    try:
        return validate(record, outputs, labels, f"--task {where}", inputs=inputs)
    except ArtifactError as error:
        raise EdgeshipError(str(error)) from None


def check_eval_labels(path: Path, task: dict, samples: int) -> None:
    """The eval set's labels must be in the task's format (class ids, boxes, masks or texts)."""
    from edgeship_runtime.errors import ArtifactError
    from edgeship_runtime.tasks import check_labels

    with np.load(path, allow_pickle=False) as data:
        labels = data["labels"]
    try:
        check_labels(task, labels, samples, f"evaluation set {path}")
    except ArtifactError as error:
        raise EdgeshipError(f"{error} (task {task['name']}; pass --task to say what the model is for)") from None


def check_typed_data(calibration: list[Path] | None, eval_path: Path | None, inputs: list[dict]) -> None:
    """The calibration samples and eval arrays of non-float32 inputs hold values of the input's dtype:
    integers within its range for int32/int64/uint8, booleans for bool (float32 inputs take any
    numbers, cast). The files were checked readable and of the right shapes before."""
    typed = [spec for spec in inputs if spec.get("dtype", "float32") != "float32"]
    if not typed:
        return
    for path in calibration or ():
        arrays = Arrays(path, "calibration sample", typed[0]["name"])
        for spec in typed if path.suffix == ".npz" else typed[:1]:
            _check_typed(_extremes(arrays, spec["name"]), spec, f"calibration sample {path}")
    if eval_path is not None:
        arrays = Arrays(eval_path, "evaluation set")
        for spec in typed:
            _check_typed(_extremes(arrays, spec["name"]), spec, f"evaluation set {eval_path}")


def _extremes(arrays: Arrays, name: str) -> np.ndarray:
    """The smallest and largest value of one array, streamed in chunks (a small compressed file may
    unpack to gigabytes): [min, max] in the array's dtype, or an empty array of it."""
    samples = arrays.samples(name, whole=True)  # kept referenced: the archive stays open while its one sample is read
    scan = Scan(next(samples))
    samples.close()
    dtype = arrays.dtype_of(name)
    return np.array([scan.low, scan.high], dtype) if scan.low is not None else np.zeros(0, dtype)


def _check_typed(array: np.ndarray, spec: dict, where: str) -> None:
    name, dtype = spec["name"], spec["dtype"]
    fix = f"save it as {dtype} (array.astype(numpy.{'bool_' if dtype == 'bool' else dtype}))"
    if dtype == "bool":
        if array.dtype.kind != "b":
            raise EdgeshipError(f"{where}: array {name!r} is {array.dtype}, but input {name!r} is bool; {fix}")
        return
    if array.dtype.kind not in "iub":
        raise EdgeshipError(f"{where}: array {name!r} is {array.dtype}, but input {name!r} is {dtype} (integers); {fix}")
    info = np.iinfo(np.dtype(dtype))
    if array.size and (int(array.min()) < info.min or int(array.max()) > info.max):
        raise EdgeshipError(f"{where}: array {name!r} holds {int(array.min())}..{int(array.max())}, outside {dtype}'s "
                            f"{info.min}..{info.max}; give input {name!r} values it can hold")
