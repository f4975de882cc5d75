"""Smoke test run inside a freshly built coral image: a tiny conv net becomes a full-int8 TFLite model
with uint8 I/O, as the coral target makes them, and runs in LiteRT; where the image has Google's
edgetpu_compiler, the compiler compiles that model and maps its ops to the Edge TPU."""

import importlib.metadata as metadata
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

conv = tf.keras.layers.Conv2D(4, 3, padding="same", activation="relu")
conv.build((1, 8, 8, 3))


@tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.float32)])
def tiny(x):
    return tf.reduce_mean(conv(x), axis=[1, 2])


rng = np.random.default_rng(0)
converter = tf.lite.TFLiteConverter.from_concrete_functions([tiny.get_concrete_function()], conv)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
converter.inference_input_type = converter.inference_output_type = tf.uint8
converter.representative_dataset = lambda: ([rng.uniform(0, 1, (1, 8, 8, 3)).astype(np.float32)] for _ in range(8))
model = converter.convert()

interpreter = Interpreter(model_content=model)
interpreter.allocate_tensors()
model_input, model_output = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
assert model_input["dtype"] == np.uint8 and model_output["dtype"] == np.uint8, (model_input["dtype"], model_output["dtype"])
interpreter.set_tensor(model_input["index"], np.full((1, 8, 8, 3), 128, np.uint8))
interpreter.invoke()
assert interpreter.get_tensor(model_output["index"]).shape == (1, 4)

compiler = shutil.which("edgetpu_compiler")
compiled = "no edgetpu_compiler in this image: conversions say 'not compiled for the Edge TPU'"
if compiler:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "tiny.tflite").write_bytes(model)
        result = subprocess.run([compiler, "-s", "-o", folder, str(Path(folder) / "tiny.tflite")], capture_output=True, text=True,
                                timeout=300, check=True)
        assert (Path(folder) / "tiny_edgetpu.tflite").is_file(), result.stdout
        assert "Mapped to Edge TPU" in result.stdout, result.stdout
        compiled = result.stdout.strip().splitlines()[0]  # "Edge TPU Compiler version 16.0.384591198"
print("smoke ok:", {name: metadata.version(name) for name in ("tensorflow", "onnx2tf", "ai-edge-litert", "numpy")}, "|", compiled)
