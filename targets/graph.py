"""One ONNX graph clean-up for every target, run inside a toolchain image before the vendor step.

`clean(source, input_shapes)` returns the cleaned `onnx.ModelProto` and a report of each step:

1. load the model, with its external data from the model's folder;
1b. (`input_values`) replace frozen inputs by constant initializers (targets/freeze.py), so step 6
   folds away what they decide (an If with a constant condition);
2. give every graph input its static shape and clear the symbolic dims elsewhere, so shape
   inference fills them for these sizes;
3. (`min_opset`) raise the default-domain opset with `onnx.version_converter`;
4. make every node and tensor name valid for every toolchain (see `VALID_NAME`), unique,
   keeping names that are valid already; renamed graph inputs/outputs are reported so the
   caller can map back (and again after step 6, for the names the folders create);
5. strict shape inference, falling back to non-strict with the reason recorded;
6. fold constants: onnx-simplifier when the image has it (it folds and simplifies), else ONNX
   Runtime at ORT_ENABLE_BASIC, whose saved graph holds standard ONNX ops only; if both fail
   the unfolded graph is kept and the report says why;
7. (`max_ir_version`) cap the IR version for toolchains that read older files (also right
   after loading, so the folders read what the toolchain will);
8. `onnx.checker.check_model(full_check=True)`.

The same source and arguments give the same bytes (`SerializeToString()`), in one process
and across processes.

This module imports only the standard library at module level: the controller may import
`targets` without onnx, and onnxsim is in some images only.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx

# Names every toolchain accepts, as one rule:
# - onnx2tf (tflite) names each TensorFlow op and tf_keras layer after its ONNX node, and
#   tf.name_scope checks names at the root scope against TensorFlow's _VALID_OP_NAME_REGEX,
#   "^[A-Za-z0-9.][A-Za-z0-9_.\\/>-]*$" (tensorflow/python/framework/ops.py); `Softmax@0`
#   fails there with "is not a valid scope name". onnx2tf itself only rewrites ':' (to '__')
#   and a leading '/' (to 'wa/').
# - Within that, '\' and '>' are left out (no exporter needs them), and '/' only between two
#   non-empty parts: name_scope reads a trailing '/' as "re-enter this absolute scope".
# - The set is closed under appending [A-Za-z0-9_] suffixes, which is what ONNX Runtime's
#   quantizer does (`_QuantizeLinear_Output`, `_quantized`, `_scale`), so its names stay valid.
# - rknn-toolkit2 and TensorRT accept any non-empty string; rknn-toolkit2 writes its own
#   tensor names as `name:out0`, one more reason to keep ':' out.
VALID_NAME = re.compile(r"[A-Za-z0-9.](?:[A-Za-z0-9_.\-]|/(?=[A-Za-z0-9_.\-]))*\Z")
_INVALID_CHARACTER = re.compile(r"[^A-Za-z0-9_.\-/]")
_VALID_FIRST = re.compile(r"[A-Za-z0-9.]")
# Domains whose nodes are ONNX's own operators.
_DEFAULT_DOMAINS = ("", "ai.onnx")
# `min_opset` for ONNX Runtime's static quantizer with per_channel=True: it writes
# DequantizeLinear nodes with an `axis` attribute, which ONNX has only from opset 13, but it
# raises the opset only for models below 10 (quant_utils.update_opset_version). PP-OCR's
# opset-11/12 models quantize "fine" and then fail to load with INVALID_GRAPH
# "Unrecognized attribute: axis for operator DequantizeLinear" (onnxruntime 1.23.0 and 1.32.0).
PER_CHANNEL_QUANTIZER_MIN_OPSET = 13
# Report details worth a word in the one log line of each step.
_LOGGED = ("frozen", "mode", "reason", "with", "why", "from", "to", "renamed_tensors", "renamed_nodes")


def clean(source: str | Path, input_shapes: dict[str, list[int]], log=print, *,
          max_ir_version: int | None = None, min_opset: int | None = None,
          input_values: dict[str, dict] | None = None) -> tuple[onnx.ModelProto, dict]:
    """Load, fix input shapes, fix names, infer shapes, fold constants and check an ONNX model.

    `input_shapes` maps every graph input with a dynamic dimension to its static shape (other
    inputs may be listed too). `min_opset` converts older default-domain opsets up to it (ONNX
    Runtime's per-channel quantizer needs PER_CHANNEL_QUANTIZER_MIN_OPSET); `max_ir_version` caps
    the IR version. `input_values` ({name: {"dtype", "shape", "value"}}, targets/freeze.parse)
    become constants before anything else reads the inputs. Raises ValueError for shapes that do not fit the model and RuntimeError
    when a required step (opset conversion, the final check) fails.
    """
    import onnx

    source = Path(source)
    steps: list[dict] = []

    def record(step: str, model, **details) -> None:
        entry = {"step": step, "nodes": len(model.graph.node), **details}
        steps.append(entry)
        extra = ", ".join(f"{key} {value}" for key, value in details.items() if key in _LOGGED and value)
        log(f"graph clean-up: {step}: {entry['nodes']} nodes" + (f" ({extra})" if extra else ""))

    # onnx.load reads external data relative to the model's folder by default.
    model = onnx.load(str(source), load_external_data=True)
    metadata = [(prop.key, prop.value) for prop in model.metadata_props]
    record("load", model, opset=_default_opset(model), ir_version=model.ir_version)
    # Capped first as well, so the folders (ONNX Runtime 1.23 reads IR <= 11, onnxsim 0.4.36
    # IR <= 10) read the model the toolchain will.
    _cap_ir_version(model, max_ir_version, record)

    if model.functions:
        # Toolchain importers (onnx2tf, rknn-toolkit2, TensorRT's parser) read graphs, not
        # model-local functions; inlining turns the calls into the ops they stand for.
        import onnx.inliner

        count = len(model.functions)
        model = onnx.inliner.inline_local_functions(model)
        record("inline local functions", model, functions=count)

    if input_values:
        from targets.freeze import freeze

        freeze(model, input_values)
        record("freeze inputs", model, frozen=sorted(input_values))
        from targets.fold_if import inline_constant_ifs

        inlined = inline_constant_ifs(model)  # the folders do not inline every If they decide (targets/fold_if.py)
        if inlined:
            record("inline decided Ifs", model, inlined=inlined)

    shapes = _fix_input_shapes(model, input_shapes)
    record("static shapes", model, shapes=shapes)

    opset = _default_opset(model)
    if min_opset is not None and opset is not None and opset < min_opset:
        from onnx import version_converter

        try:
            model = version_converter.convert_version(model, min_opset)
        except Exception as error:  # the converter raises C++ errors of several types
            raise RuntimeError(f"raising opset {opset} to {min_opset} with onnx.version_converter failed ({_first_line(error)}); "
                               f"re-export the model with opset_version={min_opset}") from None
        record("opset", model, **{"from": opset, "to": min_opset})

    # Fixed before folding (ONNX Runtime refuses a graph with two nodes of one name), and
    # again after it for the names the folders create.
    renamed = _make_names_valid(model)
    record("names", model, renamed_tensors=len(renamed["tensors"]), renamed_nodes=len(renamed["nodes"]))

    model, mode = _infer_shapes(model)
    record("shape inference", model, **mode)

    model, folding = _fold_constants(model, {renamed["inputs"].get(name, name): shape for name, shape in shapes.items()})
    _drop_unused_opset_imports(model)
    # The folders rebuild the model; the source's metadata (e.g. PP-OCR's character list) stays.
    del model.metadata_props[:]
    for key, value in metadata:
        model.metadata_props.add(key=key, value=value)
    record("fold constants", model, **folding)

    # The folders name what they create (onnxsim writes e.g. `_v_1377`); those names are
    # not the source's, so they count in the step but stay out of report["renamed"].
    folded_names = _make_names_valid(model)
    if folded_names["tensors"] or folded_names["nodes"]:
        record("names after folding", model, renamed_tensors=len(folded_names["tensors"]), renamed_nodes=len(folded_names["nodes"]))

    _cap_ir_version(model, max_ir_version, record)

    # Fresh value_info for the final names and shapes (quantizers and importers read it).
    model, mode = _infer_shapes(model)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as error:  # ValidationError, InferenceError and C++ wrappers
        raise RuntimeError(f"the cleaned graph of {source.name} fails onnx.checker ({_first_line(error)})") from None
    record("check", model, **mode)
    return model, {"steps": steps, "renamed": renamed, **({"input_values": input_values} if input_values else {})}


def _cap_ir_version(model, max_ir_version: int | None, record) -> None:
    if max_ir_version is not None and model.ir_version > max_ir_version:
        record("ir version", model, **{"from": model.ir_version, "to": max_ir_version})
        model.ir_version = max_ir_version


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _default_opset(model) -> int | None:
    return next((entry.version for entry in model.opset_import if entry.domain in _DEFAULT_DOMAINS), None)


def _static(dim) -> bool:
    return dim.HasField("dim_value") and dim.dim_value > 0


def _fix_input_shapes(model, input_shapes: dict[str, list[int]]) -> dict[str, list[int]]:
    """Static shapes on every graph input; symbolic dims elsewhere cleared for inference."""
    initializers = {init.name for init in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    unknown = sorted(set(input_shapes) - {value.name for value in inputs})
    if unknown:
        raise ValueError(f"input_shapes names {unknown}, but the model's inputs are {[value.name for value in inputs]}")
    shapes = {}
    for value in inputs:
        dims = value.type.tensor_type.shape.dim
        declared = [dim.dim_value if _static(dim) else (dim.dim_param or "?") for dim in dims]
        if value.name in input_shapes:
            shape = [int(size) for size in input_shapes[value.name]]
            if len(shape) != len(dims) or any(isinstance(d, int) and d != s for d, s in zip(declared, shape)):
                raise ValueError(f"input {value.name!r} is declared {declared}; shape {shape} does not fit it")
            for dim, size in zip(dims, shape):
                dim.Clear()
                dim.dim_value = size
        elif not all(isinstance(d, int) for d in declared):
            raise ValueError(f"input {value.name!r} has dynamic dims {declared}; give its static shape in input_shapes")
        shapes[value.name] = [dim.dim_value for dim in dims]
    # Outputs and intermediate values keep their types; their unknown dims are cleared so
    # shape inference recomputes them for the fixed inputs (Paddle writes -1 for "any").
    for value in list(model.graph.output) + list(model.graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if not _static(dim):
                dim.Clear()
    return shapes


def _infer_shapes(model):
    import onnx

    try:
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True), {"mode": "strict"}
    except Exception as error:  # InferenceError, or C++ errors for ops ONNX has no schema for
        reason = _first_line(error)
    return onnx.shape_inference.infer_shapes(model, data_prop=True), {"mode": "non-strict", "reason": reason}


def _fold_constants(model, shapes: dict[str, list[int]]):
    """(model, report) folded with onnx-simplifier, else ONNX Runtime, else unfolded."""
    reasons = []
    try:
        import onnxsim
    except ImportError:
        reasons.append("skipped: onnxsim not in this image")
    else:
        try:
            simplified, ok = onnxsim.simplify(model, overwrite_input_shapes=shapes)
        except Exception as error:  # onnxsim raises C++ and Python errors alike
            reasons.append(f"onnxsim failed: {_first_line(error)}")
        else:
            if ok:
                return simplified, {"with": f"onnxsim {getattr(onnxsim, '__version__', '?')}"}
            reasons.append("onnxsim failed: its check of the simplified model against the original did not pass")
    try:
        folded = _fold_with_onnxruntime(model)
    except Exception as error:  # onnxruntime raises Fail, InvalidGraph, NotImplemented...
        reasons.append(f"onnxruntime failed: {_first_line(error)}")
        return model, {"with": "none", "why": "; ".join(reasons) + "; the graph is kept unfolded"}
    import onnxruntime

    return folded, {"with": f"onnxruntime {onnxruntime.__version__} (ORT_ENABLE_BASIC)", "why": "; ".join(reasons)}


def _fold_with_onnxruntime(model):
    """ONNX Runtime's basic graph optimizations (constant folding, redundant node removal,
    Conv+BN/Add/Mul fusion), saved as the model it would run. The basic level keeps standard
    ONNX ops; the extended and layout levels would add com.microsoft / nchwc ops that other
    toolchains cannot read."""
    import onnx
    import onnxruntime

    with tempfile.TemporaryDirectory(prefix="edgeship-fold-") as folder:
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(Path(folder) / "folded.onnx")
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return onnx.load(options.optimized_model_filepath)


def _walk_graphs(graph):
    """The graph and its If/Loop/Scan subgraphs, depth first in node order."""
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("g"):
                yield from _walk_graphs(attribute.g)
            for subgraph in attribute.graphs:
                yield from _walk_graphs(subgraph)


def _drop_unused_opset_imports(model) -> None:
    """ONNX Runtime stamps every domain it knows (com.microsoft, ai.onnx.ml, ...) into the
    models it saves; an importer may refuse a domain it does not know even when no node
    uses it, so only the domains the nodes use (and the default one) stay."""
    used = {node.domain for graph in _walk_graphs(model.graph) for node in graph.node}
    keep = [entry for entry in model.opset_import if entry.domain in _DEFAULT_DOMAINS or entry.domain in used]
    if len(keep) != len(model.opset_import):
        kept = [(entry.domain, entry.version) for entry in keep]
        del model.opset_import[:]
        for domain, version in kept:
            model.opset_import.add(domain=domain, version=version)


def _tensor_names(graph):
    """Every tensor name a graph mentions, in a fixed order (may repeat)."""
    for value in graph.input:
        yield value.name
    for init in graph.initializer:
        yield init.name
    for sparse in graph.sparse_initializer:
        yield sparse.values.name
        yield sparse.indices.name
    for node in graph.node:
        yield from node.input
        yield from node.output
    for value in graph.output:
        yield value.name
    for value in graph.value_info:
        yield value.name
    for annotation in graph.quantization_annotation:
        yield annotation.tensor_name


def _candidate(name: str, prefix: str) -> str:
    """A valid name close to `name`: invalid characters become '_', empty '/' parts go, and
    a name that cannot start as it does gets `prefix` in front."""
    text = "/".join(part for part in _INVALID_CHARACTER.sub("_", name).split("/") if part)
    if not text or not _VALID_FIRST.match(text):
        text = prefix + text
    return text


def _unique(candidate: str, used: set[str]) -> str:
    name, number = candidate, 0
    while name in used:
        number += 1
        name = f"{candidate}_{number}"
    used.add(name)
    return name


def _make_names_valid(model) -> dict:
    """Rename tensors and nodes whose names break `VALID_NAME` (and duplicate or missing node
    names), keeping valid names as they are; return the changes."""
    graphs = list(_walk_graphs(model.graph))

    # Tensor names are one namespace across the model: a subgraph reads outer-scope tensors
    # by name, so one mapping applies everywhere. "" (an omitted optional input) stays.
    names = list(dict.fromkeys(name for graph in graphs for name in _tensor_names(graph) if name))
    used = {name for name in names if VALID_NAME.match(name)}
    tensors = {name: _unique(_candidate(name, "t"), used) for name in names if name not in used}

    # Node names become TensorFlow op and Keras layer names, which must be unique. The first
    # node with a valid name keeps it; later duplicates and unnamed nodes get new ones.
    nodes, seen, reserved, renamed_nodes = [], set(), set(), {}
    for graph_index, graph in enumerate(graphs):
        for node_index, node in enumerate(graph.node):
            repeated = node.name in seen
            seen.add(node.name)
            keep = not repeated and bool(VALID_NAME.match(node.name))
            if keep:
                reserved.add(node.name)
            nodes.append((graph_index, node_index, node, keep, repeated))
    for graph_index, node_index, node, keep, repeated in nodes:
        if keep:
            continue
        if node.name and not repeated:
            key = node.name
        else:  # unnamed or repeated: the key says where the node is
            key = f"{node.name or '(unnamed ' + node.op_type + ')'} #{node_index}" + (f" in subgraph {graph_index}" if graph_index else "")
        new = _unique(_candidate(node.name, "n") if node.name else f"{node.op_type}_{node_index}", reserved)
        renamed_nodes[key] = node.name = new

    if tensors:
        for graph in graphs:
            for value in list(graph.input) + list(graph.output) + list(graph.value_info):
                value.name = tensors.get(value.name, value.name)
            for init in graph.initializer:
                init.name = tensors.get(init.name, init.name)
            for sparse in graph.sparse_initializer:
                sparse.values.name = tensors.get(sparse.values.name, sparse.values.name)
                sparse.indices.name = tensors.get(sparse.indices.name, sparse.indices.name)
            for node in graph.node:
                node.input[:] = [tensors.get(name, name) for name in node.input]
                node.output[:] = [tensors.get(name, name) for name in node.output]
            for annotation in graph.quantization_annotation:
                annotation.tensor_name = tensors.get(annotation.tensor_name, annotation.tensor_name)

    initializers = {init.name for init in model.graph.initializer}
    graph_inputs = {value.name for value in model.graph.input if value.name not in initializers}
    graph_outputs = {value.name for value in model.graph.output}
    return {
        "inputs": {name: new for name, new in tensors.items() if new in graph_inputs},
        "outputs": {name: new for name, new in tensors.items() if new in graph_outputs},
        "tensors": tensors,
        "nodes": renamed_nodes,
    }


# The clean-up as its own step: `python -m targets.graph /job/job.json` in the image that holds
# onnxsim and ONNX Runtime (the onnx image), once per source and input shapes, so every target
# converts the very same graph. The controller caches what it writes.
MIN_OPSET = PER_CHANNEL_QUANTIZER_MIN_OPSET  # one opset floor for all, so all get one graph
MAX_IR_VERSION = 10  # TensorRT 10.3's parser and onnxsim 0.4.36 read IR <= 10


def main(argv: list[str]) -> int:
    import json

    job = json.loads(Path(argv[0]).read_text())
    out = Path(job["out"])

    def log(message: str) -> None:
        print(f"edgeship-worker: {message}", flush=True)

    model, report = clean(job["source"], {name: list(shape) for name, shape in job["input_shapes"].items()}, log,
                          max_ir_version=job.get("max_ir_version", MAX_IR_VERSION), min_opset=job.get("min_opset", MIN_OPSET),
                          input_values=job.get("input_values") or None)
    (out / "model.onnx").write_bytes(model.SerializeToString())
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    import sys
    import traceback

    try:
        sys.exit(main(sys.argv[1:]))
    except Exception as error:  # one line for the controller; the trace is in the log
        traceback.print_exc()
        text = str(error).strip()
        print(f"edgeship-worker-error: {type(error).__name__}: {text.splitlines()[0] if text else ''}", flush=True)
        sys.exit(3)
