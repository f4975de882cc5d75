"""A conversion request, checked on the host and completed into a Plan before any container starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgeship.convert.axes import declare, parse_batch_axes, parse_state
from edgeship.convert.data_checks import check_class_ids, check_label_count, check_readable, check_reference_memory, check_values
from edgeship.convert.hits import parse_options  # noqa: F401  # here so a cache hit needs no model checks
from edgeship.convert.inputs import (
    calibration_files,
    check_calibration,
    check_eval,
    check_eval_labels,
    check_preprocess,
    check_task,
    check_typed_data,
    default_task,
    detect_format,
    load_onnx,
    onnx_signature,
    parse_input_shapes,
    read_labels,
    read_preprocess,
    read_task,
    resolve_io,
    source_sha256,
)
from edgeship.convert.model_checks import check_onnx_model, check_tflite_model, external_data_files
from edgeship.errors import EdgeshipError
from edgeship_runtime import names
from targets import freeze
from targets.base import RequestError, Target


@dataclass
class Request:
    target: str
    model: Path
    quant: str | None = None
    calib: Path | None = None
    eval: Path | None = None
    labels: Path | None = None
    input_shapes: list[str] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)
    out: Path = Path("artifacts")
    name: str | None = None
    preprocess: Path | None = None  # JSON: how a camera frame becomes the model input (the demo reads it)
    # What the model is for: a task name (classify, detect, segment, ocr-rec, generic) or a JSON
    # file with the task and its decoder's parameters. Default: classify when --labels names
    # classes, else generic.
    task: str | None = None
    gpus: bool = False  # also build and measure a test engine on this host's GPU (targets with a gpu_image)
    batch_axes: list[str] = field(default_factory=list)  # NAME:AXIS (or NAME:none), edgeship/convert/axes.py
    state: list[str] = field(default_factory=list)  # OUTPUT:INPUT, the output that feeds an input at the next step
    # NAME=VALUE[,VALUE...]: ONNX inputs replaced by constants before the graph clean-up (targets/freeze.py)
    input_values: list[str] = field(default_factory=list)


def resolve_options(target, quant: str, given: dict[str, str]) -> dict[str, str]:
    """The target's options for this quantization, user values checked against the table."""
    resolved = {}
    for key, value in given.items():
        option = target.option(key)
        if option is None:
            known = ", ".join(o.name for o in target.options) or "none"
            raise EdgeshipError(f"target {target.name} has no option {key!r}; its options: {known}")
        if option.applies_to and quant not in option.applies_to:
            raise EdgeshipError(f"option {key}={value} only applies to --quant {'/'.join(option.applies_to)} on target {target.name}, not {quant}; "
                                f"drop it or change --quant")
        if option.parse is not None:
            try:
                value = option.parse(value)
            except ValueError as error:
                raise EdgeshipError(f"option {key}={value!r} for target {target.name}: {error}; {option.help}") from None
        elif value not in option.choices:
            raise EdgeshipError(f"option {key}={value!r} is not offered by target {target.name}; choose one of: {', '.join(option.choices)}")
        resolved[key] = value
    for option in target.options:
        if option.name not in resolved and (not option.applies_to or quant in option.applies_to):
            resolved[option.name] = option.default
    return resolved


@dataclass
class Plan:
    """Everything a conversion needs. ONNX sources are checked completely on the host;
    other formats need their toolchain to be read, so `inputs` stays None until
    `complete_plan` has asked the image."""

    target: Target
    request: Request
    quant: str
    options: dict
    source_format: str
    source_sha256: str
    input_shapes: dict
    calibration_files: list | None
    labels: list | None
    inputs: list | None = None
    outputs: list | None = None
    calibration: dict | None = None
    evaluation: dict | None = None
    preprocess_request: dict | None = None  # as the user wrote it (in the cache key)
    preprocess: dict | None = None  # completed against the input, once its shape is known
    task_request: dict | None = None  # as the user wrote it (in the cache key)
    task: dict | None = None  # validated against the outputs, with its defaults
    external_data: list[Path] = field(default_factory=list)  # files an ONNX source keeps its weights in
    state: list = field(default_factory=list)  # [{"output", "input"}]: what a stateful model feeds back (edgeship/convert/axes.py)
    # frozen inputs: {name: {"dtype", "shape", "value"}} (targets/freeze.parse), gone from `inputs`
    input_values: dict = field(default_factory=dict)


def default_name(model: Path) -> str:
    """What an artifact calls its model without --name: the model file's stem, or its folder's
    name for model.onnx and SavedModels (as edgeship.convert.cache.model_name names it)."""
    return model.parent.name if model.stem in ("model", "saved_model") or model.name == "saved_model" else model.stem


