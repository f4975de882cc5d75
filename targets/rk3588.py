"""`rk3588`: Rockchip NPUs (RK3588 and its family) through Rockchip's rknn-toolkit2.

ONNX or TFLite in, `.rknn` out, for the chip named by `--option platform=` (rk3588 by
default). `int8` quantizes with the calibration set (the toolkit's dataset list is written
from it), `fp16` keeps float16 weights and activations. `mean`/`std` fold input
normalization into the model, so a board can feed raw pixels.

Everything SDK-side happens in ONE process and ONE `RKNN` object: load -> build -> export,
then the toolkit's x86 simulator (`init_runtime()` with no target) runs the model it has
just built on the reference inputs, and, when an output falls below tolerance, the
toolkit's per-layer `accuracy_analysis` explains where the error comes from. Every SDK
call's return code is checked, and all the toolkit prints (its Python log and its C++
compiler's stdout) goes to `rknn-toolkit.log` beside the artifact.

Layout: the artifact takes 4-D inputs channel-last (NHWC), like RKNN Lite's default; the
manifest records the permutation from an ONNX source's NCHW, and the runtime applies it.

YOLOv8/YOLO11 detectors (an ONNX detect task with the yolov8 decoder and a DFL head in the graph):
the toolkit fails on the head, so the converter converts a copy cut before the DFL
(targets/yolo_head.py, as Rockchip's model zoo exports them): the artifact's outputs are per level
the DFL logits and class scores, its task the yolov8_dfl decoder (DFL, boxes and NMS on the board's
CPU), the fp32 reference the cut graph, and the manifest's `rewrites.yolo_head` says what was cut.

`rescue=auto` (targets/rescue.py): when int8 misses the task's tolerance, the toolkit's
`accuracy_analysis` ranks the compiled layers by their own ("single") cosine against fp32, and
the rebuild keeps the chosen layers float16 through the toolkit's hybrid quantization:
`hybrid_quantization_step1` writes the model, its data and its `.quantization.cfg` once, and
each rebuild names the layers in the cfg's `custom_quantize_layers` and runs
`hybrid_quantization_step2`. A layer the compiler fused (a Conv with its ReLU) is analysed as
one row group and kept float16 as one.

Reproducibility: the RKNN compiler (closed source) writes some bytes of its command
buffers from memory it never initialised. The image sets MALLOC_PERTURB_ so fresh heap
memory carries one fixed pattern instead of stale data; what still varies between two
builds are pointer-sized words holding heap/stack addresses. `compare_builds` names them.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from targets.base import Converter, Option, RequestError, Target, log
from targets.job import Job
from targets.mediapipe_kernels import builtin_source, manifest_record
from targets.rescue import Layer, Ranking, Rescuer, onnx_macs, rescue_options

PLATFORMS = ("rk3588", "rk3566", "rk3568", "rk3576", "rk3562")
LOG_FILE = "rknn-toolkit.log"
ANALYSIS_FILE = "accuracy_analysis.txt"


def parse_floats(value: str) -> str:
    """Normalize a comma-separated list of numbers ("" means none); raise ValueError otherwise."""
    if value.strip() == "":
        return ""
    try:
        numbers = [float(part) for part in value.split(",")]
    except ValueError:
        raise ValueError("not a comma-separated list of numbers") from None
    if not all(math.isfinite(number) for number in numbers):
        raise ValueError("numbers must be finite")
    return ",".join(repr(number) for number in numbers)


def parse_std(value: str) -> str:
    normalized = parse_floats(value)
    if normalized and any(float(part) == 0 for part in normalized.split(",")):
        raise ValueError("a std of 0 divides by zero")
    return normalized


def normalization(options: dict, inputs: list[dict], source_format: str):
    """(mean, std) per input as lists of per-channel values, or (None, None); RequestError when
    the number of values fits no input's channels (checked on the host, as check_request)."""
    mean, std = _floats(options.get("mean", "")), _floats(options.get("std", ""))
    if mean is None and std is None:
        return None, None
    per_input_mean, per_input_std = [], []
    for spec in inputs:
        channels = spec["shape"][1] if len(spec["shape"]) == 4 and source_format == "onnx" else spec["shape"][-1]
        for label, values in (("mean", mean), ("std", std)):
            if values is not None and len(values) not in (1, channels):
                raise RequestError(f"option {label} has {len(values)} values but input {spec['name']!r} has {channels} channels; "
                                   f"give 1 or {channels}")
        per_input_mean.append([(mean or [0.0])[i % len(mean or [0.0])] for i in range(channels)])
        per_input_std.append([(std or [1.0])[i % len(std or [1.0])] for i in range(channels)])
    return per_input_mean, per_input_std


