"""Host-side checks of a model against the target's toolchain, before any container starts.

Each check raises one EdgeshipError line naming the file, the value at fault and the fix,
instead of the toolchain's own error from deep inside a container run.

Default-domain opsets each toolchain reads (each target's `onnx_opsets`, from these sources):

| target | toolchain | opsets | sources |
|---|---|---|---|
| tflite | onnx2tf 1.29.24, which runs onnxsim 0.4.36 and ONNX Runtime 1.23.0 on the model | 11-23 | [1], [2] |
| onnx | ONNX Runtime 1.23.0 | 7-23 | [2], [3] |
| rk3588 | rknn-toolkit2 2.5.0 | 11-19 | [4], [5], [6], [7] |
| jetson | TensorRT 10.3 (JetPack 6.1/6.2) | 9-20 | [8] |

[1] onnx2tf README (1.29.24 wheel metadata): "Only for `opset=11` or higher".
[2] Measured with onnxruntime 1.23.0: opset 23 loads, opset 24 fails ValidateOpsetForDomain;
    opset 6 only warns ("only *guarantees* support for models stamped with opset version 7
    or above"), opset 5 fails.
[3] ONNX Runtime docs/Versioning.md: every release runs opsets back to 7.
[4] rknn-toolkit2 v1.6.0 release notes: "Support ONNX model of OPSET 12~19"; its 2.x OP
    support list: "the corresponding ONNX opset version is 19".
[5] airockchip/rknn-toolkit2#539 (2026): opset 21 refused on rk3588 ("OpSet 21 != 19").
[6] Below 19, load_onnx only warns: "It is recommended onnx opset 19, but your onnx model
    opset is 12!" (rknn-toolkit2 1.6.0 log, JeffyCN/meta-rockchip#100).
[7] PaddleOCR's opset-11 exports (paddle2onnx --opset_version 11) convert for RKNPU2
    (FastDeploy's PP-OCR rockchip guide): 11 is the lowest opset with evidence.
[8] onnx-tensorrt operators.md for TensorRT 10.x, as in targets/tensorrt_ops.py.
"""

from __future__ import annotations

from pathlib import Path

from edgeship.errors import EdgeshipError
from targets import mediapipe_kernels
from targets.base import RequestError
from targets.freeze import ONNX_DTYPES

_DEFAULT_DOMAINS = ("", "ai.onnx")

# Custom ops LiteRT's interpreter resolves itself (tensorflow/lite/core/kernels/register.cc,
# BuiltinOpResolver: AddCustom). For a target that runs the .tflite file through LiteRT.
LITERT_BUILTIN_CUSTOM_OPS = ("TFLite_Detection_PostProcess", "Mfcc", "AudioSpectrogram", "NumericVerify")
# MediaPipe's own TFLite kernels (mediapipe/util/tflite/operations), common in its face, hand and
# selfie-segmentation models, and which targets rewrite which of them: targets/mediapipe_kernels.py.


def _graphs(graph):
    """A graph and its If/Loop/Scan subgraphs."""
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("g"):
                yield from _graphs(attribute.g)
            for subgraph in attribute.graphs:
                yield from _graphs(subgraph)


def _nodes(proto):
    for graph in _graphs(proto.graph):
        yield from graph.node
    for function in proto.functions:
        for node in function.node:
            yield node
            for attribute in node.attribute:
                for graph in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                    for inner in _graphs(graph):
                        yield from inner.node


def _tensors(proto):
    """Every TensorProto the model holds: initializers, sparse initializers and tensor
    attributes (Constant values), in subgraphs and functions too. onnx keeps this walk
    private (onnx.external_data_helper._get_all_tensors), so it is spelled out here."""

    def from_attributes(nodes):
        for node in nodes:
            for attribute in node.attribute:
                if attribute.HasField("t"):
                    yield attribute.t
                yield from attribute.tensors
                if attribute.HasField("sparse_tensor"):
                    yield attribute.sparse_tensor.values
                    yield attribute.sparse_tensor.indices
                for sparse in attribute.sparse_tensors:
                    yield sparse.values
                    yield sparse.indices

    for graph in _graphs(proto.graph):
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values
            yield sparse.indices
        yield from from_attributes(graph.node)
    for function in proto.functions:
        yield from from_attributes(function.node)