# An artifact's folder is `{model}-{target}-{quant}-{key[:12]}` (edgeship.convert.cache.artifact_name):
# the fleet planner and the bundle hold the folder itself to the one name rule, since it names a
# folder on the boards too, so a model name may use only what the rest leaves of its 64 characters.
NAME_LIMIT = 64  # edgeship_runtime.names.NAME_RULE's longest name
KEY_IN_FOLDER = 12  # characters of the cache key in an artifact folder's name


def artifact_folder(model: str, target: str, quant: str, key: str) -> str:
    return f"{model}-{target}-{quant}-{key[:KEY_IN_FOLDER]}"


def longest_name(target: str, quant: str) -> int:
    """The longest model name whose artifact folder for target and quant still follows the one name rule."""
    return NAME_LIMIT - len(artifact_folder("", target, quant, "0" * KEY_IN_FOLDER))


def check_name(request: Request, target: str | None = None, quant: str | None = None) -> str:
    """The artifact's model name under the one name rule (edgeship_runtime.names): it becomes a
    folder under --out, a release folder and a systemd unit's argument on the boards. Checked
    before anything is read or written, so `--name ../../x` writes nothing anywhere. Given the
    target and quant, the name must also leave its artifact folder's name within the rule."""
    if request.name is not None:
        name, what, fix = request.name, "--name", "e.g. --name {}"
    else:
        name, what, fix = default_name(request.model), f"the model's name (taken from {request.model})", "pass --name {}"
    try:
        names.check(name, what, fix.format(names.suggest(name)))
    except names.UnsafeName as error:
        raise EdgeshipError(str(error)) from None
    if target is not None and quant is not None and len(name) > (longest := longest_name(target, quant)):
        raise EdgeshipError(f"{what} {name!r} is {len(name)} characters, over the {longest} that target {target} --quant {quant} leaves it: "
                            f"its artifact folder NAME-{target}-{quant}-KEY (KEY: {KEY_IN_FOLDER} characters) names a folder on the boards "
                            f"and must keep to {NAME_LIMIT}; {fix.format(names.suggest(name[:longest]))}")
    return name


def find_target(name: str):
    """The target called `name`; an unknown one is the user's one-line error."""
    import targets

    try:
        return targets.get(name)
    except targets.TargetError as error:
        raise EdgeshipError(str(error)) from None


def plan(request: Request) -> Plan:
    check_name(request)
    target = find_target(request.target)
    quant = request.quant or target.default_quant
    if request.gpus and not target.gpu_image:
        import targets

        on_gpu = ", ".join(name for name, row in targets.TARGETS.items() if row.gpu_image)
        raise EdgeshipError(f"--gpus is only used by targets that build on a GPU ({on_gpu}), not {target.name}; drop --gpus")
    if quant not in target.quantizations:
        raise EdgeshipError(f"target {target.name} does not offer --quant {quant}; choose one of: {', '.join(target.quantizations)}")
    check_name(request, target.name, quant)
    options = resolve_options(target, quant, request.options)
    model = request.model
    fmt = detect_format(model)
    if fmt not in target.source_formats:
        raise EdgeshipError(f"target {target.name} cannot convert {fmt} models ({model}); it takes: {', '.join(target.source_formats)}")
    if quant not in target.quantizations_for(fmt):
        raise EdgeshipError(f"{model}: a {fmt} source converts to --quant {' or '.join(target.quantizations_for(fmt))} on target {target.name}, "
                            f"not {quant} (a compiled {fmt} file is not re-quantized); convert the model's ONNX, SavedModel or Keras source "
                            f"for {quant}")
    input_shapes = parse_input_shapes(request.input_shapes)
    parse_batch_axes(request.batch_axes), parse_state(request.state)  # the flags' form, before the model is read
    if quant in target.needs_calibration and request.calib is None:
        raise EdgeshipError(f"--quant {quant} on target {target.name} needs a calibration set; pass --calib DIR with one .npy sample per file")
    if quant not in target.needs_calibration and request.calib is not None:
        raise EdgeshipError(f"--calib is only used by --quant {'/'.join(target.needs_calibration)} on target {target.name}, not {quant}; "
                            f"drop --calib")
    if request.eval is not None and not request.eval.is_file():
        raise EdgeshipError(f"evaluation set {request.eval} does not exist; pass --eval FILE.npz with inputs stacked on axis 0 and optional labels")
    check_readable(calibration_files(request.calib) if request.calib else [], request.eval)  # headers only: before any container
    p = Plan(target, request, quant, options, fmt, source_sha256(model), input_shapes, None,
             read_labels(request.labels) if request.labels else None)
    p.preprocess_request = read_preprocess(request.preprocess) if request.preprocess else None
    p.task_request = read_task(request.task)
    if request.input_values and fmt != "onnx":
        raise EdgeshipError(f"--input-value {request.input_values[0]!r}: {model} is a {fmt} model; inputs are frozen in ONNX sources only, "
                            f"so convert the model's ONNX export or drop --input-value")
    if fmt == "onnx":
        proto = load_onnx(model)
        p.external_data = external_data_files(model, proto)
        check_onnx_model(model, proto, target.name, target.onnx_opsets, target.onnx_domains)
        declared_inputs, declared_outputs = onnx_signature(proto)
        try:
            p.input_values = freeze.parse(request.input_values, declared_inputs, input_shapes)
        except freeze.FreezeError as error:
            raise EdgeshipError(f"{model}: {error}") from None
        complete_plan(p, [spec for spec in declared_inputs if spec["name"] not in p.input_values], declared_outputs)
    elif fmt == "tflite":
        check_tflite_model(model, target.name)
    p.calibration_files = calibration_files(request.calib) if request.calib else None
    # the values last, once their form fits (an ONNX source's checks ran above; other formats' inputs
    # are read in their image, so their data is checked before that container starts)
    check_values(p.calibration_files or [], request.eval)
    return p