def check_request(options: dict, inputs: list[dict], source_format: str) -> None:
    normalization(options, inputs, source_format)


class ToolkitError(RuntimeError):
    """An SDK call failed; the message names the call and the toolkit's own error lines."""


@contextlib.contextmanager
def toolkit_output(log_path: Path):
    """Send everything written to fd 1 and 2 (Python and C++ alike) into the toolkit log."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _error_lines(log_path: Path, since: int) -> str:
    text = _ANSI.sub("", log_path.read_bytes()[since:].decode(errors="replace"))
    errors = [line.strip() for line in text.splitlines()
              if re.match(r"^(E |E RKNN:|\w*Error:)", line.strip()) and "Unkown op target" not in line]
    return "; ".join(dict.fromkeys(errors[-3:])) or "no error line in the toolkit log"


def toolkit_call(name: str, function, log_path: Path, *args, **kwargs):
    """Run one SDK call with its output in the log; a non-zero return or an exception
    becomes a ToolkitError naming the call and the toolkit's error lines."""
    since = log_path.stat().st_size if log_path.exists() else 0
    try:
        with toolkit_output(log_path):
            result = function(*args, **kwargs)
    except Exception as error:  # the toolkit raises as well as returning codes
        raise ToolkitError(f"rknn-toolkit2 {name} raised {type(error).__name__}: {_error_lines(log_path, since)}") from error
    if isinstance(result, int) and result != 0:
        raise ToolkitError(f"rknn-toolkit2 {name} returned {result}: {_error_lines(log_path, since)} (full log: {LOG_FILE})")
    return result


def _floats(text: str) -> list[float] | None:
    return [float(part) for part in text.split(",")] if text else None


# cosines go negative when int8 ruins a layer (seen: -0.09459), so they carry a sign
_ANALYSIS_ROW = re.compile(r"^\[(?P<op>[^\]]+)\]\s+(?P<name>\S+)\s+(?P<entire_cos>-?[\d.]+)\s*\|\s*(?P<entire_euc>[\d.]+)\s+"
                           r"(?P<single_cos>-?[\d.]+)\s*\|\s*(?P<single_euc>[\d.]+)")


def parse_analysis(text: str) -> list[dict]:
    """Rows of the toolkit's error_analysis.txt: layer, op, cosine/euclidean of the whole
    network up to that layer ("entire") and of the layer alone ("single")."""
    rows = []
    for line in _ANSI.sub("", text).splitlines():
        match = _ANALYSIS_ROW.match(line.strip())
        if match:
            rows.append({"layer": match["name"], "op": match["op"], "entire_cos": float(match["entire_cos"]),
                         "entire_euc": float(match["entire_euc"]), "single_cos": float(match["single_cos"]),
                         "single_euc": float(match["single_euc"])})
    return rows


_ANALYSIS_NAME = re.compile(r"^\[(?P<op>[^\]]+)\]\s+(?P<name>\S+)")
# Analysis rows of the toolkit's own data conversions (int8 <-> float at the model's edges and
# between precisions): nothing to keep float there.
_CONVERSION_OPS = ("Input", "exDataConvert", "OutputOperator", "InputOperator")


def parse_analysis_groups(text: str) -> list[dict]:
    """The analysis rows as the compiler's layers: a row without figures is an op fused into the
    next row that has them (a Conv into its ReLU), so each group is the ops of one compiled layer
    with that row's figures. Data conversions are left out."""
    figures = {row["layer"]: row for row in parse_analysis(text)}
    groups: list[dict] = []
    pending: list[tuple[str, str]] = []
    for line in _ANSI.sub("", text).splitlines():
        match = _ANALYSIS_NAME.match(line.strip())
        if not match or match["op"] in _CONVERSION_OPS:
            pending = [] if match else pending
            continue
        pending.append((match["name"], match["op"]))
        row = figures.get(match["name"])
        if row is not None:
            groups.append({"names": [name for name, _ in pending], "ops": [op for _, op in pending], **row})
            pending = []
    return groups


_LAYER_ROW = re.compile(r"^D RKNN: \[[^\]]*\]\s+(?P<id>\d+)\s+(?P<op>\S+)\s+(?P<dtype>\S+)\s+(?P<target>CPU|NPU)\s+"
                        r"(?P<inputs>\S+)\s+(?P<output>\S+)\s+\S+\s+\S+\s+(?P<full>\S+)")


