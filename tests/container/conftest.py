"""Container tier: a real Docker engine, the real tflite toolchain image, real conversions."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import ROOT


@pytest.fixture(scope="session")
def docker_client():
    from edgeship.images.engine import ensure_engine

    return ensure_engine()


@pytest.fixture(scope="session")
def tflite_image(docker_client):
    from edgeship.images.build import build
    from edgeship.images.locks import load_spec

    return build(docker_client, load_spec("tflite"))


@pytest.fixture(scope="session")
def onnx_image(docker_client):
    from edgeship.images.build import build
    from edgeship.images.locks import load_spec

    return build(docker_client, load_spec("onnx"))


@pytest.fixture(scope="session")
def example_dirs():
    """The example models, in the repo's examples/ folder (shared with the main job)."""
    from edgeship.examples import build_examples

    return {folder.name: folder for folder in build_examples(ROOT / "examples")}


@pytest.fixture(scope="session")
def conversions(tflite_image, onnx_image, example_dirs, tmp_path_factory, docker_client):
    """convert(example, quant, out_name="a", options=(), target="tflite") -> artifact dir; converted once per session."""
    from edgeship.convert import Request, convert

    roots, done = {}, {}

    def run(example: str, quant: str, out_name: str = "a", options: tuple = (), target: str = "tflite") -> Path:
        key = (example, quant, out_name, options, target)
        if key not in done:
            if out_name not in roots:
                roots[out_name] = tmp_path_factory.mktemp(f"artifacts-{out_name}")
            folder = example_dirs[example]
            request = Request(
                target=target, model=folder / "model.onnx", quant=quant,
                calib=folder / "calib" if quant == "int8" else None, eval=folder / "eval.npz",
                labels=folder / "labels.txt", options=dict(options), out=roots[out_name], preprocess=folder / "preprocess.json",
            )
            done[key] = convert(request, client=docker_client)
        return done[key]

    return run


@pytest.fixture(scope="session")
def convert_example(example_dirs, tmp_path_factory, docker_client):
    """convert_example(example, target, quant) -> artifact dir, as edgeship.examples.example_request
    makes the request (input shapes, task, labels, preprocess); converted once per session."""
    from edgeship.convert import convert
    from edgeship.examples import example_request

    # A root that outlives the session: the conversion cache returns what an earlier tier or run
    # converted from the same inputs, code and image (and converts again when any of them changed).
    root, done = ROOT / "artifacts" / "tests", {}

    def run(example: str, target: str, quant: str) -> Path:
        import targets

        if (example, target, quant) not in done:
            request = example_request(example_dirs[example], target, quant, root, quant in targets.get(target).needs_calibration)
            done[example, target, quant] = convert(request, client=docker_client)
        return done[example, target, quant]

    return run
