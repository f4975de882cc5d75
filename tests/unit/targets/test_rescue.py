"""The shared rescue search (targets/rescue.py) and the host-side parts of each toolchain's:
budgets, candidate picking, the k = 1, 2, 4, ... then bisect search, ONNX Runtime's float
islands on a real quantized model, the rk3588 analysis table, and the jetson engine's fp16
layers (TensorRT itself is not installable here: its Python API is stood in for)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from targets.rescue import Budget, Layer, Ranking, Trial, onnx_macs, parse_budget, pick, search, shortfall
from tests.support.models import planted_inputs, planted_model


# -- budgets ----------------------------------------------------------------------------------
@pytest.mark.parametrize("text, layers, share, normal", [
    ("layers:8", 8, None, "layers:8"), ("macs:10%", None, 0.10, "macs:10%"), ("macs:2.5%", None, 0.025, "macs:2.5%"),
    (" layers:3 , macs:100% ", 3, 1.0, "layers:3,macs:100%"), ("macs:0.00001%", None, 0.00001 / 100, "macs:0.00001%"),  # no exponent
])
def test_budgets_parse_and_normalize(text, layers, share, normal):
    budget = Budget.parse(text)
    assert (budget.max_layers, budget.max_mac_share) == (layers, share)
    assert parse_budget(text) == normal == str(Budget.parse(normal))


@pytest.mark.parametrize("text, message", [("", "empty"), ("layers:0", "at least 1"), ("layers:2.5", "whole number"), ("macs:10", "percentage"),
                                           ("macs:0%", "percentage"), ("macs:150%", "percentage"), ("flops:3", "neither"), ("8", "neither")])
def test_bad_budgets_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        Budget.parse(text)


def test_the_options_are_offered_for_int8_only_and_checked_by_the_controller():
    import targets
    from edgeship.convert.request import resolve_options
    from edgeship.errors import EdgeshipError

    for name in ("onnx", "tflite", "rk3588", "jetson"):
        target = targets.get(name)
        assert target.option("rescue").choices == ("off", "auto") and target.option("rescue").applies_to == ("int8",)
        assert resolve_options(target, "int8", {})["rescue"] == "off"
        assert resolve_options(target, "int8", {"rescue": "auto", "rescue_budget": "macs:5%, layers:4"})["rescue_budget"] == "layers:4,macs:5%"
    with pytest.raises(EdgeshipError, match="only applies to --quant int8"):
        resolve_options(targets.get("rk3588"), "fp16", {"rescue": "auto"})
    with pytest.raises(EdgeshipError, match="rescue_budget='layers:none'.*neither layers:N nor macs:P%"):
        resolve_options(targets.get("onnx"), "int8", {"rescue_budget": "layers:none"})
    assert resolve_options(targets.get("onnx"), "int8", {"calibration_method": "percentile"})["calibration_method"] == "percentile"


# -- candidates and the search ------------------------------------------------------------------
def layer(name: str, score: float, macs: int = 0) -> Layer:
    return Layer(name, "Conv", score=score, figure="sqnr_lost_db", value=score, macs=macs)


def test_candidates_are_worst_first_with_ties_by_name_and_fit_the_budget():
    ranking = Ranking([layer("c", 5, 10), layer("a", 5, 10), layer("big", 9, 60), layer("b", 3, 20), layer("harmless", 0, 1),
                       layer("d", 1, 5)], total_macs=100, method="test", precision="float32")
    assert [x.name for x in ranking.ranked()] == ["big", "a", "c", "b", "d", "harmless"]
    assert [x.name for x in pick(ranking, Budget(max_layers=8))] == ["big", "a", "c", "b", "d"]  # no error, no candidate
    assert [x.name for x in pick(ranking, Budget(max_layers=2))] == ["big", "a"]
    # 30% of MACs: 'big' (60%) is skipped, later smaller layers still fit (10+10 = 20, then b's 20 would pass 30)
    assert [x.name for x in pick(ranking, Budget(max_mac_share=0.30))] == ["a", "c", "d"]
    assert [x.name for x in pick(ranking, Budget(max_layers=1, max_mac_share=0.30))] == ["a"]


def report(passed: bool, cosine: float = 0.5) -> dict:
    failed = [] if passed else [f"output 'y': cosine_min {cosine} < 0.98 (min_cosine)"]
    return {"task": "generic", "passed": passed, "failed": failed, "metrics": {}, "tolerances": {"min_cosine": 0.98},
            "outputs": {"y": {"cosine_min": cosine, "snr_db_min": 10.0}}}


def fake_builds(needed: int | None, cosine_of=lambda count: 0.5):
    """A toolchain whose builds pass from `needed` layers on (None: never); records what was built."""
    built: list[int] = []

    def build_and_judge(layers: tuple[str, ...]) -> Trial:
        built.append(len(layers))
        passed = needed is not None and len(layers) >= needed
        return Trial(layers, report(passed, 0.99 if passed else cosine_of(len(layers))), 100 + len(layers), Path(f"build-{len(layers)}"))

    return build_and_judge, built


@pytest.mark.parametrize("count, needed, expected_builds", [
    (8, 1, [1]), (8, 2, [1, 2]), (8, 5, [1, 2, 4, 8, 6, 5]), (8, 8, [1, 2, 4, 8, 6, 7]), (5, 5, [1, 2, 4, 5]), (6, 3, [1, 2, 4, 3]),
])
def test_the_search_finds_the_fewest_layers_that_pass(count, needed, expected_builds):
    candidates = [layer(f"l{i}", 10 - i) for i in range(count)]
    build_and_judge, built = fake_builds(needed)
    chosen, trials = search(candidates, build_and_judge, Trial((), report(False), 100, Path("plain")), log=lambda line: None)
    assert built == expected_builds
    assert chosen.layers == tuple(f"l{i}" for i in range(needed)) and chosen.report["passed"]
    assert [len(trial.layers) for trial in trials] == sorted(expected_builds)


def test_when_nothing_passes_the_closest_build_is_chosen():
    candidates = [layer(f"l{i}", 10 - i) for i in range(6)]
    build_and_judge, built = fake_builds(None, cosine_of=lambda count: {1: 0.6, 2: 0.9, 4: 0.9, 6: 0.7}[count])
    baseline = Trial((), report(False, 0.5), 100, Path("plain"))
    chosen, trials = search(candidates, build_and_judge, baseline, log=lambda line: None)
    assert built == [1, 2, 4, 6] and [len(trial.layers) for trial in trials] == [1, 2, 4, 6]
    assert chosen.layers == ("l0", "l1")  # 2 and 4 layers come equally close: the fewer wins
    build_and_judge, _ = fake_builds(None, cosine_of=lambda count: 0.4)
    assert search(candidates[:1], build_and_judge, baseline, log=lambda line: None)[0] is baseline  # nothing helped


def test_shortfall_measures_the_distance_to_every_failed_gate():
    assert shortfall(report(True, 0.99)) == 0
    assert shortfall(report(False, 0.49)) == pytest.approx(0.49 / 0.98)
    detect = {"task": "detect", "tolerances": {"min_f1": 0.9}, "metrics": {"f1": 0.45}, "outputs": {"map": {"cosine_min": 0.1}}}
    assert shortfall(detect) == pytest.approx(0.5)  # the task metric, not the cosine, when the task gates on it


# -- ONNX Runtime: real quantization of the planted model ------------------------------------
@pytest.fixture(scope="module")
def planted_qdq(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    folder = tmp_path_factory.mktemp("planted-qdq")
    model = planted_model(folder / "planted.onnx")
    calibration = [{"input": sample[None]} for sample in planted_inputs(16, seed=1)]
    samples = [{"input": sample[None]} for sample in planted_inputs(4, seed=2)]
    return folder, model, calibration, samples


def cosine_against_fp32(model: Path, quantized: Path, samples: list[dict]) -> float:
    import onnxruntime

    fp32, int8 = onnxruntime.InferenceSession(str(model)), onnxruntime.InferenceSession(str(quantized))  # default optimizations, as boards run
    worst = 1.0
    for sample in samples:
        a, b = fp32.run(None, sample)[0].ravel().astype(np.float64), int8.run(None, sample)[0].ravel().astype(np.float64)
        worst = min(worst, float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)))
    return worst


def test_onnx_keeps_a_node_float_where_ort_would_quantize_it_back(planted_qdq):
    from targets.onnx import qdq_quantize

    folder, model, calibration, samples = planted_qdq
    plain = qdq_quantize(model, folder / "plain.onnx", calibration)
    kept = qdq_quantize(model, folder / "kept.onnx", calibration, kept=("planted",))
    assert cosine_against_fp32(model, plain, samples) < 0.5
    assert cosine_against_fp32(model, kept, samples) > 0.999
    # the same node excluded by name only comes back int8 when the session loads it (WeightBiasQuantization)
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from targets.onnx import CalibrationReader

    excluded = folder / "excluded.onnx"
    quantize_static(str(model), str(excluded), CalibrationReader(calibration), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, nodes_to_exclude=["planted"])
    assert cosine_against_fp32(model, excluded, samples) < 0.5
    assert kept.read_bytes() == qdq_quantize(model, folder / "again.onnx", calibration, kept=("planted",)).read_bytes()


def test_onnx_ranking_puts_the_planted_node_first(planted_qdq):
    from targets.onnx import qdq_quantize, qdq_ranking

    folder, model, calibration, samples = planted_qdq
    plain = qdq_quantize(model, folder / "rank-plain.onnx", calibration)
    ranking = qdq_ranking(model, plain, samples[:2], folder)
    ranked = ranking.ranked()
    assert ranked[0].name == "planted" and ranked[0].value > 20 > max(other.value for other in ranked[1:])
    assert ranked[0].macs == 16 * 16 * 8 * 8 * 9 and ranking.total_macs == 16 * 16 * (8 * 3 * 9 + 8 * 8 * 9 + 4 * 8 * 9)
    assert not list(folder.glob("rank-*.onnx"))[1:]  # the debug models it wrote are gone, the plain build stays


def test_macs_of_convolutions_and_matrix_products(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    weights = [numpy_helper.from_array(np.zeros((4, 2, 3, 3), np.float32), "w"), numpy_helper.from_array(np.zeros((4, 3, 2, 2), np.float32), "t"),
               numpy_helper.from_array(np.zeros((8 * 6 * 6, 5), np.float32), "m")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),  # 4x4x4 out, 2*3*3 each
             helper.make_node("ConvTranspose", ["c", "t"], ["u"], name="up", strides=[1, 1]),  # 4x4x4 in, each scatters 3*2*2
             helper.make_node("Relu", ["u"], ["r"], name="relu"),
             helper.make_node("Flatten", ["r"], ["f"], name="flat"),
             helper.make_node("Reshape", ["f", "shape"], ["g"], name="reshape"),
             helper.make_node("MatMul", ["g", "m"], ["y"], name="fc")]
    shape = numpy_helper.from_array(np.array([1, -1], np.int64), "shape")
    graph = helper.make_graph(nodes, "macs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], [*weights, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    counter = onnx_macs(model)
    assert counter.per_layer == {"conv": 4 * 4 * 4 * 2 * 9, "up": 4 * 4 * 4 * 3 * 4, "fc": 5 * 3 * 5 * 5}
    assert counter.total == sum(counter.per_layer.values())


# -- TFLite: MACs from op details -------------------------------------------------------------------
def test_tflite_macs_from_tensor_shapes():
    from targets.tflite import tflite_op_macs

    shapes = {0: [1, 8, 8, 3], 1: [16, 3, 3, 3], 2: [1, 8, 8, 16], 3: [1, 3, 3, 16], 4: [10, 1024], 5: [1, 10], 6: [4], 7: [1, 16, 16, 4]}
    conv = {"op_name": "CONV_2D", "inputs": [0, 1], "outputs": [2]}
    depthwise = {"op_name": "DEPTHWISE_CONV_2D", "inputs": [2, 3], "outputs": [2]}
    dense = {"op_name": "FULLY_CONNECTED", "inputs": [0, 4], "outputs": [5]}
    transpose = {"op_name": "TRANSPOSE_CONV", "inputs": [6, 1, 0], "outputs": [7]}
    shape_of = shapes.__getitem__
    assert tflite_op_macs(conv, shape_of) == 8 * 8 * 16 * 27
    assert tflite_op_macs(depthwise, shape_of) == 8 * 8 * 16 * 9
    assert tflite_op_macs(dense, shape_of) == 10 * 1024
    assert tflite_op_macs(transpose, shape_of) == 8 * 8 * 3 * 16 * 9
    assert tflite_op_macs({"op_name": "ADD", "inputs": [2, 2], "outputs": [2]}, shape_of) == 0


# -- rk3588: the analysis table as compiled layers ------------------------------------------------
# rknn-toolkit2 2.5.0's error_analysis.txt of the planted model's plain int8 build (this machine)
PLANTED_ANALYSIS = """\
layer_name                              simulator_error
                                    entire              single
                                 cos      euc        cos      euc