def parse_layer_table(log_text: str) -> list[dict]:
    """The compiler's "Network Layer Information Table" (the last one in the log)."""
    tables: list[list[dict]] = []
    current: list[dict] | None = None
    for line in _ANSI.sub("", log_text).splitlines():
        if "Network Layer Information Table" in line:
            current = []
            tables.append(current)
            continue
        match = _LAYER_ROW.match(line)
        if match and current is not None:
            current.append({"id": int(match["id"]), "op": match["op"], "dtype": match["dtype"], "target": match["target"],
                            "output_shape": match["output"], "name": match["full"]})
    return tables[-1] if tables else []


def _has_dynamic_dims(path: str) -> bool:
    import onnx

    model = onnx.load(path, load_external_data=False)
    initializers = {init.name for init in model.graph.initializer}
    return any(not dim.HasField("dim_value") for value in model.graph.input if value.name not in initializers
               for dim in value.type.tensor_type.shape.dim)


def _tflite_interpreter(path: str):
    import tensorflow as tf

    return tf.lite.Interpreter(model_path=path, num_threads=1)


def hybrid_operands(config: str) -> list[str]:
    """The operand names of a hybrid quantization config (the keys of its quantize_parameters),
    read with the YAML parser the toolkit itself uses."""
    from ruamel.yaml import YAML

    parsed = YAML(typ="safe").load(config) or {}
    parameters = parsed.get("quantize_parameters") or {}
    return [str(name) for name in parameters]


def _without_default_rnn_layout(model_path: str, workdir: Path) -> str:
    """The model, or a copy without the `layout` attribute of its LSTM/GRU/RNN nodes where it is
    the default 0: rknn-toolkit2 2.5.0 checks recurrent nodes against the opset before 14, which
    has no such attribute ("Unrecognized attribute: layout for operator LSTM", Silero VAD)."""
    import onnx

    model = onnx.load(model_path)
    changed = False
    for node in model.graph.node:
        if node.op_type in ("LSTM", "GRU", "RNN"):
            for attribute in list(node.attribute):
                if attribute.name == "layout" and onnx.helper.get_attribute_value(attribute) == 0:
                    node.attribute.remove(attribute)
                    changed = True
    if not changed:
        return model_path
    copy = workdir / "without-rnn-layout.onnx"
    onnx.save(model, str(copy))
    return str(copy)