def external_data_files(path: Path, proto) -> list[Path]:
    """The external-data files the model at `path` reads (each once, in model order).

    Raises EdgeshipError when a file is missing, too short for a tensor, or placed where ONNX
    refuses to read it (absolute, or outside the model's folder)."""
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    path = Path(path)
    folder = path.parent.resolve()
    files: dict[Path, None] = {}
    for tensor in _tensors(proto):
        if not uses_external_data(tensor):
            continue
        info = ExternalDataInfo(tensor)
        location = info.location or ""
        file = (folder / location).resolve()
        if not location or Path(location).is_absolute() or not file.is_relative_to(folder):
            raise EdgeshipError(f"{path}: tensor {tensor.name!r} keeps its data at {location!r}, but ONNX reads external data only from files "
                                f"inside the model's folder; move the file next to the model and re-save it with "
                                f"onnx.save_model(model, path, save_as_external_data=True, location='{Path(location).name or 'weights.bin'}')")
        if not file.is_file():
            raise EdgeshipError(f"{path}: tensor {tensor.name!r} keeps its data in {file}, which does not exist; put {location} next to the "
                                f"model, or save the model with its weights inside (onnx.save_model(onnx.load(path), path) where the data is)")
        offset = int(info.offset or 0)
        length = int(info.length) if info.length else 0
        size = file.stat().st_size
        if offset + length > size:
            raise EdgeshipError(f"{path}: tensor {tensor.name!r} needs bytes {offset}-{offset + length} of {file}, which has {size}; "
                                f"the file is truncated or belongs to another model: copy it again")
        files[file] = None
    return list(files)


def check_onnx_model(path: Path, proto, target_name: str, opsets: tuple[int, int], domains: tuple[str, ...]) -> None:
    """Refuse, with one line, an ONNX model the target's toolchain cannot read: missing
    external data, custom-domain operators, an opset outside `opsets`, non-float32 inputs.

    `domains` are the domains the target runs beyond ONNX's default one (its `onnx_domains`)."""
    from collections import Counter

    import onnx

    path = Path(path)
    external_data_files(path, proto)

    local_functions = {(function.domain, function.name) for function in proto.functions}
    allowed = set(_DEFAULT_DOMAINS) | set(domains)
    custom = Counter((node.domain, node.op_type) for node in _nodes(proto)
                     if node.domain not in allowed and (node.domain, node.op_type) not in local_functions)
    if custom:
        listed = ", ".join(f"{op_type} (domain {domain!r}, {count} node{'s' if count > 1 else ''})"
                           for (domain, op_type), count in sorted(custom.items()))
        raise EdgeshipError(f"{path}: target {target_name} cannot run operators from custom domains: {listed}; re-export the model "
                            f"with standard ONNX operators only (no custom ops), or replace these ops in the graph")

    low, high = opsets
    opset = next((entry.version for entry in proto.opset_import if entry.domain in _DEFAULT_DOMAINS), None)
    if opset is not None and opset < low:
        raise EdgeshipError(f"{path}: opset {opset} is older than target {target_name} reads (opsets {low}-{high}); convert it with "
                            f"onnx.version_converter.convert_version(model, {low}) or re-export with opset_version={low}")
    if opset is not None and opset > high:
        raise EdgeshipError(f"{path}: opset {opset} is newer than target {target_name} reads (opsets {low}-{high}); re-export with "
                            f"opset_version={high} (or try onnx.version_converter.convert_version(model, {high}))")

    initializers = {init.name for init in proto.graph.initializer}
    for value in proto.graph.input:
        code = value.type.tensor_type.elem_type
        # the dtypes edgeship carries (targets/freeze.ONNX_DTYPES); which of them the target feeds is
        # request.check_input_dtypes' question, once the inputs left unfrozen are known
        if value.name not in initializers and (code not in ONNX_DTYPES or not value.type.HasField("tensor_type")):
            kind = onnx.TensorProto.DataType.Name(code) if value.type.HasField("tensor_type") else value.type.WhichOneof("value")
            raise EdgeshipError(f"{path}: input {value.name!r} is of type {kind}; edgeship carries {', '.join(ONNX_DTYPES.values())} "
                                f"inputs, so export with one of those (do the cast in preprocessing)")


