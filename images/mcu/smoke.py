"""Smoke test run inside a freshly built mcu image: a tiny conv net becomes a full-int8 TFLite model
with int8 I/O, as the mcu target makes them, and TFLite Micro's interpreter runs it, agrees with
LiteRT on it, and reports the tensor arena it allocated."""

import importlib.metadata as metadata
import os
import re
import tempfile

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from tflite_micro import runtime

conv = tf.keras.layers.Conv2D(4, 3, padding="same", activation="relu")
conv.build((1, 8, 8, 3))


@tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.float32)])
def tiny(x):
    return tf.reduce_mean(conv(x), axis=[1, 2])


rng = np.random.default_rng(0)
converter = tf.lite.TFLiteConverter.from_concrete_functions([tiny.get_concrete_function()], conv)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
converter.inference_input_type = converter.inference_output_type = tf.int8
converter.representative_dataset = lambda: ([rng.uniform(0, 1, (1, 8, 8, 3)).astype(np.float32)] for _ in range(8))
model = converter.convert()

sample = rng.integers(-128, 128, (1, 8, 8, 3), dtype=np.int8)
litert = Interpreter(model_content=model)
litert.allocate_tensors()
litert.set_tensor(litert.get_input_details()[0]["index"], sample)
litert.invoke()
expected = litert.get_tensor(litert.get_output_details()[0]["index"])

micro = runtime.Interpreter.from_bytes(model, arena_size=1 << 20)
micro.set_input(sample, 0)
micro.invoke()
assert np.array_equal(micro.get_output(0), expected), (micro.get_output(0), expected)

# The RecordingMicroAllocator prints its figures on the C side's stderr (file descriptor 2).
with tempfile.TemporaryFile() as captured:
    saved = os.dup(2)
    os.dup2(captured.fileno(), 2)
    try:
        micro.print_allocations()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    captured.seek(0)
    text = captured.read().decode(errors="replace")
arena = re.search(r"Arena allocation total (\d+) bytes", text)
assert arena and 0 < int(arena.group(1)) < 1 << 20, text
print("smoke ok:", {name: metadata.version(name) for name in ("tensorflow", "onnx2tf", "ai-edge-litert", "tflite-micro", "numpy")},
      f"| TFLite Micro arena {arena.group(1)} bytes, outputs equal to LiteRT's")