class RK3588Converter(Converter):
    """One `RKNN` object per job: built by `convert`, then run by the simulator and, when an
    output misses its tolerance, analysed layer by layer. The simulator can only run a model
    built in the same object, so the object lives on the converter until `close`."""

    def __init__(self, target: Target, job: Job, workdir: Path, log=log):
        super().__init__(target, job, workdir, log)
        self.log_path = self.out / LOG_FILE
        self.rknn = None
        self.simulator_ready = False
        self.head_cut = self._cut_yolo_head()

    def _cut_yolo_head(self) -> tuple[Path, dict] | None:
        """(the cut ONNX graph, its manifest record) when the model is a YOLOv8/YOLO11 detector with its DFL
        head in the graph (targets/yolo_head.py): the toolkit fails on that head, so the job's outputs and task
        become the cut's (per level DFL logits and class scores, the yolov8_dfl decoder) before anything runs."""
        task = self.job.task
        if self.job.source.format != "onnx" or task.get("decoder") != "yolov8":  # only a detector's record has a decoder
            return None
        from edgeship_runtime.tasks.record import validate
        from targets.yolo_head import cut

        found = cut(self.job.model_path, self.workdir / "yolo-head-cut.onnx")
        if found is None:
            return None
        path, head, record = found
        self.job.outputs = head.outputs()
        self.job.task = validate(head.task(task), self.job.outputs, self.job.labels, "the cut YOLO head", self.job.inputs)
        self.log(f"YOLO head cut before its DFL ({record['removed_nodes']} nodes to the CPU decoder): outputs "
                 f"{', '.join(self.job.output_names)}, task decoder {self.job.task['decoder']}")
        return path, record

    def _call(self, name: str, function, *args, cwd: Path | None = None, **kwargs):
        with contextlib.chdir(cwd or self.workdir):  # the toolkit writes check*.onnx files into the working directory
            return toolkit_call(name, function, self.log_path, *args, **kwargs)

    # -- input data as the toolkit wants it ------------------------------------------------
    def normalization(self):
        """(mean, std) per input as lists of per-channel values, or (None, None)."""
        return normalization(self.job.options, self.job.inputs, self.job.source.format)

    def channel_last(self, spec: dict) -> bool:
        """True when a source tensor is channel-first and the artifact takes it channel-last."""
        return self.job.source.format == "onnx" and len(spec["shape"]) == 4

    def _toolkit_array(self, value, mean: list | None, std: list | None):
        """A source-layout float sample as the toolkit's .npy files want it: NCHW for 4-D
        inputs (the toolkit checks this for TFLite sources too), raw values when mean/std
        (this input's, per channel) are folded into the model."""
        import numpy as np

        value = np.asarray(value, np.float32)
        if self.job.source.format == "tflite" and value.ndim == 4:
            value = value.transpose(0, 3, 1, 2)
        if mean is not None:
            shape = (1, -1, 1, 1) if value.ndim == 4 else (-1,)
            value = value * np.reshape(np.asarray(std, np.float32), shape) + np.reshape(np.asarray(mean, np.float32), shape)
        return np.ascontiguousarray(value, np.float32)

    def write_samples(self, samples: list[dict], folder: Path) -> list[list[str]]:
        import numpy as np

        folder.mkdir(parents=True, exist_ok=True)
        mean, std = self.normalization()
        rows = []
        for number, sample in enumerate(samples):
            row = []
            for index, spec in enumerate(self.job.inputs):
                path = folder / f"{number:05d}-{index}.npy"
                np.save(path, self._toolkit_array(sample[spec["name"]], mean and mean[index], std and std[index]))
                row.append(str(path))
            rows.append(row)
        return rows

    # -- the build ---------------------------------------------------------------------------
    def _configured(self):
        """A new RKNN object (the previous one released) configured for the job."""
        from rknn.api import RKNN

        self.close()
        mean, std = self.normalization()
        with toolkit_output(self.log_path):
            self.rknn = rknn = RKNN(verbose=True)
        options = self.job.options
        config: dict[str, Any] = {"target_platform": options["platform"], "optimization_level": 3, "float_dtype": "float16"}
        if mean is not None:
            config.update(mean_values=mean, std_values=std)
        if self.job.quant == "int8":
            config.update(quantized_dtype="w8a8", quantized_algorithm=options["algorithm"], quantized_method="channel")
        if self.job.source.format == "tflite":
            # The toolkit's Pad+Conv fusion fails on read-only TFLite weight buffers
            # ("assignment destination is read-only"); its own message suggests this.
            config["disable_rules"] = ["fuse_pad_into_conv"]
        self._call("config", rknn.config, **config)
        return rknn

    def _load(self, rknn) -> None:
        source = str(self.head_cut[0]) if self.head_cut else self.job.model_path
        if self.job.source.format == "onnx":
            source = _without_default_rnn_layout(source, self.workdir)
            fixed: dict[str, Any] = {}
            if _has_dynamic_dims(source):  # pin dynamic dimensions to the job's static shapes
                fixed = {"inputs": [self.job.graph_name(name) for name in self.job.input_names],
                         "input_size_list": [spec["shape"] for spec in self.job.inputs]}
            self._call("load_onnx", rknn.load_onnx, model=source, **fixed)
        else:  # MediaPipe kernels rewritten into builtins first (targets/mediapipe_kernels.py)
            self._call("load_tflite", rknn.load_tflite, model=str(self.tflite_source()[0]))

    def _dataset(self, calibration: list[dict]) -> Path:
        """The toolkit's dataset list of the calibration samples (written once per job)."""
        dataset = self.workdir / "dataset.txt"
        if not dataset.exists():
            rows = self.write_samples(calibration, self.workdir / "dataset")
            dataset.write_text("".join(" ".join(row) + "\n" for row in rows))
        return dataset

    def convert(self, calibration: list[dict], reference_set: list[dict]) -> Path:
        quantize = self.job.quant == "int8"
        rknn = self._configured()
        self._load(rknn)
        dataset = self._dataset(calibration) if quantize else None
        self._call("build", rknn.build, do_quantization=quantize, dataset=str(dataset) if dataset else None)
        artifact = self.workdir / "model.rknn"
        self._call("export_rknn", rknn.export_rknn, str(artifact))
        return artifact

    def build_hybrid(self, calibration: list[dict], float16_layers: list[str], artifact: Path) -> Path:
        """The int8 model with these layers (the compiler's names, as the analysis shows them) in
        float16: the toolkit's hybrid quantization. Step 1 (calibrate, write the model, its data
        and the quantization config) runs once per job; each build edits the config and runs step 2."""
        hybrid = self.workdir / "hybrid"
        if not hybrid.exists():
            hybrid.mkdir()
            rknn = self._configured()
            self._load(rknn)
            self._call("hybrid_quantization_step1", rknn.hybrid_quantization_step1, dataset=str(self._dataset(calibration)),
                       proposal=False, cwd=hybrid)
            self.close()
        config = next(hybrid.glob("*.quantization.cfg"), None)
        if config is None:
            raise ToolkitError(f"rknn-toolkit2 hybrid_quantization_step1 wrote no .quantization.cfg into {hybrid} (see {LOG_FILE})")
        text = config.read_text()
        empty = "custom_quantize_layers: {}"
        if empty not in text:
            raise ToolkitError(f"{config.name} has no '{empty}' line; the toolkit's config format changed, so layers cannot be kept float16")
        # Step 2 takes only the operands step 1's config lists (its quantize_parameters); the
        # analysis also names tensors the hybrid graph does not have (a fused op's inner output).
        operands = set(hybrid_operands(text))
        unknown = [name for name in float16_layers if name not in operands]
        if unknown:
            self.log(f"hybrid: {len(unknown)} analysed tensor(s) are not operands of the hybrid graph, left as they are: "
                     f"{', '.join(unknown[:4])}{' ...' if len(unknown) > 4 else ''}")
        float16_layers = [name for name in dict.fromkeys(float16_layers) if name in operands]
        # the cfg is YAML; JSON strings are YAML scalars, so any layer name is quoted safely
        edited = text.replace(empty, "custom_quantize_layers:\n" + "".join(f"    {json.dumps(name)}: float16\n" for name in float16_layers), 1)
        trial = hybrid / f"trial-{len(float16_layers):03d}.cfg"  # not *.quantization.cfg: the glob above finds step 1's only
        trial.write_text(edited)
        stem = config.name[:-len(".quantization.cfg")]
        rknn = self._configured()
        self._call("hybrid_quantization_step2", rknn.hybrid_quantization_step2, model_input=str(hybrid / f"{stem}.model"),
                   data_input=str(hybrid / f"{stem}.data"), model_quantization_cfg=str(trial), cwd=hybrid)
        self._call("export_rknn", rknn.export_rknn, str(artifact))
        return artifact

    def close(self) -> None:
        if self.rknn is not None:
            with toolkit_output(self.log_path):
                self.rknn.release()
            self.rknn = None
        self.simulator_ready = False

    def _built(self):
        if self.rknn is None:
            raise RuntimeError("the RKNN simulator needs the model built by this converter; call convert first")
        return self.rknn

    # -- accuracy on the toolkit's x86 simulator ----------------------------------------------
    def run_converted(self, artifact: Path, io_mapping: dict, samples: list[dict]) -> list[dict]:
        """Outputs of the just-built model in the toolkit's simulator, by source output name:
        RKNN Lite's backend with this converter's RKNN object in place of the board's runtime,
        so inputs are laid out, normalized and mapped exactly as on a board."""
        from edgeship_runtime.backends.rknnlite import RKNNLiteBackend

        converter = self

        class SimulatorBackend(RKNNLiteBackend):
            name = "rknn-simulator"
            accelerator = "cpu"

            def _load(self) -> None:
                self.runtime = converter._built()
                if not converter.simulator_ready:
                    converter._call("init_runtime (simulator)", self.runtime.init_runtime)
                    converter.simulator_ready = True
                self._bind_io()

            def _inference(self, inputs):
                outputs = converter._call("inference (simulator)", self.runtime.inference, inputs=inputs)
                if outputs is None:
                    raise ToolkitError(f"rknn-toolkit2 simulator returned no outputs (see {LOG_FILE})")
                return outputs

            def _close(self) -> None:
                pass  # the converter's RKNN object stays for the accuracy analysis

        provisional = self.job.provisional_artifact(self.out, artifact, io_mapping, self.target.runtime_backend)
        with SimulatorBackend(provisional, threads=1) as backend:
            return [backend.infer(sample) for sample in samples]

    def analysis_table(self, samples: list[dict]) -> str:
        """The toolkit's per-layer accuracy analysis (fp32 'golden' vs simulator) of the model
        built last, on the first sample: its error_analysis.txt."""
        import shutil

        rknn = self._built()
        rows = self.write_samples(samples[:1], self.workdir / "analysis-inputs")
        snapshot = self.workdir / "snapshot"
        shutil.rmtree(snapshot, ignore_errors=True)
        self._call("accuracy_analysis", rknn.accuracy_analysis, inputs=rows[0], output_dir=str(snapshot))
        return _ANSI.sub("", (snapshot / "error_analysis.txt").read_text())

    def analyse(self, samples: list[dict]) -> dict:
        """The toolkit's per-layer accuracy analysis on the first reference sample; the table is
        kept as accuracy_analysis.txt."""
        self.log("below tolerance: running the toolkit's per-layer accuracy analysis")
        text = self.analysis_table(samples)
        (self.out / ANALYSIS_FILE).write_text(text)
        layers = parse_analysis(text)
        # "entire" accumulates the error up to a layer; "single" is the layer's own error.
        from edgeship_runtime.tasks import generic_tolerances

        # the cosine a layer's output must keep at this precision, whatever the task's own gate
        limit = self.job.tolerances.get("min_cosine") or generic_tolerances(self.job.quant)["min_cosine"]
        first_below = next((row for row in layers if row["entire_cos"] < limit), None)
        worst = sorted(layers, key=lambda row: row["single_cos"])[:5]
        return {"file": ANALYSIS_FILE, "samples": 1, "min_cosine": limit, "first_layer_below_tolerance": first_below,
                "worst_single_layers": worst, "layers": layers}

    def rescuer(self, calibration: list[dict], samples: list[dict], reference: list[dict]) -> Rescuer:
        return RK3588Rescuer(self, calibration, samples, reference)

    # -- the artifact's I/O and layers ---------------------------------------------------------
    def io_map(self, artifact: Path) -> dict:
        """4-D ONNX inputs go in channel-last; mean/std folded into the model are recorded so
        the runtime turns the caller's normalized inputs into the raw values the model takes."""
        mean, std = self.normalization()
        mapping: dict = {"inputs": {}, "outputs": {}}
        for index, spec in enumerate(self.job.inputs):
            perm = [0, 2, 3, 1] if self.channel_last(spec) else None
            shape = [spec["shape"][i] for i in perm] if perm else list(spec["shape"])
            entry = {"name": spec["name"], "shape": shape, "perm": perm}
            if mean is not None:
                entry["normalize"] = {"mean": mean[index], "std": std[index]}
            mapping["inputs"][spec["name"]] = entry
        for spec in self.job.outputs:
            mapping["outputs"][spec["name"]] = {"name": spec["name"], "shape": list(spec["shape"]), "perm": None}
        return mapping

    def op_report(self, artifact: Path) -> dict:
        """Source op types, the compiled layers, and which of them the toolkit put on the CPU."""
        layers = parse_layer_table(self.log_path.read_text(errors="replace"))
        if not layers:
            raise ToolkitError(f"no layer table in {LOG_FILE}; the toolkit's compiler output changed, so CPU/NPU placement is unknown")
        io_ops = ("InputOperator", "OutputOperator")
        compute = [layer for layer in layers if layer["op"] not in io_ops]
        source_ops = {}
        if self.job.source.format == "onnx":
            import onnx

            source_ops = dict(sorted(Counter(node.op_type for node in onnx.load(self.job.model_path).graph.node).items()))
        dtype_of = {layer["name"].split(":", 1)[-1]: layer["dtype"].lower() for layer in layers if layer["op"] in io_ops}

        def describe(specs, transposed):
            return [{"name": spec["name"], "shape": [spec["shape"][i] for i in (0, 2, 3, 1)] if transposed(spec) else list(spec["shape"]),
                     "dtype": dtype_of.get(spec["name"], "float32"), "quantization": [0.0, 0]} for spec in specs]

        return {
            "ops": dict(sorted(Counter(layer["op"] for layer in compute).items())),
            "op_count": len(compute),
            "source_ops": source_ops,
            "npu_layers": sum(layer["target"] == "NPU" for layer in compute),
            "cpu_layers": [{"id": layer["id"], "op": layer["op"], "name": layer["name"]} for layer in compute if layer["target"] == "CPU"],
            "platform": self.job.options["platform"],
            "inputs": describe(self.job.inputs, self.channel_last),
            "outputs": describe(self.job.outputs, lambda spec: False),
            "file_size": artifact.stat().st_size,
            **(manifest_record(self.tflite_source()[1]) if self.job.source.format == "tflite" else {}),
            **({"rewrites": {"yolo_head": self.head_cut[1]}} if self.head_cut else {}),
        }

    # -- TFLite sources --------------------------------------------------------------------------
    def tflite_source(self) -> tuple[Path, list[dict]]:
        """(the TFLite source with MediaPipe's kernels rewritten into builtins, what was rewritten)."""
        return builtin_source(Path(self.job.source.path), self.workdir)

    def inspect(self) -> tuple[list[dict], list[dict]]:
        """Declared I/O of a TFLite source (float I/O only: the toolkit quantizes itself)."""
        from targets.tflite_source import source_io

        return source_io(_tflite_interpreter(str(self.tflite_source()[0])))

    def reference(self, samples: list[dict]) -> list[dict]:
        """fp32 outputs: ONNX Runtime for ONNX (the cut graph when the YOLO head was cut: the source has no
        such outputs), TensorFlow Lite's interpreter (one thread) for TFLite."""
        if self.head_cut:
            return self._cut_reference(self.head_cut[0], samples)
        if self.job.source.format == "onnx":
            return super().reference(samples)
        from targets.tflite_source import source_reference

        return source_reference(_tflite_interpreter(str(self.tflite_source()[0])), samples, [spec["name"] for spec in self.job.outputs])

    def _cut_reference(self, cut_model: Path, samples: list[dict]) -> list[dict]:
        import onnxruntime

        session = getattr(self, "_cut_session", None)
        if session is None:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = 1  # the same summation order on every run
            session = self._cut_session = onnxruntime.InferenceSession(str(cut_model), options, providers=["CPUExecutionProvider"])
        names = self.job.output_names
        # the cut is of the cleaned graph, which names its inputs as the clean-up did (frozen ones are constants there)
        return [dict(zip(names, session.run(names, {self.job.graph_name(name): value for name, value in sample.items()}))) for sample in samples]

    # -- on the controller ---------------------------------------------------------------------------
    @classmethod
    def summary(cls, artifact_dir: Path, manifest: dict, ops: dict) -> list[str]:
        from targets.rescue import rescue_summary

        lines = rescue_summary(manifest)
        per_layer = manifest["accuracy"].get("per_layer")
        if per_layer:
            worst = ", ".join(f"{row['layer']} ({row['op']}) {row['single_cos']:.4f}" for row in per_layer["worst_single_layers"][:3])
            first = per_layer.get("first_layer_below_tolerance")
            where = (f"the network's output first falls below cosine {per_layer['min_cosine']} at {first['layer']} ({first['op']}, "
                     f"{first['entire_cos']:.4f}); " if first else "")
            lines.append(f"per-layer analysis: {artifact_dir / per_layer['file']}: {where}worst single layers (cosine): {worst}")
        cut = (manifest.get("rewrites") or {}).get("yolo_head")
        if cut:
            lines.append(f"YOLO head cut before its DFL ({cut['removed_nodes']} nodes): outputs per stride "
                         f"{', '.join(str(level['stride']) for level in cut['levels'])}, decoded on the CPU by {manifest['task']['decoder']}")
        if "cpu_layers" in ops:
            cpu = ", ".join(f"{layer['op']}" for layer in ops["cpu_layers"]) or "none"
            lines.append(f"layers: {ops['op_count']} ({ops['npu_layers']} on the NPU); on the CPU instead: {cpu}")
        return lines


