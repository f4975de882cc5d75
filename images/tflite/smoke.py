"""Smoke test run inside a freshly built tflite image: the toolchain imports and converts."""

import importlib.metadata as metadata

import numpy as np
import onnx
import onnx2tf  # noqa: F401  (import is the check)
import onnxruntime
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter


@tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
def double(x):
    return x * 2.0


converter = tf.lite.TFLiteConverter.from_concrete_functions([double.get_concrete_function()], double)
interpreter = Interpreter(model_content=converter.convert())
interpreter.allocate_tensors()
interpreter.set_tensor(interpreter.get_input_details()[0]["index"], np.ones((1, 4), np.float32))
interpreter.invoke()
assert np.allclose(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]), 2.0)
print("smoke ok:", {name: metadata.version(name) for name in ("tensorflow", "onnx2tf", "onnx", "onnxruntime", "ai-edge-litert", "numpy")},
      "onnx", onnx.__version__, "ort", onnxruntime.__version__)
