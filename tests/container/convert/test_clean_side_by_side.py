"""Two conversions of one model side by side (the main job runs two at a time) share one graph
clean-up: the second waits for the first's graph instead of staging over it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from edgeship.convert import Request
from edgeship.convert.clean import clean_graph
from edgeship.convert.request import plan
from tests.support import tiny_cnn


def test_two_clean_ups_of_one_graph_at_once_give_one_graph(docker_client, onnx_image, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESHIP_CACHE", str(tmp_path / "cache"))
    model = tiny_cnn(tmp_path / "model.onnx")
    plans = [plan(Request(target=target, model=model, quant="fp32", out=tmp_path / "out")) for target in ("onnx", "tflite")]
    with ThreadPoolExecutor(2) as pool:
        graphs = list(pool.map(lambda p: clean_graph(docker_client, p), plans))
    assert graphs[0].key == graphs[1].key and graphs[0].path == graphs[1].path and graphs[0].path.is_file()
    assert not list((tmp_path / "cache" / "graphs").glob(".*partial*"))  # no staging left behind