-----------------------------------------------------------------------
[Input] input                  1.00000 | 0.00000   1.00000 | 0.00000
[exDataConvert] input_int8     0.99996 | 0.22917   0.99996 | 0.22917
[Conv] c1
[Relu] r1                      0.99995 | 0.43271   0.99995 | 0.43271
[Conv] c2
[Relu] r2                      0.18570 | 35.93948  0.18570 | 35.93948
[Conv] output_int8             -0.09459 | 44.12551 0.99993 | 0.50883
[exDataConvert] output         -0.09459 | 44.12551 0.99996 | 0.39763
"""


def test_rk3588_analysis_groups_fused_layers_and_reads_negative_cosines():
    from targets.rk3588 import parse_analysis, parse_analysis_groups

    assert parse_analysis(PLANTED_ANALYSIS)[4] == {"layer": "output_int8", "op": "Conv", "entire_cos": -0.09459, "entire_euc": 44.12551,
                                                    "single_cos": 0.99993, "single_euc": 0.50883}
    groups = parse_analysis_groups(PLANTED_ANALYSIS)
    assert [(group["names"], group["ops"]) for group in groups] == [
        (["c1", "r1"], ["Conv", "Relu"]), (["c2", "r2"], ["Conv", "Relu"]), (["output_int8"], ["Conv"])]
    assert groups[1]["single_cos"] == 0.18570


# -- jetson: the engine's fp16 layers ---------------------------------------------------------------
class FakeTensorRT:
    """The few names of TensorRT's Python API apply_precision_constraints uses (TensorRT cannot be
    installed here: its wheels download from NVIDIA's index)."""

    class DataType:
        HALF = "HALF"

    class BuilderFlag:
        OBEY_PRECISION_CONSTRAINTS = "OBEY_PRECISION_CONSTRAINTS"


