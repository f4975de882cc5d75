"""`tflite`: CPU boards such as a Raspberry Pi, through LiteRT (TFLite).

ONNX goes through onnx2tf to a SavedModel, then TensorFlow's TFLite converter writes fp32,
fp16, dynamic-range or full-integer int8 flatbuffers. onnx2tf turns channel-first image
tensors (NCHW) into TFLite's native channel-last (NHWC); the manifest records each
tensor's permutation, and the runtime's backends apply it, so callers always speak the
source layout.

`rescue=auto` (targets/rescue.py): when int8 misses the task's tolerance, TensorFlow's
QuantizationDebugger ranks the quantized ops by their own error (each op's int8 output against
its float op on the same inputs, as SQNR), and the rebuild keeps the chosen ops float32 through
the quantizer's `denylisted_nodes` (selective quantization), from one calibration.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from targets.base import Converter, Option, RequestError, Target
from targets.mediapipe_kernels import builtin_source, manifest_record
from targets.rescue import Layer, Ranking, Rescuer, db, rescue_options

SIGNATURE = "serving_default"

# onnx2tf checks its graph against ONNX Runtime on sample images for 3-channel image
# inputs, and downloads a sample file for that unless this file is in its working
# directory. The network is off in our containers, so we write the file ourselves from
# the job's own samples (the model's real input distribution).
ONNX2TF_SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"


def onnx2tf_sample_images(samples: list[dict], input_name: str, workdir: Path) -> None:
    import numpy as np

    images = np.concatenate([sample[input_name] for sample in samples])  # N,C,H,W
    if images.ndim != 4 or images.shape[1] != 3:
        return
    nhwc = images.transpose(0, 2, 3, 1)
    rows = np.linspace(0, nhwc.shape[1] - 1, 128).round().astype(int)
    cols = np.linspace(0, nhwc.shape[2] - 1, 128).round().astype(int)
    resized = nhwc[:, rows][:, :, cols]
    np.save(workdir / ONNX2TF_SAMPLE_FILE, np.resize(resized, (20, 128, 128, 3)).astype(np.float32))


def channel_last_perm(source_shape: list, artifact_shape: list):
    """The permutation taking a source tensor to the artifact's layout, or None if none is needed.

    onnx2tf moves the channel axis of 3D-5D tensors last (NCHW -> NHWC); '?' in a source
    shape (a dynamic dimension) matches anything.
    """
    def same(a, b):
        return len(a) == len(b) and all(x == "?" or y == "?" or int(x) == int(y) for x, y in zip(a, b))

    if same(source_shape, artifact_shape):
        return None
    rank = len(source_shape)
    perm = [0, *range(2, rank), 1]
    if rank >= 3 and same([source_shape[i] for i in perm], artifact_shape):
        return perm
    raise ValueError(f"cannot map source shape {source_shape} onto artifact shape {artifact_shape}")


def interpreter(artifact: Path):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(artifact), num_threads=1)


def tflite_op_report(artifact: Path) -> dict:
    """Operator types and counts of a TFLite model, with its I/O tensor types."""
    reader = interpreter(artifact)
    ops = Counter(detail["op_name"] for detail in reader._get_ops_details())

    def describe(details):
        return [{"name": d["name"], "shape": [int(x) for x in d["shape"]], "dtype": d["dtype"].__name__,
                 "quantization": [float(d["quantization"][0]), int(d["quantization"][1])]} for d in details]

    return {"ops": dict(sorted(ops.items())), "op_count": sum(ops.values()), "inputs": describe(reader.get_input_details()),
            "outputs": describe(reader.get_output_details()), "file_size": os.path.getsize(artifact)}


class TFLiteConverter(Converter):
    """onnx2tf (ONNX) or Keras 3 / SavedModel loading, then TensorFlow's TFLite converter."""

    # -- native (Keras/SavedModel) sources ----------------------------------------------------
    def _load_native(self):
        """(call, inputs, outputs, owner) of a Keras or SavedModel source: call(dict of tensors)
        -> dict; owner holds the variables (it must be tracked by anything that saves `call`).

        Keras files load with Keras 3 (the `keras` package; .h5 files too); SavedModels through
        their serving_default signature. Dynamic dimensions are None.
        """
        import tensorflow as tf

        path = self.job.source.path
        if self.job.source.format == "savedmodel":
            loaded = tf.saved_model.load(path)
            if SIGNATURE not in loaded.signatures:
                raise RequestError(f"{self.job.source.file} has no {SIGNATURE!r} signature (it has {sorted(loaded.signatures)})")
            signature = loaded.signatures[SIGNATURE]
            input_specs = signature.structured_input_signature[1]
            output_specs = signature.structured_outputs
            inputs = [{"name": name, "dims": [None if d is None else int(d) for d in spec.shape], "float32": spec.dtype == tf.float32}
                      for name, spec in sorted(input_specs.items())]
            outputs = [{"name": name, "dims": [None if d is None else int(d) for d in spec.shape]} for name, spec in sorted(output_specs.items())]

            def call_signature(feeds):
                return signature(**feeds)

            return call_signature, inputs, outputs, loaded
        import keras

        model = keras.saving.load_model(path, compile=False)
        inputs = [{"name": tensor.name, "dims": [None if d is None else int(d) for d in tensor.shape], "float32": str(tensor.dtype) == "float32"}
                  for tensor in model.inputs]
        outputs = [{"name": f"output_{index}", "dims": [None if d is None else int(d) for d in tensor.shape]}
                   for index, tensor in enumerate(model.outputs)]

        def call_model(feeds):
            args = [feeds[item["name"]] for item in inputs]
            result = model(args if len(args) > 1 else args[0], training=False)
            result = result if isinstance(result, (list, tuple)) else [result]
            return {item["name"]: tensor for item, tensor in zip(outputs, result)}

        return call_model, inputs, outputs, model

    def tflite_source(self) -> tuple[Path, list[dict]]:
        """(the TFLite source with MediaPipe's kernels rewritten into builtins, what was rewritten):
        what the fp32 reference runs and the weights are re-stored from."""
        return builtin_source(Path(self.job.source.path), self.workdir)

    def inspect(self) -> tuple[list[dict], list[dict]]:
        if self.job.source.format == "tflite":
            from targets.tflite_source import source_io

            return source_io(interpreter(self.tflite_source()[0]))
        _, inputs, outputs, _ = self._load_native()
        return inputs, outputs

    def _static_function(self):
        """The source as a tf.function with the job's static input shapes, outputs by source
        name, and the object that owns its variables."""
        import tensorflow as tf

        call, _, _, owner = self._load_native()
        names = self.job.input_names
        specs = [tf.TensorSpec(item["shape"], tf.float32, name=item["name"]) for item in self.job.inputs]
        return tf.function(lambda *args: call(dict(zip(names, args))), input_signature=specs), owner

    def reference(self, samples: list[dict]) -> list[dict]:
        """fp32 outputs: ONNX Runtime for ONNX, LiteRT (one thread) for TFLite, TensorFlow on the
        CPU for Keras/SavedModel sources."""
        if self.job.source.format == "onnx":
            return super().reference(samples)
        if self.job.source.format == "tflite":
            from targets.tflite_source import source_reference

            return source_reference(interpreter(self.tflite_source()[0]), samples, [spec["name"] for spec in self.job.outputs])
        function, _ = self._static_function()
        names = self.job.input_names
        return [{name: value.numpy() for name, value in function(*[sample[n] for n in names]).items()} for sample in samples]

    # -- conversion ---------------------------------------------------------------------------
    def _saved_model_from_onnx(self, samples: list[dict]) -> Path:
        saved_model = self.workdir / "saved_model"
        if (saved_model / "saved_model.pb").exists():
            return saved_model  # made already in this job (a rescue converts the same graph again)
        import onnx2tf

        # onnx2tf simplifies the model with onnxsim IN PLACE; the source is mounted read-only
        # (and must never change), so it works on a copy. Without onnxsim, Clip nodes fed by
        # Constant nodes (torch's ReLU6) fail to convert.
        source = self.workdir / "source.onnx"
        shutil.copyfile(self.job.model_path, source)
        onnx2tf_sample_images(samples, self.job.inputs[0]["name"], self.workdir)
        with contextlib.chdir(self.workdir):  # onnx2tf looks for its sample file in the working directory
            onnx2tf.convert(
                input_onnx_file_path=str(source),
                output_folder_path=str(saved_model),
                output_signaturedefs=True,
                overwrite_input_shape=[f"{self.job.graph_name(item['name'])}:{','.join(str(d) for d in item['shape'])}"
                                       for item in self.job.inputs],
                copy_onnx_input_output_names_to_tflite=True,
                verbosity="error",
                non_verbose=True,
            )
        return saved_model

    def _tflite_converter(self, samples: list[dict]):
        """(TFLite converter, input shapes of what it converts, by name)."""
        import tensorflow as tf

        if self.job.source.format == "onnx":
            saved_model = self._saved_model_from_onnx(samples)
            signature = tf.saved_model.load(str(saved_model)).signatures[SIGNATURE]
            shapes = {name: [int(d) for d in spec.shape] for name, spec in signature.structured_input_signature[1].items()}
            return tf.lite.TFLiteConverter.from_saved_model(str(saved_model)), shapes
        # Keras/SavedModel: the concrete function at the job's static shapes, its variables
        # frozen into constants first: Keras 3 variables otherwise stay VAR_HANDLE ops that
        # the TFLite file leaves uninitialized (outputs NaN/inf).
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

        function, owner = self._static_function()
        frozen = convert_variables_to_constants_v2(function.get_concrete_function())
        converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen], owner)
        return converter, {item["name"]: item["shape"] for item in self.job.inputs}

    def configure(self, converter, quant: str, calibration: list[dict], signature_inputs: dict) -> None:
        """Set the TFLite converter up for the quantization mode."""
        import numpy as np
        import tensorflow as tf

        from edgeship_runtime.backends.base import to_layout

        if quant == "fp16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif quant == "dynamic":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]  # weights int8, activations float
        elif quant == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            io_dtype = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}[self.job.options["io_dtype"]]
            converter.inference_input_type = io_dtype
            converter.inference_output_type = io_dtype
            specs = self.job.inputs

            def representative_dataset():
                for sample in calibration:
                    yield {self.job.graph_name(spec["name"]): to_layout(np.asarray(sample[spec["name"]], np.float32), channel_last_perm(
                        spec["shape"], signature_inputs.get(self.job.graph_name(spec["name"]), spec["shape"]))) for spec in specs}

            converter.representative_dataset = representative_dataset

    def convert(self, calibration: list[dict], reference_set: list[dict]) -> Path:
        """Write model.tflite into the work folder for the job's quantization mode."""
        artifact = self.workdir / "model.tflite"
        if self.job.source.format == "tflite":  # compiled already: only its weights are re-stored
            from targets.tflite_source import restore_weights

            self.log(f"TFLite source, {self.job.quant}: {restore_weights(self.tflite_source()[0], self.job.quant, artifact)}")
            return artifact
        converter, signature_inputs = self._tflite_converter(calibration or reference_set)
        self.configure(converter, self.job.quant, calibration, signature_inputs)
        artifact.write_bytes(converter.convert())
        return artifact

    def io_map(self, artifact: Path) -> dict:
        """How source tensors map onto the artifact's signature: name and layout permutation.

        The signature keeps the source input names. Outputs keep their source names where the
        converter could (Keras/SavedModel sources); onnx2tf names them output_0.. in the ONNX
        output order, which maps them back.
        """
        reader = interpreter(artifact)
        if self.job.source.format == "tflite":  # the source's own tensors, names and layout
            details = {d["name"]: d for d in reader.get_input_details() + reader.get_output_details()}
            return {kind: {spec["name"]: {"name": spec["name"], "shape": [int(d) for d in details[spec["name"]]["shape"]], "perm": None}
                           for spec in specs} for kind, specs in (("inputs", self.job.inputs), ("outputs", self.job.outputs))}
        runner = reader.get_signature_runner(SIGNATURE)
        input_details, output_details = runner.get_input_details(), runner.get_output_details()
        signature_outputs = reader.get_signature_list()[SIGNATURE]["outputs"]
        mapping: dict = {"signature": SIGNATURE, "inputs": {}, "outputs": {}}
        for spec in self.job.inputs:
            name = self.job.graph_name(spec["name"])
            shape = [int(d) for d in input_details[name]["shape"]]
            mapping["inputs"][spec["name"]] = {"name": name, "shape": shape, "perm": channel_last_perm(spec["shape"], shape)}
        outputs = self.job.outputs
        by_name = all(self.job.graph_name(spec["name"]) in signature_outputs for spec in outputs)
        for spec, signature in zip(outputs, [self.job.graph_name(spec["name"]) for spec in outputs] if by_name else signature_outputs):
            shape = [int(d) for d in output_details[signature]["shape"]]
            mapping["outputs"][spec["name"]] = {"name": signature, "shape": shape, "perm": channel_last_perm(spec["shape"], shape)}
        return mapping

    def op_report(self, artifact: Path) -> dict:
        rewrites = manifest_record(self.tflite_source()[1]) if self.job.source.format == "tflite" else {}
        return {**tflite_op_report(artifact), **rewrites}

    def rescuer(self, calibration: list[dict], samples: list[dict], reference: list[dict]) -> Rescuer:
        return TFLiteRescuer(self, calibration, samples, reference)

    @classmethod
    def summary(cls, artifact_dir: Path, manifest: dict, ops: dict) -> list[str]:
        from targets.rescue import rescue_summary

        return rescue_summary(manifest)


