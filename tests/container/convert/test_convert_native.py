"""Keras and SavedModel sources for the tflite target: read, converted and checked in the image."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeship.convert import Request, convert
from edgeship.errors import EdgeshipError
from tests.support import ROOT


@pytest.fixture(scope="module")
def native_models(docker_client, tflite_image, tmp_path_factory):
    """A Keras CNN trained on the digits training split (NHWC), as .keras and as a SavedModel."""
    from edgeship.examples import digits_split

    work = tmp_path_factory.mktemp("native")
    train_x, test_x, train_y, test_y = digits_split()
    np.savez(work / "train.npz", x=train_x.transpose(0, 2, 3, 1), y=train_y)  # Keras is NHWC
    (work / "calib").mkdir()
    for index, sample in enumerate(train_x[:32]):
        np.save(work / "calib" / f"{index:03d}.npy", sample.transpose(1, 2, 0)[None])
    np.savez(work / "eval.npz", image=test_x.transpose(0, 2, 3, 1), labels=test_y)
    script = ROOT / "tests" / "support" / "native_models.py"  # runs inside the tflite image
    docker_client.containers.run(tflite_image.tags[0], ["python", "/script.py"], user="0", network_mode="none", remove=True,
                                 volumes={str(work): {"bind": "/work", "mode": "rw"}, str(script): {"bind": "/script.py", "mode": "ro"}})
    return work


def test_keras_model_with_dynamic_batch_needs_input_shape(native_models, docker_client):
    request = Request(target="tflite", model=native_models / "digits.keras", out=native_models / "out")
    with pytest.raises(EdgeshipError, match=r"digits\.keras: input 'image' has a dynamic shape \[\?,8,8,1\]; pass --input-shape image:1,8,8,1"):
        convert(request, client=docker_client)
    assert not (native_models / "out").exists() or not any((native_models / "out").iterdir())


@pytest.mark.parametrize("source,quant", [("digits.keras", "fp32"), ("digits.keras", "int8"), ("digits_savedmodel", "fp16")])
def test_native_sources_convert(native_models, docker_client, source, quant):
    request = Request(target="tflite", model=native_models / source, quant=quant, input_shapes=["image:1,8,8,1"],
                      calib=native_models / "calib" if quant == "int8" else None, eval=native_models / "eval.npz",
                      out=native_models / "out")
    artifact = convert(request, client=docker_client)
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["source"]["format"] == ("keras" if source.endswith(".keras") else "savedmodel")
    assert manifest["inputs"][0]["shape"] == [1, 8, 8, 1]
    assert manifest["artifact_io"]["mapping"]["inputs"][manifest["inputs"][0]["name"]]["perm"] is None  # NHWC stays NHWC
    accuracy = manifest["accuracy"]
    assert accuracy["passed"], accuracy
    assert manifest["task"]["name"] == "classify"  # eval labels of one class id per sample, no --task: a classifier
    labelled = accuracy["labelled"]
    assert abs(labelled["converted"]["accuracy"] - labelled["fp32"]["accuracy"]) <= 0.02