class FakeLayer:
    def __init__(self, name: str, outputs: int = 1):
        self.name, self.num_outputs, self.precision, self.output_types = name, outputs, None, {}

    def set_output_type(self, index: int, dtype) -> None:
        self.output_types[index] = dtype


class FakeNetwork:
    def __init__(self, *layers: FakeLayer):
        self.layers = layers
        self.num_layers = len(layers)

    def get_layer(self, index: int) -> FakeLayer:
        return self.layers[index]


class FakeBuilderConfig:
    def __init__(self):
        self.flags: list = []

    def set_flag(self, flag) -> None:
        self.flags.append(flag)


def test_the_engine_keeps_the_named_layers_in_fp16_and_obeys():
    from edgeship_runtime.trt_engine import apply_precision_constraints

    network = FakeNetwork(FakeLayer("conv1"), FakeLayer("planted", outputs=2), FakeLayer("conv3"))
    config = FakeBuilderConfig()
    assert apply_precision_constraints(FakeTensorRT, network, config, ["planted"]) == ["planted"]
    assert network.layers[1].precision == "HALF" and network.layers[1].output_types == {0: "HALF", 1: "HALF"}
    assert network.layers[0].precision is None and network.layers[2].output_types == {}
    assert config.flags == ["OBEY_PRECISION_CONSTRAINTS"]


