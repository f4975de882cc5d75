"""The report's per-operator tables: real ONNX Runtime and OpenVINO profiles (of a tiny model, by
the board runtime) in a controller row and a board's bench JSON come out as tables in report.md
and report.html; a board's profile is untrusted: hostile names are text, bad numbers and
oversized lists are left out and said to be."""

from __future__ import annotations

import html.parser
import json

import pytest

from edgeship.report.profiles import MAX_ENTRIES, SHOWN, profile_sections, read_profile
from edgeship.report.publish import write_report
from tests.unit.edgeship.report.runs import make_run
from tests.unit.runtime.test_profile import heavy_artifact

RUN = "20261130T100000Z"
HOSTILE = "<script>alert(1)</script>|[x](javascript:alert(1))"


class Tables(html.parser.HTMLParser):
    """Each profile table of report.html: its attributes and its cells' text, row by row."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: list[dict] = []
        self.scripts = 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "table" and attributes.get("class") == "profile":
            self.tables.append({**attributes, "rows": []})
            self._open = True
        elif tag == "table":
            self._open = False
        if tag == "tr" and getattr(self, "_open", False):
            self.tables[-1]["rows"].append([])

    def handle_data(self, data):
        if getattr(self, "_open", False) and self.tables and self.tables[-1]["rows"] and data.strip():
            self.tables[-1]["rows"][-1].append(data.strip())


@pytest.fixture(scope="module")
def real_profiles(tmp_path_factory) -> dict:
    """The board runtime's own profile documents of one tiny model, per runtime."""
    from edgeship_runtime.artifact import Artifact
    from edgeship_runtime.backends import backend_class
    from edgeship_runtime.profile import profile

    pytest.importorskip("openvino")
    documents = {}
    for backend in ("onnxruntime", "openvino"):
        artifact = Artifact.open(heavy_artifact(tmp_path_factory.mktemp(backend) / "a", backend))
        documents[backend] = profile(artifact, backend_class(backend), runs=3, threads=1)
    return documents


def _plant(results, real_profiles) -> None:
    folder = results / RUN
    report = json.loads((folder / "report.json").read_text())
    for row in report["conversions"]:
        if (row["model"], row["target"], row["quant"]) == ("digits", "onnx", "fp32"):
            row["host_profile"] = real_profiles["onnxruntime"]
        if (row["model"], row["target"], row["quant"]) == ("digits", "tflite", "fp32"):
            row["host_profile"] = {"available": False, "reason": "litert offers no per-operator timing through its Python API"}
    (folder / "report.json").write_text(json.dumps(report))
    board = json.loads((folder / "sim-rpi.json").read_text())
    digits, mobilenet = board["results"]
    mobilenet["bench"]["backend"] = "openvino"  # as an x86 OpenVINO board's bench.yml file has it
    mobilenet["bench"]["profile"] = real_profiles["openvino"]
    digits["bench"]["profile"] = {
        "available": True, "profiler": HOSTILE, "runs": 3, "total_ms": 1.0,
        "top": [{"op": HOSTILE, "type": "Conv", "ms": 0.9, "share": 0.9},
                {"op": "nan", "type": "Add", "ms": float("nan"), "share": 0.1},
                {"op": "string", "type": "Add", "ms": "1", "share": 0.1},
                {"op": "over", "type": "Add", "ms": 0.1, "share": 7},
                {"op": "x" * 5000, "type": "Relu", "ms": 0.05, "share": 0.05}],
        "by_type": [{"type": "Conv", "ms": 0.9, "share": 0.9, "nodes": True}],
    }
    (folder / "sim-rpi.json").write_text(json.dumps(board))


def test_the_report_has_a_per_operator_table_for_onnx_runtime_and_openvino(tmp_path, real_profiles):
    results = tmp_path / "results"
    make_run(results, tmp_path / "artifacts", RUN)
    _plant(results, real_profiles)
    html_path, markdown_path = write_report(results, RUN)
    html, markdown = html_path.read_text(), markdown_path.read_text()

    page = Tables(html)
    by_backend = {table["data-backend"]: table for table in page.tables}
    assert {"onnxruntime", "openvino"} <= set(by_backend)
    assert by_backend["onnxruntime"]["data-board"] == "controller" and by_backend["openvino"]["data-board"] == "sim-rpi"
    for backend in ("onnxruntime", "openvino"):
        header, first, *_ = by_backend[backend]["rows"]
        assert header == ["operator", "type", "ms per run", "share"]
        expected = real_profiles[backend]["top"][0]
        assert first[:2] == [expected["op"], expected["type"]] and first[3] == f"{expected['share']:.1%}"
    assert "## Time per operator" in markdown and "### controller: digits onnx fp32 on onnxruntime" in markdown
    assert "### sim-rpi: mobilenetv2 tflite fp32 on openvino" in markdown
    assert "Not profiled: controller digits tflite fp32 (litert offers no per-operator timing" in markdown

    # the hostile board: its names are text in both reports, its bad numbers left out and counted
    assert page.scripts == 0 and "&lt;script&gt;alert(1)&lt;/script&gt;|[x](javascript:alert(1))" in html and "javascript:alert(1)\"" not in html
    assert "<script>" not in markdown and r"| \<script\>alert(1)\</script\>\|\[x\](javascript:alert(1)) | Conv | 0.9 | 90.0% |" in markdown
    hostile = next(table for table in page.tables if table["data-board"] == "sim-rpi" and table["data-backend"] != "openvino")
    assert [row[0] for row in hostile["rows"][1:]] == [HOSTILE, "x" * 77 + "..."]
    assert "3 malformed entries left out" in markdown


def test_an_untrusted_profile_is_read_within_bounds():
    assert read_profile(None) is None and read_profile([1, 2]) is None
    assert read_profile({"available": "yes"}) == {"unavailable": "the runtime offers no per-operator timing"}
    assert "not a list" in read_profile({"available": True, "top": "Conv"})["unavailable"]
    many = [{"op": f"n{i}", "type": "Conv", "ms": 1.0, "share": 0.001} for i in range(MAX_ENTRIES + 1)]
    assert f"over {MAX_ENTRIES} entries" in read_profile({"available": True, "top": many})["unavailable"]
    read = read_profile({"available": True, "top": many[:MAX_ENTRIES], "runs": True, "total_ms": -1, "profiler": "\n"})
    assert len(read["top"]) == SHOWN and read["runs"] is None and read["total_ms"] is None and read["profiler"] == "-"
    # the board's order is not trusted either: the table is sorted by time
    unordered = [{"op": "a", "type": "T", "ms": 1, "share": 0.1}, {"op": "b", "type": "T", "ms": 2, "share": 0.2}]
    read = read_profile({"available": True, "top": unordered})
    assert [entry["op"] for entry in read["top"]] == ["b", "a"]


def test_rows_without_a_readable_record_are_skipped():
    rows = [{"board": "b", "model": "m", "source": "board", "record": "{not json"}, {"board": "b", "model": "m", "source": "board", "record": "[]"},
            {"board": "b", "model": "m", "source": "board", "record": json.dumps({"profile": None})}]
    assert profile_sections(rows) == {"shown": [], "unavailable": []}