RANK_SAMPLES = 2  # reference samples the QuantizationDebugger runs to score each op
# SQNR of an ideal 8-bit quantizer on a full-scale signal (6.02 * 8 + 1.76 dB): an op at or above
# it adds nothing int8 could avoid, so its rescue score (the dB it falls short of this) is <= 0.
INT8_IDEAL_SQNR_DB = 49.9


def single_op_sqnr(float_values, quantized_values, scale: float, zero_point: int) -> float:
    """The QuantizationDebugger's direct-compare metric: SQNR (dB) of an op's int8 output against
    its float op run on the same (dequantized) inputs."""
    import numpy as np

    reference = np.asarray(float_values, np.float64).ravel()
    error = reference - (np.asarray(quantized_values, np.float64).ravel() - zero_point) * scale
    return db(float(reference @ reference), float(error @ error))


def tflite_op_macs(op: dict, shape_of) -> int:
    """Multiply-accumulates of a TFLite op from its tensors' shapes (the arithmetic-heavy op types;
    others count 0): hand-written, as rescue.onnx_macs is for ONNX."""
    import math

    name, inputs = op["op_name"], op["inputs"]
    output = shape_of(op["outputs"][0])
    if name == "CONV_2D":  # filter [O, kh, kw, I]
        return math.prod(output) * math.prod(shape_of(inputs[1])[1:])
    if name == "DEPTHWISE_CONV_2D":  # filter [1, kh, kw, C * multiplier]
        return math.prod(output) * math.prod(shape_of(inputs[1])[1:3])
    if name == "FULLY_CONNECTED":  # filter [O, I]
        return math.prod(output) * shape_of(inputs[1])[-1]
    if name == "TRANSPOSE_CONV":  # inputs (output shape, filter [O, kh, kw, I], input): every input element scatters O * kh * kw
        return math.prod(shape_of(inputs[2])) * math.prod(shape_of(inputs[1])[:3])
    if name == "BATCH_MATMUL":
        return math.prod(output) * shape_of(inputs[0])[-1]
    return 0