def _custom_op_fix(name: str) -> str:
    if name.startswith("Flex"):
        return (f"{name} is a TensorFlow op kept through the Flex delegate (SELECT_TF_OPS), which no edgeship toolchain has: "
                f"convert with converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS] and replace the op it refuses")
    if name in mediapipe_kernels.BY_NAME:
        kernel = mediapipe_kernels.BY_NAME[name]
        if kernel.rewrite:
            return (f"{name} is a MediaPipe kernel that targets {' and '.join(mediapipe_kernels.APPLIED_BY)} rewrite into "
                    f"{kernel.rewrite}: convert for one of them, or convert the model's ONNX or SavedModel export instead")
        return (f"{name} is a MediaPipe kernel with no rewrite into TFLite builtins ({kernel.why}): convert the model's ONNX or "
                f"SavedModel export instead, or rebuild it from standard layers")
    return "re-export it with TFLite builtin ops only, or convert the model's ONNX export instead"


def check_tflite_model(path: Path, target_name: str = "", allowed_custom_ops: tuple[str, ...] = ()) -> None:
    """Refuse, with one line, a TFLite flatbuffer with custom operators the target's
    toolchain has no kernel for (`allowed_custom_ops` are those it has; the MediaPipe kernels
    the target rewrites into builtins in its image pass too).

    The operator codes are read with the `tflite` package: the TFLite schema's generated
    flatbuffer bindings, so the host needs no TensorFlow."""
    from collections import Counter

    from tflite.BuiltinOperator import BuiltinOperator
    from tflite.Model import Model

    path = Path(path)
    buffer = path.read_bytes()
    if len(buffer) < 8 or buffer[4:8] != b"TFL3":
        raise EdgeshipError(f"{path} is not a TFLite flatbuffer (no TFL3 identifier in its header); "
                            f"the file is truncated or not TFLite: export it again")
    try:
        model = Model.GetRootAs(buffer, 0)
        custom_codes = {}
        for index in range(model.OperatorCodesLength()):
            code = model.OperatorCodes(index)
            if code.BuiltinCode() == BuiltinOperator.CUSTOM:
                custom_codes[index] = (code.CustomCode() or b"").decode("utf-8", "replace")
        uses: Counter[str] = Counter()
        options: Counter[tuple[str, bytes]] = Counter()  # each custom op's custom options
        for subgraph_index in range(model.SubgraphsLength()):
            subgraph = model.Subgraphs(subgraph_index)
            for operator_index in range(subgraph.OperatorsLength()):
                operator = subgraph.Operators(operator_index)
                opcode_index = operator.OpcodeIndex()
                if opcode_index in custom_codes:
                    uses[custom_codes[opcode_index]] += 1
                    raw = operator.CustomOptionsAsNumpy()
                    options[custom_codes[opcode_index], bytes(raw) if not isinstance(raw, int) else b""] += 1
    except Exception as error:  # flatbuffers raises struct.error, IndexError, ... on a damaged file
        raise EdgeshipError(f"{path} is not a readable TFLite flatbuffer ({type(error).__name__}: {error}); export it again") from None
    rewritten = mediapipe_kernels.rewritten_ops(target_name)
    allowed = (*allowed_custom_ops, *rewritten)
    missing = {name: count for name, count in sorted(uses.items()) if name not in allowed}
    if missing:
        toolchain = f"target {target_name}'s toolchain" if target_name else "the target's toolchain"
        listed = ", ".join(f"{name!r} ({count} node{'s' if count > 1 else ''})" for name, count in missing.items())
        first = next(iter(missing))
        raise EdgeshipError(f"{path}: {toolchain} has no kernel for custom op{'s' if len(missing) > 1 else ''} {listed}; "
                            f"convert a model without {'them' if len(missing) > 1 else 'it'}: {_custom_op_fix(first)}")
    for name, raw in options:
        if name == "Convolution2DTransposeBias" and name in rewritten:
            try:  # what the rewrite in the image reads: a malformed one is refused here, before any container
                mediapipe_kernels.parse_transpose_conv_options(raw)
            except RequestError as error:
                raise EdgeshipError(f"{path}: {error}") from None