def test_a_plan_naming_layers_the_network_lacks_is_refused():
    from edgeship_runtime.errors import ArtifactError
    from edgeship_runtime.trt_engine import apply_precision_constraints

    config = FakeBuilderConfig()
    with pytest.raises(ArtifactError, match="does not have: gone"):
        apply_precision_constraints(FakeTensorRT, FakeNetwork(FakeLayer("conv1")), config, ["conv1", "gone"])


def test_fp16_layers_key_int8_engines_and_are_checked(tmp_path):
    import json

    from edgeship_runtime.artifact import Artifact
    from edgeship_runtime.errors import ArtifactError
    from edgeship_runtime.trt_engine import build_config, cache_key

    base = dict(onnx_sha256="a" * 64, tensorrt_version="10.3.0.30", gpu_name="Orin (nvgpu)", compute_capability="8.7",
                precision="int8", workspace_mib=1024, calibration_sha256="c" * 64)
    assert cache_key(**base, fp16_layers=[]) == cache_key(**base)  # engines cached before rescue keep their keys
    assert cache_key(**base, fp16_layers=["b", "a"]) == cache_key(**base, fp16_layers=["a", "b"]) != cache_key(**base)
    artifact = Artifact(tmp_path, {"artifact": {"file": "model.onnx"}})
    (tmp_path / "tensorrt.json").write_text(json.dumps({"precision": "int8", "workspace_mib": 1024}))
    assert build_config(artifact)["fp16_layers"] == []  # written before rescue existed
    (tmp_path / "tensorrt.json").write_text(json.dumps({"precision": "int8", "workspace_mib": 1024, "fp16_layers": ["planted"]}))
    assert build_config(artifact)["fp16_layers"] == ["planted"]
    for bad, message in ((["planted", 3], "list of layer names"), ("planted", "list of layer names")):
        (tmp_path / "tensorrt.json").write_text(json.dumps({"precision": "int8", "workspace_mib": 1024, "fp16_layers": bad}))
        with pytest.raises(ArtifactError, match=message):
            build_config(artifact)
    (tmp_path / "tensorrt.json").write_text(json.dumps({"precision": "fp16", "workspace_mib": 1024, "fp16_layers": ["planted"]}))
    with pytest.raises(ArtifactError, match="only apply to an int8 engine"):
        build_config(artifact)