class TFLiteRescuer(Rescuer):
    """One calibration (the QuantizationDebugger's), scored per op; every rebuild is the quantizer
    run on that calibrated model with some ops denylisted."""

    def __init__(self, converter: TFLiteConverter, calibration: list[dict], samples: list[dict], reference: list[dict]):
        super().__init__(converter, calibration, samples, reference)
        self._debugger: Any = None

    def debugger(self):
        """TensorFlow's QuantizationDebugger on the job's int8 converter: it calibrates once (the
        same representative dataset as the build) and runs a debug model that compares every
        quantized op with its float op."""
        if self._debugger is None:
            import numpy as np
            import tensorflow as tf

            from edgeship_runtime.backends.base import to_layout

            converter: TFLiteConverter = self.converter  # type: ignore[assignment]
            tflite_converter, signature_inputs = converter._tflite_converter(self.calibration or self.samples)
            converter.configure(tflite_converter, "int8", self.calibration, signature_inputs)
            specs = converter.job.inputs

            def spec_of(detail: dict, index: int) -> dict:  # the debug model's inputs carry the signature's names
                for spec in specs:  # exactly: with inputs x and in_x, "serving_default_in_x:0" is not x's
                    graph_name = converter.job.graph_name(spec["name"])
                    if detail["name"] in (graph_name, f"serving_default_{graph_name}:0"):
                        return spec
                return specs[index]

            def debug_dataset():
                details = self._debugger._quant_interpreter.get_input_details()
                for sample in self.samples[:RANK_SAMPLES]:
                    yield [to_layout(np.asarray(sample[spec["name"]], np.float32), channel_last_perm(
                        spec["shape"], signature_inputs.get(converter.job.graph_name(spec["name"]), spec["shape"])))
                        for spec in (spec_of(detail, index) for index, detail in enumerate(details))]

            options = tf.lite.experimental.QuantizationDebugOptions(layer_direct_compare_metrics={"sqnr_db": single_op_sqnr})
            self._debugger = tf.lite.experimental.QuantizationDebugger(converter=tflite_converter, debug_dataset=debug_dataset,
                                                                        debug_options=options)
        return self._debugger

    def rank(self) -> Ranking:
        debugger = self.debugger()
        debugger.run()
        # The debugger's own bookkeeping (what layer_statistics_dump uses) maps each NumericVerify
        # result to the quantized tensor it checks, the op that writes it and the tensor's name in
        # the model the quantizer reads (the debug model suffixes it), which denylisted_nodes takes.
        interpreter = debugger._quant_interpreter

        def shape_of(index: int) -> list[int]:
            return [int(d) for d in interpreter._get_tensor_details(index, subgraph_index=0)["shape"]]

        layers = []
        for verify_name, metrics in sorted(debugger.layer_statistics.items()):
            quantized = debugger._numeric_verify_op_details[verify_name]["inputs"][0]
            op = interpreter._get_op_details(debugger._defining_op[quantized])
            sqnr = float(metrics["sqnr_db"])
            layers.append(Layer(debugger._get_operand_name_and_index(verify_name)[0], op["op_name"],
                                score=INT8_IDEAL_SQNR_DB - sqnr, figure="single_op_sqnr_db", value=sqnr, macs=tflite_op_macs(op, shape_of)))
        return Ranking(layers, sum(layer.macs for layer in layers),
                       f"TensorFlow QuantizationDebugger on {min(len(self.samples), RANK_SAMPLES)} reference sample(s): each quantized op's "
                       "SQNR against its float op on the same inputs", precision="float32")

    def build(self, layers: tuple[str, ...]) -> Path:
        import tensorflow as tf

        # The TFLite converter's own quantizer entry point (what converter.convert() runs after
        # calibrating, and what the debugger's get_nondebug_quantized_model runs): called here
        # to give the denylist with the job's I/O type, which the debugger's wrapper fixes to float.
        from tensorflow.lite.python import convert as tflite_convert

        debugger = self.debugger()
        io_dtype = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}[self.job.options["io_dtype"]]
        model = tflite_convert.mlir_quantize(debugger.calibrated_model, disable_per_channel=debugger.converter._experimental_disable_per_channel,
                                             input_data_type=io_dtype, output_data_type=io_dtype, denylisted_nodes=list(layers))
        built = self.converter.workdir / f"rescue-{len(layers):03d}.tflite"
        built.write_bytes(model)
        return built


TARGET = Target(
    name="tflite",
    image="tflite",
    description="CPU boards (Raspberry Pi and other ARM CPUs) through LiteRT/TFLite",
    source_formats=("onnx", "savedmodel", "keras", "tflite"),
    quantizations=("fp32", "fp16", "dynamic", "int8"),
    source_quantizations={"tflite": ("fp32", "fp16")},  # targets/tflite_source.py: its weights re-stored, no re-quantization
    default_quant="fp32",
    artifact_suffix=".tflite",
    runtime_backend="litert",
    converter=TFLiteConverter,
    needs_calibration=("int8",),
    # onnx2tf: "Only for opset=11 or higher"; its ONNX Runtime 1.23 reads up to 23.
    onnx_opsets=(11, 23),
    options=(
        Option("io_dtype", ("int8", "uint8", "float32"), "int8",
               "type of the model's inputs and outputs in int8 mode (float32 keeps float I/O around an int8 body)",
               applies_to=("int8",)),
        *rescue_options(),
    ),
    toolchain_packages=("onnx2tf", "tensorflow", "tf-keras", "ai-edge-litert", "onnx", "onnxruntime", "numpy", "protobuf"),
)