_WEIGHTED_OPS = ("Conv", "ConvTranspose", "Deconvolution", "Gemm", "MatMul", "FullyConnected")
_SUFFIXES = re.compile(r"_+(int8|int16|float16)$")  # the toolkit's names for a tensor in another precision


class RK3588Rescuer(Rescuer):
    """Ranks the compiled layers by the toolkit's single-layer cosine on the plain int8 build;
    rebuilds with hybrid quantization, the chosen layer groups in float16. Judged on the x86
    simulator (the converter's run_converted), which holds the model built last."""

    def __init__(self, converter: RK3588Converter, calibration: list[dict], samples: list[dict], reference: list[dict]):
        super().__init__(converter, calibration, samples, reference)
        self.members: dict[str, tuple[str, ...]] = {}

    def rank(self) -> Ranking:
        converter: RK3588Converter = self.converter  # type: ignore[assignment]
        groups = parse_analysis_groups(converter.analysis_table(self.samples))
        producers: dict[str, str] = {}
        inputs_of: dict[str, list[str]] = {}
        macs_of: dict[str, int] = {}
        total = 0
        if self.job.source.format == "onnx":
            import onnx

            model = onnx.load(self.job.model_path)
            producers = {name: node.name for node in model.graph.node for name in node.output}
            inputs_of = {node.name: list(node.input) for node in model.graph.node}
            counter = onnx_macs(model)
            macs_of, total = counter.per_layer, counter.total

        def with_compute(nodes: list[str]) -> list[str]:
            """The compiler names a fused layer after its last op (a Conv with its batch-norm Mul/Add is
            'p2o.Add.19'): walk up from there, through ops without MACs, to the Conv it fused."""
            node = nodes[-1]
            for _ in range(4):
                if macs_of.get(node):
                    return [*nodes, node] if node not in nodes else nodes
                upstream = [producers[name] for name in inputs_of.get(node, []) if name in producers]
                if not upstream:
                    break
                node = upstream[0]
            return nodes

        layers = []
        for group in groups:
            nodes = [node for node in (producers.get(name) or producers.get(_SUFFIXES.sub("", name)) for name in group["names"]) if node]
            if nodes and any(op in _WEIGHTED_OPS for op in group["ops"]) and not any(macs_of.get(node) for node in nodes):
                nodes = with_compute(nodes)
            source = tuple(dict.fromkeys(nodes))
            name = group["names"][-1]
            self.members[name] = tuple(group["names"])
            layers.append(Layer(name, "+".join(group["ops"]), score=1.0 - group["single_cos"], figure="single_cosine",
                                value=group["single_cos"], macs=sum(macs_of.get(node, 0) for node in source), source=source))
        return Ranking(layers, total, "rknn-toolkit2 accuracy_analysis on 1 reference sample: each compiled layer's own cosine "
                       "against fp32 (its 'single' figure)", precision="float16")

    def build(self, layers: tuple[str, ...]) -> Path:
        converter: RK3588Converter = self.converter  # type: ignore[assignment]
        if not layers:
            return converter.convert(self.calibration, self.samples)
        float16 = [name for layer in layers for name in self.members.get(layer, (layer,))]
        return converter.build_hybrid(self.calibration, float16, converter.workdir / f"rescue-{len(layers):03d}.rknn")

    def restore(self) -> Path | None:
        return self.build(())  # the simulator must hold the plain build again

    def latency_ms(self, built: Path) -> float | None:
        return None  # the x86 simulator's speed says nothing about the NPU's


