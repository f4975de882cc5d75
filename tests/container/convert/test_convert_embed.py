"""digits-embed (the trained digits CNN cut at its penultimate layer) converted for real, judged as an
embedding model: cosine and nearest-neighbour agreement against fp32, retrieval top-1 against the
digits, all in the manifest."""

from __future__ import annotations

import json

import pytest

from tests.support import ROOT


@pytest.fixture(scope="module")
def embed_example():
    from edgeship.examples import build_examples

    return build_examples(ROOT / "examples", names=("digits-embed",))[0]


@pytest.fixture(scope="module")
def convert_embed(embed_example, docker_client):
    """(target, quant) -> the artifact's manifest, as the main job makes the request (task.json, eval labels)."""
    import targets
    from edgeship.convert import convert
    from edgeship.examples import example_request

    done: dict = {}

    def run(target: str, quant: str) -> dict:
        if (target, quant) not in done:
            request = example_request(embed_example, target, quant, ROOT / "artifacts" / "tests", quant in targets.get(target).needs_calibration)
            done[target, quant] = json.loads((convert(request, client=docker_client) / "manifest.json").read_text())
        return done[target, quant]

    return run


@pytest.mark.parametrize(("target", "quant"), [("onnx", "fp32"), ("tflite", "fp16"), ("onnx", "int8"), ("tflite", "int8")])
def test_digits_embed_is_judged_by_its_neighbours(onnx_image, tflite_image, convert_embed, target, quant):
    manifest = convert_embed(target, quant)
    accuracy = manifest["accuracy"]
    metrics, labelled, tolerances = accuracy["metrics"], accuracy["labelled"], accuracy["tolerances"]
    fp32, converted = labelled["fp32"]["retrieval_top1"], labelled["converted"]["retrieval_top1"]
    print(f"digits-embed {target} {quant}: nearest-neighbour agreement {metrics['nn_agreement']:.1%} "
          f"({metrics['nn_changed']} of {metrics['samples']} changed), cosine min {metrics['cosine_min']:.6f} "
          f"mean {metrics['cosine_mean']:.6f}; retrieval top-1 fp32 {fp32:.1%} -> {converted:.1%}; passed {accuracy['passed']}")
    assert manifest["task"]["name"] == "embed" and manifest["outputs"][0]["shape"] == [1, 64]
    assert metrics["samples"] == 360 and metrics["dimensions"] == 64
    assert labelled["samples"] == 360 and labelled["converted"]["queries"] == 360
    assert fp32 >= 0.95  # the features are real: nearly every test digit's nearest other is the same digit
    assert set(tolerances) >= {"min_nn_agreement", "min_embedding_cosine"}
    within = metrics["nn_agreement"] >= tolerances["min_nn_agreement"] and metrics["cosine_min"] >= tolerances["min_embedding_cosine"]
    assert accuracy["passed"] == within, (metrics, tolerances)
    if quant in ("fp32", "fp16"):
        assert accuracy["passed"], accuracy["failed"]
        assert metrics["nn_agreement"] >= 0.97 and abs(converted - fp32) <= 0.01
    else:  # int8 moves neighbours among near-twins of one digit, but finds the digit as often
        assert metrics["cosine_min"] >= 0.95 and abs(converted - fp32) <= 0.03