def check_input_dtypes(model: Path, target: Target, inputs: list[dict]) -> None:
    """An input of a dtype the target's toolchain or board runtime cannot feed is the user's one line."""
    import targets

    for spec in inputs:
        if spec["dtype"] not in target.input_dtypes:
            taking = ", ".join(name for name, row in targets.TARGETS.items() if spec["dtype"] in row.input_dtypes)
            raise EdgeshipError(f"{model}: input {spec['name']!r} is {spec['dtype']}, but target {target.name} feeds "
                                f"{'/'.join(target.input_dtypes)} inputs only; convert for {taking or 'another target'}, or freeze "
                                f"the input with --input-value {spec['name']}=VALUE")


def complete_plan(p: Plan, declared_inputs: list[dict], declared_outputs: list[dict]) -> Plan:
    """Fix the input shapes and check the calibration and eval data against them."""
    shapes = {name: shape for name, shape in p.input_shapes.items() if name not in p.input_values}  # a frozen input's is its value's
    p.inputs, p.outputs = resolve_io(p.request.model, declared_inputs, declared_outputs, shapes)
    p.inputs, p.outputs, p.state = declare(p.request.model, declared_inputs, declared_outputs, p.inputs, p.outputs,
                                           parse_batch_axes(p.request.batch_axes), parse_state(p.request.state))
    check_input_dtypes(p.request.model, p.target, p.inputs)
    if p.target.check_request is not None:
        try:
            p.target.check_request(p.options, p.inputs, p.source_format)
        except RequestError as error:
            raise EdgeshipError(f"{p.request.model}: {error} (target {p.target.name})") from None
    p.calibration = check_calibration(p.request.calib, p.inputs) if p.request.calib else None
    p.evaluation = check_eval(p.request.eval, p.inputs, p.state) if p.request.eval else None
    check_typed_data(calibration_files(p.request.calib) if p.request.calib else None, p.request.eval, p.inputs)
    check_reference_memory(p.request.model, p.inputs, p.outputs, (p.evaluation or {}).get("samples", 0), (p.calibration or {}).get("samples", 0),
                           bool(p.evaluation and p.evaluation["labelled"]), ((p.evaluation or {}).get("sequences") or [0])[0])
    if p.preprocess_request is not None and p.request.preprocess is not None:
        p.preprocess = check_preprocess(p.request.preprocess, p.preprocess_request, p.inputs)
    record = p.task_request or default_task(p.labels is not None, p.request.eval, bool(p.evaluation and p.evaluation["labelled"]))
    p.task = check_task(p.request.task or f"(default: {record['name']})", record, p.inputs, p.outputs, p.labels)
    if p.labels is not None and p.request.labels is not None:
        check_label_count(p.request.labels, p.labels, p.task, p.outputs)
    if p.evaluation and p.evaluation["labelled"] and p.request.eval:
        check_eval_labels(p.request.eval, p.task, p.evaluation["samples"])
    check_class_ids(p.request.eval if p.evaluation and p.evaluation["labelled"] else None, p.task, p.outputs)
    return p


