"""coral target without Docker: its row and image, the compiler step's record and summary, the
compile blockers, and the board side (libedgetpu's version in detect, the runtime-version check,
the compiled model run through its manifest names, the labelled CPU fallback).

tests/fixtures/edgetpu/compiler_log_documented_format.txt is written by hand in the format Coral's
compiler documents and its users quote; it is NOT output of a real compiler run (no edgetpu_compiler
exists here). The test marked `edgetpu_compiler` runs the real compiler where it is on PATH.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import targets
from edgeship.images.dockerfile import render
from edgeship.images.locks import all_specs, load_spec, pinned_packages
from edgeship_runtime.artifact import Artifact
from edgeship_runtime.backends import backend_class
from edgeship_runtime.backends.litert import EdgeTPUBackend, LiteRTBackend
from edgeship_runtime.errors import ArtifactError, RuntimeUnavailable
from targets.coral import COMPILED_FILE, HOW_TO_COMPILE, NOT_COMPILED, CoralConverter, compile_model, compile_record
from targets.edgetpu_ops import OpInfo, TensorInfo, compare_with_prediction, compile_blockers, ops_from_tflite, parse_compiler_log, predict_placement
from tests.support import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "edgetpu"
# Written by hand in the compiler's documented output format; NOT a real compiler run.
DOCUMENTED_FORMAT_LOG = FIXTURES / "compiler_log_documented_format.txt"


# -- the target and its image -------------------------------------------------------------------
def test_the_coral_row_offers_full_int8_for_the_edge_tpu_with_a_cpu_fallback():
    coral = targets.get("coral")
    assert (coral.quantizations, coral.default_quant, coral.runtime_backend, coral.image) == (("int8",), "int8", "edgetpu", "coral")
    assert issubclass(coral.converter, targets.get("tflite").converter)  # the tflite conversion, not a copy
    assert coral.option("io_dtype").choices == ("uint8", "int8") and coral.option("io_dtype").default == "uint8"
    assert coral.option("edgetpu_runtime").default == "14" and coral.option("weights").choices == ("per-channel", "per-tensor")
    assert backend_class("edgetpu").cpu_fallback == "litert" and "/dev/apex_0 rw" in coral.device_nodes
    assert "LiteRT's CPU" in coral.measured_with


def test_the_coral_image_installs_the_tflite_toolchain_byte_for_byte():
    coral, tflite = load_spec("coral"), load_spec("tflite")
    # identical bytes let Docker reuse the tflite image's environment layer (2.5 GB)
    assert coral.lock.read_bytes() == tflite.lock.read_bytes(), "copy images/tflite/requirements.lock to images/coral/"
    assert pinned_packages(coral.requirements_in) == pinned_packages(tflite.requirements_in)
    assert (coral.base_packages, coral.env) == (tflite.base_packages, tflite.env)


def test_the_template_installs_local_debs_only_for_an_image_that_has_them():
    import dataclasses

    for spec in all_specs(include_gpu_only=True):
        assert "local-debs" not in render(spec), spec.name  # no given .deb: the Dockerfile (and the image key) stay as they were

    @dataclasses.dataclass(frozen=True)
    class GivenDeb:
        package: str
        file: str

    spec, given = load_spec("coral"), (GivenDeb("edgetpu-compiler", "edgetpu-compiler.deb"),)
    if "local_debs" in {field.name for field in dataclasses.fields(spec)}:
        with_deb = dataclasses.replace(spec, local_debs=given)
    else:  # an ImageSpec without the local_debs hook: a subclass that has the field
        fields = [("local_debs", tuple, dataclasses.field(default=()))]
        with_deb = dataclasses.make_dataclass("WithDeb", fields, bases=(type(spec),), frozen=True)(**spec.__dict__, local_debs=given)
    text = render(with_deb)
    assert 'test "$(dpkg-deb --field /tmp/local-debs/edgetpu-compiler.deb Package)" = "edgetpu-compiler"' in text
    assert "dpkg --install /tmp/local-debs/*.deb" in text
    # after the toolchain layer, so an image with the compiler still shares that layer with tflite's
    assert text.index("COPY --from=install") < text.index("COPY local-debs/") < text.index("RUN useradd")


# -- the compiler step's record and what `invoke convert` prints ---------------------------------
def leaky_prediction() -> dict:
    return predict_placement(ops_from_tflite(FIXTURES / "conv_leaky_int8.tflite"))


def test_without_the_compiler_the_artifact_says_not_compiled_and_one_line_says_how_to_get_it(tmp_path):
    record = compile_record(leaky_prediction(), None, None, None, "", False)
    assert record["status"] == NOT_COMPILED and record["file"] is None and record["reason"] == HOW_TO_COMPILE

    lines = CoralConverter.summary(tmp_path, {}, {"edgetpu": record})
    assert lines[0].startswith("Edge TPU placement predicted from Coral's op table (runtime 14): 4 of 10 ops on the Edge TPU, 6 on the CPU")
    assert "first CPU op #4 LEAKY_RELU (LEAKY_RELU is not in the Edge TPU's supported operations table)" in lines[0]
    compiler_lines = [line for line in lines if NOT_COMPILED in line]
    assert len(compiler_lines) == 1 and "docs/coral.md" in compiler_lines[0] and "images.build --target coral" in compiler_lines[0]


def test_the_compilers_report_in_the_documented_format_is_kept_and_compared():
    """The log is a fixture in the documented format, not output of a real compiler run."""
    record = compile_record(leaky_prediction(), "/usr/bin/edgetpu_compiler", None, 0, DOCUMENTED_FORMAT_LOG.read_text(), True)

    assert record["compiled"] and record["file"] == COMPILED_FILE and record["reason"] is None
    assert record["compiler"] == {"path": "/usr/bin/edgetpu_compiler", "version": "16.0.384591198", "exit_code": 0}
    assert (record["compiler_report"]["tpu_ops"], record["compiler_report"]["cpu_ops"]) == (4, 6)
    assert record["comparison"]["agree"] is True
    line = CoralConverter.summary(Path("/a"), {}, {"edgetpu": record})[1]
    assert line == ("edgetpu_compiler 16.0.384591198: 4 ops on the Edge TPU, 6 on the CPU, 1 Edge TPU subgraph(s), as predicted; "
                    "/a/model_edgetpu.tflite")


def test_a_model_the_compiler_refuses_is_recorded_with_its_error():
    # Hand-written, in the words a user's report quotes from edgetpu_compiler 16.0 (not a real run here).
    refused = "Edge TPU Compiler version 16.0.384591198\nERROR: Didn't find op for builtin opcode 'CONV_2D' version '6'\n" \
              "Compilation failed!\n"
    record = compile_record(leaky_prediction(), "/usr/bin/edgetpu_compiler", "16.0.384591198", 1, refused, False)
    assert record["status"] == NOT_COMPILED and record["comparison"] is None
    assert record["reason"] == "edgetpu_compiler failed (exit 1): ERROR: Didn't find op for builtin opcode 'CONV_2D' version '6'"
    assert CoralConverter.summary(Path("/a"), {}, {"edgetpu": record})[1].endswith("; log: /a/edgetpu_compiler.log")


@pytest.mark.edgetpu_compiler
@pytest.mark.skipif(shutil.which("edgetpu_compiler") is None, reason="needs Google's edgetpu_compiler on PATH (docs/coral.md)")
def test_the_real_compiler_maps_what_was_predicted(tmp_path):
    model = tmp_path / "model.tflite"
    shutil.copyfile(FIXTURES / "conv_leaky_int8.tflite", model)
    exit_code, text, compiled = compile_model(shutil.which("edgetpu_compiler"), model, tmp_path / "out", 14)
    print(text)
    assert exit_code == 0 and compiled is not None and compiled.name == "model_edgetpu.tflite"
    report = parse_compiler_log(text)
    assert report["compiled"] and "Operator" in text
    assert compare_with_prediction(leaky_prediction(), report)["agree"] is True


# -- what makes the compiler refuse a model outright ----------------------------------------------
def tensor(name, shape, constant=False, dtype="int8"):
    return TensorInfo(name=name, shape=list(shape), dtype=dtype, quantized=True, constant=constant)


def conv(index, data_shape, filter_shape, version, strides=(1, 1)):
    return OpInfo(index=index, op_name="CONV_2D", inputs=[tensor(f"x{index}", data_shape), tensor(f"w{index}", filter_shape, True),
                                                           tensor(f"b{index}", filter_shape[:1], True, "int32")],
                  outputs=[tensor(f"y{index}", [*data_shape[:3], filter_shape[0]])], version=version,
                  options={"stride_h": strides[0], "stride_w": strides[1], "dilation_h_factor": 1, "dilation_w_factor": 1})


def test_a_grouped_convolution_and_the_conv_version_it_needs_block_the_compiler():
    plain = conv(0, [1, 8, 8, 8], [8, 3, 3, 8], 6)
    grouped = conv(1, [1, 8, 8, 8], [8, 3, 3, 1], 6, strides=(2, 1))  # a 2x1-stride depthwise conv, as onnx2tf writes one
    blockers = compile_blockers([plain, grouped])
    assert [(b["index"], b["reason"].split(":")[0]) for b in blockers] == [
        (0, "CONV_2D version 6"), (1, "grouped convolution (8 input channels, filter [8, 3, 3, 1]; strides 2x1")]
    assert "Didn't find op for builtin opcode 'CONV_2D' version '6'" in blockers[0]["reason"]
    assert compile_blockers([conv(0, [1, 8, 8, 8], [8, 3, 3, 8], 3)]) == []
    assert predict_placement([plain, grouped])["compile_blockers"] == blockers


# -- the board side --------------------------------------------------------------------------------
def coral_artifact(folder: Path, compiled_model: bytes | None = None) -> Path:
    """A coral artifact around the fixture conv_int8.tflite (uint8 I/O, signature serving_default),
    with model_edgetpu.tflite and an edgetpu.json that says it is compiled when one is given."""
    from edgeship_runtime.files import sha256_file

    folder.mkdir(parents=True)
    shutil.copyfile(FIXTURES / "conv_int8.tflite", folder / "model.tflite")
    files = {"model.tflite": sha256_file(folder / "model.tflite")}
    record = {"compiled": False, "status": NOT_COMPILED, "reason": HOW_TO_COMPILE, "file": None, "runtime_version": 14}
    if compiled_model is not None:
        (folder / COMPILED_FILE).write_bytes(compiled_model)
        files[COMPILED_FILE] = sha256_file(folder / COMPILED_FILE)
        record.update(compiled=True, status="compiled for the Edge TPU", reason=None, file=COMPILED_FILE)
    (folder / "edgetpu.json").write_text(json.dumps(record))
    files["edgetpu.json"] = sha256_file(folder / "edgetpu.json")  # every file of an artifact is listed, as the coral target lists them
    manifest = {"artifact": {"file": "model.tflite", "sha256": files["model.tflite"]}, "runtime_backend": "edgetpu", "target": "coral",
                "inputs": [{"name": "x", "shape": [1, 16, 16, 3]}], "outputs": [{"name": "output_0", "shape": [1, 4]}],
                "artifact_io": {"mapping": {"inputs": {"x": {"name": "x", "perm": None}},
                                            "outputs": {"output_0": {"name": "output_0", "perm": None}}}},
                "options": {"quant": "int8", "edgetpu_runtime": "14"}, "source": {"sha256": "0" * 64}, "files": files}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def without_signatures(model: Path) -> bytes:
    """The model with its SignatureDefs removed, as a compiled model may come from edgetpu_compiler."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    unpacked = schema.ModelT.InitFromPackedBuf(model.read_bytes(), 0)
    unpacked.signatureDefs = None
    builder = flatbuffers.Builder(1024)
    builder.Finish(unpacked.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


class EdgeTPUWithoutDelegate(EdgeTPUBackend):
    """The Edge TPU backend minus libedgetpu's delegate (which needs an Edge TPU): what is tested
    is which file it loads and how it finds the tensors the manifest names."""

    def _delegates(self, module) -> list:
        return []


def test_the_compiled_model_runs_under_the_manifests_names_even_without_signatures(tmp_path):
    artifact = Artifact.open(coral_artifact(tmp_path / "a", without_signatures(FIXTURES / "conv_int8.tflite")))
    sample = {"x": np.random.default_rng(0).uniform(0, 1, (1, 16, 16, 3)).astype(np.float32)}
    with EdgeTPUWithoutDelegate(artifact) as backend:
        assert backend.interpreter.get_signature_list() == {}  # it loaded model_edgetpu.tflite
        compiled = backend.infer(sample)
    with LiteRTBackend(artifact) as cpu:
        expected = cpu.infer(sample)
    np.testing.assert_array_equal(compiled["output_0"], expected["output_0"])
    assert compiled["output_0"].dtype == np.float32 and compiled["output_0"].shape == (1, 4)


def test_an_uncompiled_model_is_refused_by_the_edge_tpu_backend_and_runs_on_the_cpu_labelled(tmp_path):
    from edgeship_runtime.select import choose

    folder = coral_artifact(tmp_path / "a")
    with pytest.raises(RuntimeUnavailable, match=r"not compiled for the Edge TPU \(the coral image has no edgetpu_compiler.*docs/coral\.md"):
        EdgeTPUWithoutDelegate(Artifact.open(folder)).load()
    with pytest.raises(RuntimeUnavailable, match=r"runs on edgetpu \(edgetpu\), which this board lacks .*--allow-cpu-fallback$"):
        choose(folder, available=["cpu"])
    artifact, cls, fallback = choose(folder, allow_cpu_fallback=True, available=["cpu"])
    assert cls is LiteRTBackend and artifact.model_file.name == "model.tflite"
    assert fallback["cpu_fallback"] is True and fallback["requested"]["backend"] == "edgetpu" and fallback["used"]["backend"] == "litert"
    assert "its own model.tflite runs on litert's CPU provider instead" in fallback["reason"]
    # a board that has an Edge TPU cannot run the uncompiled model on it either: the same choice
    with pytest.raises(RuntimeUnavailable, match=r"not compiled for the Edge TPU .*--allow-cpu-fallback$"):
        choose(folder, available=["cpu", "edgetpu"])
    artifact, cls, fallback = choose(folder, allow_cpu_fallback=True, available=["cpu", "edgetpu"])
    assert cls is LiteRTBackend and fallback["reason"].startswith(f"{folder}: not compiled for the Edge TPU")


@pytest.fixture
def board_with_standin_libedgetpu(tmp_path):
    """A board tree with a USB Accelerator and a stand-in libedgetpu.so.1 that exports the C API's
    edgetpu_version() (Google's library is not on any registry we reach; the stand-in carries the
    string format the real one returns)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("needs a C compiler to build the stand-in libedgetpu.so.1")
    root = tmp_path / "board"
    (root / "usr/lib").mkdir(parents=True)
    (root / "sys/bus/usb/devices/1-1").mkdir(parents=True)
    (root / "sys/bus/usb/devices/1-1/idVendor").write_text("18d1\n")
    (root / "sys/bus/usb/devices/1-1/idProduct").write_text("9302\n")
    source = tmp_path / "standin.c"
    source.write_text('const char* edgetpu_version(void) { return "BuildLabel(COMPILER=6.3.0 20170516,DATE=redacted,TIME=redacted,'
                      'CL_NUMBER=291256449), RuntimeVersion(13)"; }\n')
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(root / "usr/lib/libedgetpu.so.1"), str(source)], check=True)
    return root


def test_detect_reports_libedgetpus_version_and_a_model_for_a_newer_runtime_is_refused(board_with_standin_libedgetpu, tmp_path):
    from edgeship_runtime.detect import detect

    board = detect(str(board_with_standin_libedgetpu))
    tpu = board["accelerators"]["edgetpu"]
    assert tpu["present"] is True and tpu["usb"] == ["18d1:9302"] and tpu["libedgetpu"].endswith("usr/lib/libedgetpu.so.1")
    assert tpu["runtime_version"] == 13 and tpu["libedgetpu_version"].startswith("BuildLabel(COMPILER=6.3.0")

    manifest = json.loads((coral_artifact(tmp_path / "a", b"TFL3") / "manifest.json").read_text())
    with pytest.raises(ArtifactError, match=r"compiled for Edge TPU runtime 14 but this board's .*libedgetpu.so.1 is runtime 13: .*"
                                            r"newer than this runtime version \(13\).*--option edgetpu_runtime=13"):
        EdgeTPUBackend.compatibility(manifest, board)
    manifest["options"]["edgetpu_runtime"] = "13"
    assert EdgeTPUBackend.compatibility(manifest, board)["status"] == "ok"
    del manifest["files"][COMPILED_FILE]
    assert EdgeTPUBackend.compatibility(manifest, board)["status"] == "not-compiled"


def test_a_board_without_libedgetpu_reports_none_and_nothing_to_compare(tmp_path):
    from edgeship_runtime.detect import detect

    board = detect(str(tmp_path))
    assert board["accelerators"]["edgetpu"] == {"present": False, "usb": [], "pcie": [], "libedgetpu": None}
    manifest = json.loads((coral_artifact(tmp_path / "a", b"TFL3") / "manifest.json").read_text())
    assert EdgeTPUBackend.compatibility(manifest, board)["status"] == "no-runtime"