def compare_builds(first: bytes, second: bytes) -> dict:
    """Where two .rknn files of the same inputs differ: the runs of differing bytes with both
    sides in hex, and how many of the differing 4-byte words belong to a 64-bit little-endian
    user-space address (0x55..., 0x7f...: heap or stack pointers the compiler left behind).
    The other differing words seen so far are 32-bit values that move with the heap too."""
    if len(first) != len(second):
        return {"identical": False, "same_size": False, "sizes": [len(first), len(second)]}
    positions = [i for i in range(len(first)) if first[i] != second[i]]
    words = sorted({position - position % 4 for position in positions})

    def address64(data: bytes, offset: int) -> bool:
        for start in range(offset - 7, offset + 4):
            if start >= 0 and start + 8 <= len(data):
                value = int.from_bytes(data[start:start + 8], "little")
                if 0x5500_0000_0000 <= value < 0x5700_0000_0000 or 0x7f00_0000_0000 <= value < 0x8000_0000_0000:
                    return True
        return False

    runs: list[list[int]] = []
    for position in positions:
        if runs and position - runs[-1][1] <= 8:
            runs[-1][1] = position
        else:
            runs.append([position, position])
    addresses = [word for word in words if address64(first, word) and address64(second, word)]
    return {"identical": not positions, "same_size": True, "size": len(first), "differing_bytes": len(positions),
            "first_offset": positions[0] if positions else None, "last_offset": positions[-1] if positions else None,
            "words": len(words), "address64_words": len(addresses), "other_words": [word for word in words if word not in addresses],
            "runs": [{"start": a, "end": b, "first": first[a:b + 1].hex(), "second": second[a:b + 1].hex()} for a, b in runs]}


