"""jetson on a real NVIDIA GPU (marked `gpu`: skipped where detect() finds none).

The engines are built by the board runtime's own code (TensorRTBackend -> trt_engine), as a
Jetson builds them: fp16 and int8 (with the artifact's packaged calibration data), checked
against the ONNX Runtime reference in the artifact, cached, and timed with CUDA events; the
backend's GPU compute time is compared with TensorRT's own per-layer profile of the same
engine. Figures are printed (pytest -s) for the closing notes.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def tensorrt():
    trt = pytest.importorskip("tensorrt", reason="TensorRT's Python bindings are not installed on this GPU host")
    pytest.importorskip("cuda", reason="cuda-python is not installed on this GPU host")
    return trt


@pytest.fixture(scope="module")
def artifacts(jetson_image, example_dirs, docker_client, tmp_path_factory):
    from edgeship.convert import Request, convert

    out, made = tmp_path_factory.mktemp("jetson-gpu"), {}
    for example in ("digits", "mobilenetv2"):
        folder = example_dirs[example]
        for quant in ("fp16", "int8"):
            made[example, quant] = convert(Request(target="jetson", model=folder / "model.onnx", quant=quant, out=out,
                                                   calib=folder / "calib" if quant == "int8" else None, eval=folder / "eval.npz",
                                                   labels=folder / "labels.txt"), client=docker_client)
    return made


@pytest.fixture(scope="module")
def jetson_image(docker_client):
    from edgeship.images.build import build
    from edgeship.images.locks import load_spec

    return build(docker_client, load_spec("jetson"))


@pytest.mark.parametrize("example,quant,min_cosine,min_agreement", [("digits", "fp16", 0.999, 0.98), ("digits", "int8", 0.98, 0.9),
                                                                     ("mobilenetv2", "fp16", 0.999, 0.98)])
def test_engines_built_on_the_gpu_match_the_onnx_runtime_reference(tensorrt, artifacts, tmp_path, example, quant, min_cosine, min_agreement):
    from edgeship_runtime.artifact import Artifact
    from edgeship_runtime.backends.tensorrt import TensorRTBackend
    from edgeship_runtime.tasks.compare import generic_figures, top1_agreement

    artifact = Artifact.open(artifacts[example, quant])
    inputs, reference = artifact.reference("inputs"), artifact.reference("outputs")
    samples = artifact.samples(inputs, list(inputs))
    with TensorRTBackend(artifact, engine_cache=str(tmp_path)) as backend:
        record = backend.engine_record
        outputs = [backend.infer(sample) for sample in samples]
    assert not record["cached"] and record["precision"] == quant
    fp32, converted = [reference["logits"][i:i + 1] for i in range(len(samples))], [o["logits"] for o in outputs]
    figures = {**generic_figures(fp32, converted), "top1_agreement": top1_agreement(fp32, converted)}
    print(f"\n{example} {quant} on {record['gpu']['name']} (sm {record['gpu']['compute_capability']}, TensorRT {record['tensorrt']}): "
          f"build {record['build_s']:.1f} s, cosine min {figures['cosine_min']:.5f}, top-1 agreement {figures['top1_agreement']:.2%}")
    assert figures["cosine_min"] >= min_cosine and figures["top1_agreement"] >= min_agreement
    with TensorRTBackend(artifact, engine_cache=str(tmp_path)) as again:
        assert again.engine_record["cached"] and again.engine_record["key"] == record["key"]
    if quant == "int8":
        assert (tmp_path / f"{record['key']}.calibration.cache").stat().st_size > 0


def test_cuda_event_compute_time_agrees_with_tensorrts_own_profile(tensorrt, artifacts, tmp_path):
    from edgeship_runtime.artifact import Artifact
    from edgeship_runtime.backends.tensorrt import TensorRTBackend
    from edgeship_runtime.bench import benchmark

    artifact = Artifact.open(artifacts["mobilenetv2", "fp16"])
    result = benchmark(artifact, TensorRTBackend, warmup_runs=20, min_runs=200, min_s=2.0, engine_cache=str(tmp_path))
    stages = result["device_stages"]
    with TensorRTBackend(artifact, engine_cache=str(tmp_path)) as backend:
        profile = backend.profile_layers(backend.prepare(artifact.sample_input()), runs=200)
    ratio = stages["compute_ms"]["p50_ms"] / profile["p50_ms"]
    print(f"\nmobilenetv2 fp16: end to end p50 {result['steady']['p50_ms']:.3f} ms; CUDA events: H2D {stages['h2d_ms']['p50_ms']:.3f} ms, "
          f"compute {stages['compute_ms']['p50_ms']:.3f} ms, D2H {stages['d2h_ms']['p50_ms']:.3f} ms; "
          f"TensorRT profiler (sum of layers) {profile['p50_ms']:.3f} ms; ratio {ratio:.2f}")
    print(json.dumps({"device_stages": stages, "tensorrt_profile": profile, "power": result["power"]}, indent=1))
    # The profiler's per-layer sum leaves out launch gaps between layers, the events include them.
    assert 0.5 <= ratio <= 2.5
    assert np.isfinite(result["steady"]["mean_ms"])