# -- the whole rescue, on a toolchain of files --------------------------------------------------
class FileRescuer:
    """A toolchain whose build is a text file of the layers kept float: passes once 'bad' is among
    them, refuses to keep 'odd' float. Stands in for a real toolchain around rescue()."""

    def __init__(self, converter, calibration, samples, reference):
        from targets.rescue import Rescuer

        self.base = Rescuer(converter, calibration, samples, reference)
        self.tolerances, self.judged_on, self.workdir = self.base.tolerances, "", converter.workdir

    def baseline(self, report, artifact):
        return report, artifact

    def rank(self):
        return Ranking([layer("odd", 9, 10), layer("bad", 5, 30), layer("meh", 1, 60), layer("fine", 0, 0)], 100, "files", "float32")

    def build(self, layers):
        if "odd" in layers and "bad" not in layers:
            raise RuntimeError("cannot keep 'odd' float\nsecond line")
        built = self.workdir / f"build-{len(layers)}.txt"
        built.write_text(",".join(layers))
        return built

    def judge(self, built):
        return report("bad" in built.read_text(), 0.99 if "bad" in built.read_text() else 0.5)

    def latency_ms(self, built):
        return None

    def adopt(self, layers, built):
        return built

    def restore(self):
        return None

    def size(self, built):
        return built.stat().st_size


