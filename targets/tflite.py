"""`tflite`: CPU boards such as a Raspberry Pi, through LiteRT (TFLite).

ONNX goes through onnx2tf to a SavedModel (input layout kept as in the ONNX model, so one
set of reference inputs serves every target), then TensorFlow's TFLite converter writes
fp32, fp16, dynamic-range or full-integer int8 flatbuffers. Keras (.keras/.h5) and
SavedModel sources go to the TFLite converter directly.
"""

from __future__ import annotations

import os
from pathlib import Path

from targets.base import Option, Target

TARGET = Target(
    name="tflite",
    image="tflite",
    description="CPU boards (Raspberry Pi and other ARM CPUs) through LiteRT/TFLite",
    source_formats=("onnx", "savedmodel", "keras"),
    quantizations=("fp32", "fp16", "dynamic", "int8"),
    default_quant="fp32",
    artifact_suffix=".tflite",
    runtime_backend="litert",
    needs_calibration=("int8",),
    options=(
        Option("io_dtype", ("int8", "uint8", "float32"), "int8",
               "type of the model's inputs and outputs in int8 mode (float32 keeps float I/O around an int8 body)",
               applies_to=("int8",)),
    ),
    convert="targets.tflite:convert",
    run="targets.tflite:run",
    op_report="targets.tflite:op_report",
    toolchain_packages=("onnx2tf", "tensorflow", "tf-keras", "ai-edge-litert", "onnx", "onnxruntime", "numpy", "protobuf"),
)

SIGNATURE = "serving_default"


def _saved_model_from_onnx(job: dict, workdir: Path) -> Path:
    import onnx2tf

    saved_model = workdir / "saved_model"
    onnx2tf.convert(
        input_onnx_file_path=job["source"]["path"],
        output_folder_path=str(saved_model),
        output_signaturedefs=True,
        keep_ncw_or_nchw_or_ncdhw_input_names=[item["name"] for item in job["inputs"] if len(item["shape"]) in (3, 4, 5)],
        overwrite_input_shape=[f"{item['name']}:{','.join(str(d) for d in item['shape'])}" for item in job["inputs"]],
        copy_onnx_input_output_names_to_tflite=True,
        verbosity="error",
        non_verbose=True,
    )
    return saved_model


def _converter(job: dict, workdir: Path):
    import tensorflow as tf

    fmt = job["source"]["format"]
    if fmt == "onnx":
        return tf.lite.TFLiteConverter.from_saved_model(str(_saved_model_from_onnx(job, workdir)))
    if fmt == "savedmodel":
        return tf.lite.TFLiteConverter.from_saved_model(job["source"]["path"])
    if fmt == "keras":
        import tf_keras

        return tf.lite.TFLiteConverter.from_keras_model(tf_keras.models.load_model(job["source"]["path"], compile=False))
    raise ValueError(f"tflite cannot convert source format {fmt!r}")


def convert(job: dict, calibration_set: list[dict], workdir: Path) -> Path:
    """Write model.tflite into workdir for job["quant"]; returns its path."""
    import numpy as np
    import tensorflow as tf

    converter = _converter(job, workdir)
    quant = job["quant"]
    if quant == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quant == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # weights int8, activations float
    elif quant == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        io_dtype = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}[job["options"]["io_dtype"]]
        converter.inference_input_type = io_dtype
        converter.inference_output_type = io_dtype

        def representative_dataset():
            for sample in calibration_set:
                yield {name: np.asarray(value, np.float32) for name, value in sample.items()}

        converter.representative_dataset = representative_dataset
    artifact = workdir / "model.tflite"
    artifact.write_bytes(converter.convert())
    return artifact


def _interpreter(artifact: Path):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(artifact), num_threads=1)


def _quantize(value, detail):
    import numpy as np

    scale, zero_point = detail["quantization"]
    if detail["dtype"] in (np.int8, np.uint8) and scale:
        info = np.iinfo(detail["dtype"])
        return np.clip(np.round(value / scale + zero_point), info.min, info.max).astype(detail["dtype"])
    return np.asarray(value, detail["dtype"])


def _dequantize(value, detail):
    import numpy as np

    scale, zero_point = detail["quantization"]
    if detail["dtype"] in (np.int8, np.uint8) and scale:
        return (value.astype(np.float32) - zero_point) * scale
    return value.astype(np.float32)


def run(artifact: Path, samples: list[dict], input_names: list[str], output_names: list[str]) -> list[dict]:
    """Run the artifact on float samples (dicts by source input name); float outputs by source name.

    The SavedModel signature keeps the ONNX input names; its outputs are output_0.. in the
    ONNX output order, which maps them back to the source names.
    """
    interpreter = _interpreter(artifact)
    runner = interpreter.get_signature_runner(SIGNATURE)
    input_details = runner.get_input_details()
    output_details = runner.get_output_details()
    signature_outputs = interpreter.get_signature_list()[SIGNATURE]["outputs"]
    results = []
    for sample in samples:
        feeds = {name: _quantize(sample[name], input_details[name]) for name in input_names}
        raw = runner(**feeds)
        results.append({source: _dequantize(raw[signature], output_details[signature])
                        for source, signature in zip(output_names, signature_outputs)})
    return results


def op_report(artifact: Path) -> dict:
    """Operator types and counts of the converted model, with its I/O tensor types."""
    from collections import Counter

    interpreter = _interpreter(artifact)
    ops = Counter(detail["op_name"] for detail in interpreter._get_ops_details())
    def describe(details):
        return [{"name": d["name"], "shape": [int(x) for x in d["shape"]], "dtype": d["dtype"].__name__,
                 "quantization": [float(d["quantization"][0]), int(d["quantization"][1])]} for d in details]
    return {
        "ops": dict(sorted(ops.items())),
        "op_count": sum(ops.values()),
        "inputs": describe(interpreter.get_input_details()),
        "outputs": describe(interpreter.get_output_details()),
        "file_size": os.path.getsize(artifact),
    }
