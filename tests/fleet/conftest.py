"""Fleet tier: the simulated boards (real containers, real sshd, real SSH with host keys
checked), the real playbooks run by ansible-playbook, and real digits artifacts."""

from __future__ import annotations

import pytest

from tests.support import ROOT
from tests.support.fleet import Fleet, fleet_inventory

pytestmark = pytest.mark.fleet


@pytest.fixture(scope="session")
def fleet_artifacts(tmp_path_factory):
    """Digits converted for what the fleet's groups run: rknn int8 (rk3588), TensorRT-ready
    ONNX fp16 (jetson), tflite fp16 (rpi) with ncnn fp16 and MNN fp16 beside it (the Pi's
    edgeship_extra_targets), OpenVINO fp16 (x86), tflite fp32 and onnx fp32 (CPU fallbacks)."""
    from edgeship.convert import Request, convert
    from edgeship.examples import build_examples
    from edgeship.images.engine import ensure_engine

    client = ensure_engine()
    folder = {f.name: f for f in build_examples(ROOT / "examples", names=("digits",))}["digits"]
    root = tmp_path_factory.mktemp("fleet-artifacts")
    for target, quant in (("rk3588", "int8"), ("jetson", "fp16"), ("tflite", "fp16"), ("tflite", "fp32"), ("onnx", "fp32"),
                          ("ncnn", "fp16"), ("mnn", "fp16"), ("openvino", "fp16")):
        convert(Request(target=target, model=folder / "model.onnx", quant=quant, eval=folder / "eval.npz",
                        calib=folder / "calib" if quant == "int8" else None, labels=folder / "labels.txt", out=root,
                        preprocess=folder / "preprocess.json"), client=client)
    return root


@pytest.fixture(scope="session")
def fleet(tmp_path_factory, fleet_artifacts):
    from edgeship.fleet import sim

    folder = tmp_path_factory.mktemp("fleet")
    inventory = fleet_inventory(folder)
    sim.up(inventory)
    yield Fleet(inventory=inventory, artifacts=fleet_artifacts, results=folder / "results")
    sim.down(inventory, purge=True)