def rescue_with(rescuer_class, budget: str, tmp_path, passed: bool = False, cosine: float = 0.5):
    """rescue() over an onnx int8 job whose toolchain is `rescuer_class`: (shipped, record, log lines)."""
    import targets
    from targets.base import Converter
    from targets.job import Job, Source
    from targets.rescue import rescue

    job = Job(target="onnx", source=Source(path="m.onnx", file="m.onnx", format="onnx"), quant="int8",
              options={"rescue": "auto", "rescue_budget": budget}, tolerances={"min_cosine": 0.98}, out=str(tmp_path))
    lines: list[str] = []
    converter = Converter(targets.get("onnx"), job, tmp_path, log=lines.append)
    converter.rescuer = lambda *args: rescuer_class(converter, *args)  # type: ignore[attr-defined]
    plain = tmp_path / "plain.txt"
    plain.write_text("")
    shipped, record = rescue(converter, report(passed, cosine), plain, [], [], [])
    return shipped, record, lines


def test_rescue_records_the_plan_and_survives_a_plan_the_toolchain_refuses(tmp_path):
    shipped, record, lines = rescue_with(FileRescuer, "layers:3", tmp_path)
    assert shipped == tmp_path / "build-2.txt" and shipped.read_text() == "odd,bad"
    assert record["passed"] and record["plan"]["float_layers"][1]["name"] == "bad" and record["plan"]["mac_share"] == 0.4
    assert [trial["headline"] for trial in record["trials"]] == ["build failed", "cosine 0.99"]
    assert record["trials"][0]["failed"] == ["build failed: cannot keep 'odd' float"]
    assert record["candidates"] == ["odd", "bad", "meh"] and record["result"].startswith("rescued: 2 layer(s) kept float32 (odd, bad; 40.0%")
    assert record["before"]["cosine_min"] == {"y": 0.5} and record["after"]["cosine_min"] == {"y": 0.99}
    assert lines[-1] == record["result"] and "\n" not in record["result"]
    # within tolerance already: nothing is ranked or built
    shipped, record, _ = rescue_with(FileRescuer, "layers:3", tmp_path, passed=True, cosine=0.99)
    assert shipped is None and record == {"mode": "auto", "budget": "layers:3", "needed": False, "passed": True,
                                          "result": "rescue: int8 is within tolerance (cosine 0.99); nothing kept float"}


class CrashingRescuer(FileRescuer):
    """Its simulator cannot run the one-layer build (a toolchain error naming its temporary folder),
    and it has no MAC count (rk3588 from a .tflite source)."""

    def rank(self):
        return Ranking([layer("odd", 9), layer("bad", 5), layer("meh", 1)], 0, "files", "float32")

    def build(self, layers):
        built = self.workdir / f"build-{len(layers)}.txt"
        built.write_text(",".join(layers))
        return built

    def judge(self, built):
        if built.read_text() == "odd":
            raise RuntimeError("E inference: cannot read /tmp/convert-k2j4/hybrid/model.rknn")
        return super().judge(built)


def test_a_trial_the_toolchain_cannot_run_is_a_failed_trial_without_its_temporary_path_and_macs_unknown_bound_by_layers(tmp_path):
    shipped, record, lines = rescue_with(CrashingRescuer, "macs:5%", tmp_path)
    assert record["passed"] and shipped.read_text() == "odd,bad"
    assert record["trials"][0]["failed"] == ["build failed: E inference: cannot read <workdir>"]
    assert record["budget"] == "layers:8" and any("MACs are unknown here, so macs:5% cannot be held" in line for line in lines)