TARGET = Target(
    name="rk3588",
    image="rk3588",
    description="Rockchip NPUs (RK3588, RK3566/RK3568, RK3576, RK3562) through rknn-toolkit2 / RKNN Lite",
    source_formats=("onnx", "tflite"),
    quantizations=("int8", "fp16"),
    default_quant="fp16",
    artifact_suffix=".rknn",
    runtime_backend="rknnlite",
    needs_calibration=("int8",),
    options=(
        Option("platform", PLATFORMS, "rk3588", "the Rockchip chip the model is compiled for"),
        Option("mean", (), "", "per-channel means folded into the model (raw = normalized * std + mean), e.g. 123.675,116.28,103.53",
               parse=parse_floats),
        Option("std", (), "", "per-channel standard deviations folded into the model, e.g. 58.395,57.12,57.375", parse=parse_std),
        Option("algorithm", ("normal", "mmse", "kl_divergence"), "normal", "the toolkit's quantization algorithm",
               applies_to=("int8",)),
        *rescue_options(),
    ),
    converter=RK3588Converter,
    check_request=check_request,
    # rknn-toolkit2 2.x documents opset 19 (higher is refused, issue #539); 11 is the lowest seen
    # converting (PaddleOCR's exports). Sources in edgeship/convert/model_checks.py.
    onnx_opsets=(11, 19),
    log_files=(LOG_FILE,),
    not_byte_reproducible=((".rknn", "rknn-toolkit2's compiler writes heap and stack addresses into the file's header "
                                     "(compare_builds), so two builds of the same inputs differ in a few words; verify checks its "
                                     "size, and byte for byte the x86 simulator's outputs (reference/expected.npz), the compiled "
                                     "layers (ops.json) and the accuracy report"),),
    toolchain_packages=("rknn-toolkit2", "torch", "tensorflow-cpu", "onnx", "onnxruntime", "numpy", "protobuf"),
    # The RKNPU2 driver: a DRM render node on current kernels, /dev/rknpu on older BSPs.
    device_nodes=("char-drm rw", "/dev/rknpu rw"),
    report_note="rk3588 accuracy is measured on rknn-toolkit2's x86 simulator.",
)
