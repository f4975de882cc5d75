"""Run INSIDE the tflite image by the tests: trains a small Keras CNN on the digits training
split the test passes in /work/train.npz (8x8x1 NHWC, dynamic batch axis) and writes it as
/work/digits.keras and as a SavedModel in /work/digits_savedmodel."""

import keras
import numpy as np

keras.utils.set_random_seed(0)
data = np.load("/work/train.npz")
model = keras.Sequential([
    keras.Input(shape=(8, 8, 1), name="image"),
    keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
    keras.layers.MaxPooling2D(2),
    keras.layers.Flatten(),
    keras.layers.Dense(10),
])
model.compile(optimizer=keras.optimizers.Adam(0.01), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
model.fit(data["x"], data["y"], epochs=15, batch_size=64, verbose=0, shuffle=False)
model.save("/work/digits.keras")
model.export("/work/digits_savedmodel", format="tf_saved_model")
print("made", model.inputs[0].name, model.inputs[0].shape)
