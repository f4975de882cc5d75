"""The quick cache hit (edgeship/convert/hits.py) against real images: after a conversion, the same
request returns the artifact without planning (the engine asked for the real image ids over its
socket), through the API and the CLI; an input changed in place is a miss that plans again."""

from __future__ import annotations

import shutil

import pytest

from edgeship.convert.summary import summary
from tests.support.badinput import invoke_cli


class Planned(Exception):
    """Raised in place of the plan: the request went down the full path."""


def test_a_hit_skips_the_plan_and_a_changed_input_does_not(tflite_image, onnx_image, example_dirs, docker_client, tmp_path, monkeypatch):
    import edgeship.convert.run as run_module
    from edgeship.convert import Request, convert

    inputs = tmp_path / "digits"
    shutil.copytree(example_dirs["digits"], inputs)
    request = Request(target="tflite", model=inputs / "model.onnx", quant="fp16", eval=inputs / "eval.npz", out=tmp_path / "artifacts")
    artifact = convert(request, client=docker_client)  # the full path: a container, then the record

    def planned(*args, **kwargs):
        raise Planned

    monkeypatch.setattr(run_module, "plan", planned)
    assert convert(request, client=docker_client) == artifact  # no plan: the record held, image ids included
    result = invoke_cli("convert", "--target", "tflite", "--model", str(request.model), "--quant", "fp16", "--eval", str(request.eval),
                        "--out", str(request.out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == [f"edgeship: {line}" for line in summary(artifact)] + [str(artifact)]

    with open(request.eval, "ab") as handle:  # the same path, other content
        handle.write(b"\0")
    with pytest.raises(Planned):
        convert(request, client=docker_client)
