"""The report renders from the store with every plot (SVG embedded in the HTML, files beside the
markdown), a row per board x model, labelled emulated and fallback rows, and published figures
only where the hardware matches."""

from __future__ import annotations

import base64
import html.parser
import json

import pytest

from edgeship.errors import EdgeshipError
from edgeship.report import store
from edgeship.report.publish import write_report
from edgeship.report.reference_figures import FIGURES, matching, why_not
from tests.unit.edgeship.report.runs import make_run

RUN = "20261130T100000Z"


class Page(html.parser.HTMLParser):
    """The parts of report.html the tests look at: images, comparison rows, warnings."""

    def __init__(self, text: str):
        super().__init__()
        self.images: list[dict] = []
        self.rows: list[dict] = []
        self.ids: set[str] = set()
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if "id" in attributes:
            self.ids.add(attributes["id"] or "")
        if tag == "img":
            self.images.append(attributes)
        if tag == "tr" and "data-board" in attributes:
            self.rows.append(attributes)


@pytest.fixture
def report(tmp_path):
    results = tmp_path / "results"
    make_run(results, tmp_path / "artifacts", RUN)
    html, markdown = write_report(results, None)
    return results, html, markdown


def test_the_report_renders_every_plot_embedded_and_beside_the_markdown(report):
    results, html, markdown = report
    assert html == results / RUN / "report.html" and markdown == results / RUN / "report.md"
    page = Page(html.read_text())
    plots = {image["data-plot"]: image for image in page.images if "data-plot" in image}
    assert set(plots) == {"latency-digits", "latency-mobilenetv2", "accuracy-size-latency", "demo-stages"}
    for name, image in plots.items():
        prefix = "data:image/svg+xml;base64,"
        assert image["src"].startswith(prefix), name
        svg = base64.b64decode(image["src"][len(prefix):]).decode()
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg and 'width="' in svg, name
        assert (results / RUN / "plots" / f"{name}.svg").read_text() == svg
        assert f"](plots/{name}.svg)" in markdown.read_text()
    assert "src=\"http" not in html.read_text() and "<script" not in html.read_text()  # opens from disk, nothing fetched


def test_the_comparison_has_a_row_per_board_and_model_with_labels(report):
    results, html, markdown = report
    page = Page(html.read_text())
    comparison = [row for row in page.rows if "data-model" in row]
    pairs = {(row["data-board"], row["data-model"]) for row in comparison}
    benched = {(b["board"], b["model"]) for b in store.table_rows(results, "benches", RUN)}
    assert benched <= pairs and len(benched) == 7
    emulated = [row for row in comparison if row["class"] == "emulated"]
    assert {(row["data-board"], row["data-model"]) for row in emulated} == {("sim-rk3588", "digits"), ("sim-rk3588", "mobilenetv2")}
    text = html.read_text()
    assert "emulated (aarch64 on qemu)" in text and "CPU fallback for rk3588 int8" in text
    md = markdown.read_text()
    assert "| sim-rk3588 | aarch64 | tflite | fp32 | litert (cpu) | emulated (aarch64 on qemu); CPU fallback for rk3588 int8 |" in md


def test_published_figures_stand_only_beside_the_matching_hardware(report):
    results, html, markdown = report
    rows = {}
    for chunk in html.read_text().split("<tr ")[1:]:
        if 'data-board="' in chunk.split(">", 1)[0]:
            rows.setdefault(chunk.split('data-board="', 1)[1].split('"', 1)[0], []).append(chunk.split("</tr>", 1)[0])
    assert [("published, not measured here" in row) for row in rows["rock5b"]][0]
    assert not any("published, not measured here" in row for board, chunks in rows.items() if board != "rock5b" for row in chunks)
    md = markdown.read_text()
    rock5b = next(line for line in md.splitlines() if line.startswith("| rock5b |"))
    assert "2.31 ms, mobilenetv2-12 (Rockchip; published, not measured here)" in rock5b
    assert all("published, not measured here" not in line for line in md.splitlines() if line.startswith("| sim-"))
    assert "rknn_model_zoo/blob/eaa94d6f57ca553d493bf3bd7399a070452d2774/README.md" in md  # the source is named


def test_the_main_jobs_phases_and_notes_are_reported(report):
    results, html, markdown = report
    md = markdown.read_text()
    assert "| images | 0.0 s | 61.5 s | 61.5 s |" in md and "| fleet | 70.2 s | - | - |" in md
    assert "- a test run" in md and "timings" in Page(html.read_text()).ids


def test_an_incomplete_run_is_reported_as_such(tmp_path):
    results = tmp_path / "results"
    folder = make_run(results, tmp_path / "artifacts", RUN)
    (folder / "report.json").unlink()
    html, markdown = write_report(results, RUN)
    assert "incomplete" in Page(html.read_text()).ids
    assert "**This run is incomplete**" in markdown.read_text() and "report.json`: missing" in markdown.read_text()


def test_a_comparison_written_by_invoke_compare_appears_in_the_report(tmp_path):
    from edgeship.report.regressions import compare_runs

    results = tmp_path / "results"
    make_run(results, tmp_path / "artifacts", RUN)
    make_run(results, tmp_path / "artifacts", "20261201T100000Z", seed=3, slower={("sim-rpi", "mobilenetv2"): 1.4})
    assert compare_runs(results, RUN, None) == 1
    html, markdown = write_report(results, None)
    assert "regressions" in Page(html.read_text()).ids
    assert "- **slower** sim-rpi mobilenetv2 tflite fp32" in markdown.read_text()


def test_reporting_nothing_names_the_fix(tmp_path):
    with pytest.raises(EdgeshipError, match=r"does not exist; run `./dev main` first"):
        write_report(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EdgeshipError, match=r"holds no run yet \(no edgeship\.db there\); run `./dev main`"):
        write_report(tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []  # asked to read, it made no empty store


def test_reference_figures_name_their_source_and_match_only_real_hardware():
    assert all(figure.url.startswith("https://") and figure.source and figure.conditions for figure in FIGURES)
    npu_row = {"model": "mobilenetv2", "board": "rock5b", "source": "board", "board_model": "Radxa ROCK 5B", "compatible": ["rockchip,rk3588"],
               "accelerator": "rknpu", "backend": "rknnlite", "quant": "int8", "input_shapes": {"input": [1, 3, 224, 224]}}
    assert [f.published_model for f in matching(npu_row)] == ["mobilenetv2-12"]
    rk3588 = next(f for f in FIGURES if f.published_model == "mobilenetv2-12")
    assert why_not(rk3588, {**npu_row, "simulated": True}) == "a simulated board (a container on the controller), not the hardware"
    assert why_not(rk3588, {**npu_row, "fallback": True}) == "not on the NPU"
    assert why_not(rk3588, {**npu_row, "quant": "fp16"}) == "fp16 here, int8 published"
    assert why_not(rk3588, {**npu_row, "input_shapes": {"input": [1, 3, 160, 160]}}) == "input [1, 3, 160, 160] differs from [1, 3, 224, 224]"
    orin = {"model": "yolo11n", "board": "orin", "source": "board", "board_model": "NVIDIA Jetson Orin Nano Developer Kit",
            "compatible": ["nvidia,p3768-0000+p3767-0005", "nvidia,tegra234"], "accelerator": "nvidia_gpu", "backend": "tensorrt",
            "quant": "fp16", "input_shapes": {"images": [1, 3, 640, 640]}}
    assert [(f.latency_ms, f.precision) for f in matching(orin)] == [(4.91, "fp16")]
    assert matching({**orin, "board_model": "NVIDIA Jetson AGX Orin"}) == []  # same SoC family, another board


def test_the_store_json_columns_round_trip(report):
    results, *_ = report
    demo = next(d for d in store.table_rows(results, "demos", RUN) if d["board"] == "rock5b")
    assert list(json.loads(demo["stages"])) == ["capture", "preprocess", "infer", "postprocess", "render"]  # pipeline order kept
    assert demo["model"] == "mobilenetv2" and demo["bottleneck"] == "infer" and demo["fps"] == 29.5


def test_demo_rows_say_which_board_is_simulated_and_which_is_real(report):
    results, html, markdown = report
    md = markdown.read_text()
    assert "| sim-rpi (simulated) | mobilenetv2 |" in md and "| rock5b | mobilenetv2 |" in md
    rows = {row["data-board"]: row for row in Page(html.read_text()).rows if "data-board" in row and "data-model" not in row}
    assert "sim-rpi" in rows and "rock5b" in rows
    assert '<td>sim-rpi <span class="label">simulated</span></td>' in html.read_text()
