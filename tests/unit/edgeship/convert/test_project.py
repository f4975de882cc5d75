"""The conversions file (edgeship.toml): every schema mistake is one line naming the file, the
table, the key and the fix; the matrix expands into named entries. The lock (conversions.lock):
what an entry records of its outputs, and how a drift is told apart from a stale lock or a
toolchain that is not deterministic. No Docker: artifact folders are written here by hand."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from edgeship.convert.lockfile import Drift, compare, input_records, output_records, portable_manifest_sha256
from edgeship.convert.project import load_project
from edgeship.errors import EdgeshipError
from tests.support import run_cli, tiny_cnn


@pytest.fixture
def project(tmp_path):
    """A project folder with a tiny model, calibration samples, an eval set and labels."""
    model = tiny_cnn(tmp_path / "model.onnx")
    (tmp_path / "calib").mkdir()
    for index in range(3):
        np.save(tmp_path / "calib" / f"{index:03d}.npy", np.full((1, 1, 8, 8), index, np.float32))
    np.savez(tmp_path / "eval.npz", input=np.zeros((2, 1, 8, 8), np.float32), labels=np.array([0, 1]))
    (tmp_path / "labels.txt").write_text("a\nb\nc\nd\n")
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    return tmp_path, sha


def write(folder: Path, text: str) -> Path:
    config = folder / "edgeship.toml"
    config.write_bytes(text.encode("utf-8", "surrogateescape"))  # "\udcff" in text: the byte 0xff, not UTF-8
    return config


def model_table(sha: str, extra: str = "") -> str:
    return (f'[models.tiny]\npath = "model.onnx"\nsha256 = "{sha}"\ncalibration = "calib"\neval = "eval.npz"\n'
            f'labels = "labels.txt"\n{extra}\n')


def test_the_matrix_expands_into_named_entries_with_resolved_paths(project):
    folder, sha = project
    config = write(folder, model_table(sha) + '[[matrix]]\nmodels = ["tiny"]\ntargets = ["onnx", "tflite"]\n'
                                              '[[matrix]]\nmodels = ["tiny"]\ntargets = ["tflite"]\nquants = ["int8"]\n'
                                              'options = { io_dtype = "uint8" }\nsuffix = "uint8-io"\n')
    loaded = load_project(config)
    assert list(loaded.entries) == ["tiny-onnx-fp32", "tiny-onnx-int8", "tiny-tflite-fp32", "tiny-tflite-fp16", "tiny-tflite-dynamic",
                                    "tiny-tflite-int8", "tiny-tflite-int8-uint8-io"]
    assert loaded.lock == folder / "conversions.lock" and loaded.artifacts == folder / "artifacts"
    request = loaded.entries["tiny-tflite-int8-uint8-io"].request(folder / "out")
    assert request.calib == folder / "calib" and request.options == {"io_dtype": "uint8"} and request.name == "tiny"
    # calibration goes only to the modes that use it
    assert loaded.entries["tiny-onnx-fp32"].request(folder / "out").calib is None


SCHEMA_ERRORS = [
    ("not TOML", "[models.tiny\n", r"edgeship\.toml is not valid TOML \(.*\); fix the syntax there"),
    ("unknown top-level key", "{models}[[matrix]]\nmodels = [\"tiny\"]\ntargets = [\"onnx\"]\n[targets]\n",
     r"top level: unknown key 'targets'; the keys are: project, models, matrix"),
    ("no matrix", "{models}", r"top level: no \[\[matrix\]\] row; add one with models = \[\.\.\.\] and targets = \[\.\.\.\]"),
    ("unknown model key", "[models.tiny]\npath = \"model.onnx\"\nsha256 = \"{sha}\"\ncalib = \"calib\"\n[[matrix]]\nmodels = [\"tiny\"]\n"
     "targets = [\"onnx\"]\n", r"\[models\.tiny\]: unknown key 'calib'; the keys are: path, sha256, calibration, eval"),
    ("missing model file", "[models.tiny]\npath = \"absent.onnx\"\nsha256 = \"{sha}\"\n[[matrix]]\nmodels = [\"tiny\"]\ntargets = [\"onnx\"]\n",
     r"\[models\.tiny\]: path = 'absent\.onnx': no such model .*; fix the path"),
    ("no sha256", "[models.tiny]\npath = \"model.onnx\"\n[[matrix]]\nmodels = [\"tiny\"]\ntargets = [\"onnx\"]\n",
     r"\[models\.tiny\]: sha256 is missing; pin the model with sha256 = \"{sha}\""),
    ("sha256 not hex", "[models.tiny]\npath = \"model.onnx\"\nsha256 = \"abc\"\n[[matrix]]\nmodels = [\"tiny\"]\ntargets = [\"onnx\"]\n",
     r"sha256 = 'abc' is not 64 hex digits; write the output of `sha256sum model\.onnx`"),
    ("replaced model", "[models.tiny]\npath = \"model.onnx\"\nsha256 = \"{other}\"\n[[matrix]]\nmodels = [\"tiny\"]\ntargets = [\"onnx\"]\n",
     r"model\.onnx has sha256 {sha}, not the declared {other}: the model file was replaced; restore it, or declare the new sha256"),
    ("missing calibration folder", "[models.tiny]\npath = \"model.onnx\"\nsha256 = \"{sha}\"\ncalibration = \"nowhere\"\n[[matrix]]\n"
     "models = [\"tiny\"]\ntargets = [\"onnx\"]\n", r"calibration = 'nowhere': no such folder .*; fix the path"),
    ("wrong type", "[models.tiny]\npath = \"model.onnx\"\nsha256 = \"{sha}\"\ninput_shapes = \"x:1,2\"\n[[matrix]]\nmodels = [\"tiny\"]\n"
     "targets = [\"onnx\"]\n", r"input_shapes must be a table, not str 'x:1,2'"),
    ("bad input shape", "[models.tiny]\npath = \"model.onnx\"\nsha256 = \"{sha}\"\ninput_shapes = {{ input = [1, 0] }}\n[[matrix]]\n"
     "models = [\"tiny\"]\ntargets = [\"onnx\"]\n", r"input_shapes\.input = \[1, 0\] is not a list of positive integers; write e\.g\. input = "),
    ("undeclared model", "{models}[[matrix]]\nmodels = [\"tiny\", \"huge\"]\ntargets = [\"onnx\"]\n",
     r"\[\[matrix\]\] row 1: model 'huge' is not declared; declare \[models\.huge\] or use one of: tiny"),
    ("unknown target", "{models}[[matrix]]\nmodels = [\"tiny\"]\ntargets = [\"npu9000\"]\n",
     r"\[\[matrix\]\] row 1: unknown target 'npu9000'; choose one of: "),
    ("unoffered quant", "{models}[[matrix]]\nmodels = [\"tiny\"]\ntargets = [\"onnx\"]\nquants = [\"fp16\"]\n",
     r"target onnx does not offer quant 'fp16'; choose from: fp32, int8"),
    ("option of another mode", "{models}[[matrix]]\nmodels = [\"tiny\"]\ntargets = [\"tflite\"]\noptions = {{ io_dtype = \"uint8\" }}\n",
     r"option io_dtype=uint8 only applies to --quant int8 .*\(a row's options apply to every mode it lists: split the row\)"),
    ("int8 without calibration", "[models.tiny]\npath = \"model.onnx\"\nsha256 = \"{sha}\"\n[[matrix]]\nmodels = [\"tiny\"]\n"
     "targets = [\"onnx\"]\n", r"onnx int8 needs calibration, and \[models\.tiny\] has none; add calibration = \"DIR\" there"),
    ("same entry twice", "{models}[[matrix]]\nmodels = [\"tiny\"]\ntargets = [\"onnx\"]\n[[matrix]]\nmodels = [\"tiny\"]\ntargets = [\"onnx\"]\n"
     "quants = [\"int8\"]\n", r"\[\[matrix\]\] row 2: entry tiny-onnx-int8 is made by an earlier row too; drop it from one row, or give this row"),
    ("a model key with a path in it", "[models.\"../x\"]\npath = \"model.onnx\"\nsha256 = \"{sha}\"\n[[matrix]]\nmodels = [\"../x\"]\n"
     "targets = [\"onnx\"]\n", r"\[models\.\.\./x\]: the model's key '\.\./x' is not a safe name .*; e\.g\. x \(it names folders\)"),
    ("a suffix with a slash", "{models}[[matrix]]\nmodels = [\"tiny\"]\ntargets = [\"onnx\"]\nsuffix = \"a/b\"\n",
     r"\[\[matrix\]\] row 1: suffix 'a/b' is not a safe name .*; e\.g\. a-b"),
    ("a model name with a newline", "[models.tiny]\npath = \"model.onnx\"\nsha256 = \"{sha}\"\nname = \"a\\nb\"\n[[matrix]]\nmodels = [\"tiny\"]\n"
     "targets = [\"onnx\"]\nquants = [\"fp32\"]\n", r"\[models\.tiny\]: name 'a\\nb' is not a safe name .*; e\.g\. a-b"),
    ("an entry name over 64 characters", "[models." + "m" * 60 + "]\npath = \"model.onnx\"\nsha256 = \"{sha}\"\n[[matrix]]\n"
     "models = [\"" + "m" * 60 + "\"]\ntargets = [\"onnx\"]\nquants = [\"fp32\"]\n",
     r"\[\[matrix\]\] row 1: the entry name 'm{{60}}-onnx-fp32' is not a safe name \(1-64 .*\); e\.g\. m{{60}}-o"),
    ("not UTF-8", "[models.tiny]\npath = \"\udcff\"\n", r"edgeship\.toml is not UTF-8 text \(byte \d+\); save it as UTF-8"),
    ("nested too deeply", "a = " + "[" * 5000 + "]" * 5000 + "\n", r"edgeship\.toml nests its arrays or tables too deeply to read; flatten it"),
    ("a boolean dimension", "[models.tiny]\npath = \"model.onnx\"\nsha256 = \"{sha}\"\ninput_shapes = {{ input = [true, 1, 8, 8] }}\n"
     "[[matrix]]\nmodels = [\"tiny\"]\ntargets = [\"onnx\"]\nquants = [\"fp32\"]\n",
     r"input_shapes\.input = \[True, 1, 8, 8\] is not a list of positive integers"),
]


@pytest.mark.parametrize(("case", "text", "pattern"), SCHEMA_ERRORS, ids=[case[0] for case in SCHEMA_ERRORS])
def test_each_schema_mistake_is_one_line_naming_the_place_and_the_fix(project, case, text, pattern):
    folder, sha = project
    other = "0" * 64
    config = write(folder, text.format(models=model_table(sha), sha=sha, other=other))
    with pytest.raises(EdgeshipError, match=pattern.format(sha=sha, other=other)) as raised:
        load_project(config)
    message = str(raised.value)
    assert "\n" not in message and message.startswith(str(config)), message


def test_the_command_line_says_it_in_one_line_with_exit_2(project):
    folder, sha = project
    config = write(folder, model_table(sha) + '[[matrix]]\nmodels = ["tiny"]\ntargets = ["onnx"]\nquants = ["fp16"]\n')
    for task in ("build", "verify"):
        result = run_cli(task, "--config", str(config))
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2 and len(errors) == 1, result.stderr
        assert "does not offer quant 'fp16'" in errors[0]
    assert not (folder / "conversions.lock").exists() and not (folder / "artifacts").exists()


def test_verify_without_a_lock_says_how_to_make_one(project):
    folder, sha = project
    config = write(folder, model_table(sha) + '[[matrix]]\nmodels = ["tiny"]\ntargets = ["onnx"]\n')
    with pytest.raises(EdgeshipError, match=r"conversions\.lock does not exist; run `invoke build`"):
        from edgeship.convert.project import verify_all

        verify_all(config, [])


# -- the lock ----------------------------------------------------------------------------------

def artifact(folder: Path, target: str, model_file: str, model_bytes: bytes, image_id: str = "sha256:aaa") -> Path:
    """An artifact folder as the worker writes it: files, and a manifest listing their sha256."""
    folder.mkdir(parents=True)
    (folder / model_file).write_bytes(model_bytes)
    (folder / "ops.json").write_text('{"ops": {"Conv": 1}}\n')
    (folder / "convert.log").write_text(f"took {image_id} seconds\n")  # logs are never locked
    files = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in (model_file, "ops.json")}
    manifest = {"target": target, "artifact": {"file": model_file, "sha256": files[model_file], "size": len(model_bytes)},
                "image": {"id": image_id, "tag": f"edgeship/{target}:{image_id[-3:]}", "lock_sha256": "1" * 64},
                "cache_key": image_id * 2, "files": files, "accuracy": {"passed": True}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_outputs_are_hashed_from_the_disk_and_the_manifest_without_this_machines_image(tmp_path):
    first = output_records("onnx", artifact(tmp_path / "a", "onnx", "model.onnx", b"graph"))
    assert first["files"] == {"model.onnx": hashlib.sha256(b"graph").hexdigest(), "ops.json": hashlib.sha256(b'{"ops": {"Conv": 1}}\n').hexdigest()}
    assert first["bytes_reproducible"] and "not_byte_reproducible" not in first
    # another machine's image id, tag and cache key: the same portable manifest
    second = output_records("onnx", artifact(tmp_path / "b", "onnx", "model.onnx", b"graph", image_id="sha256:bbb"))
    assert second == first
    # a file changed after the manifest was written is seen: hashes come from the files
    (tmp_path / "b" / "ops.json").write_text('{"ops": {"Conv": 2}}\n')
    assert output_records("onnx", tmp_path / "b")["files"]["ops.json"] != first["files"]["ops.json"]
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    manifest["accuracy"]["passed"] = False
    assert portable_manifest_sha256(manifest) != first["manifest_sha256"]


def test_rknn_bytes_are_recorded_but_checked_by_size_with_the_reason(tmp_path):
    record = output_records("rk3588", artifact(tmp_path / "a", "rk3588", "model.rknn", b"RKNN" + bytes(60)))
    assert "model.rknn" not in record["files"] and not record["bytes_reproducible"]
    loose = record["not_byte_reproducible"]["model.rknn"]
    assert loose["size"] == 64 and loose["checked"] == "size" and "heap and stack addresses" in loose["why"]
    # the same size with other header words is no difference; the manifest's artifact sha256 is left out too
    other = output_records("rk3588", artifact(tmp_path / "b", "rk3588", "model.rknn", b"RKNN" + bytes(59) + b"\x7f"))
    entry = {"inputs": {}, "options": {}, "input_shapes": [], "images": {}, "code_sha256": "c", "edgeship_version": "1", "target": "rk3588",
             "quant": "int8"}
    assert compare("m-rk3588-int8", {**entry, "outputs": record}, {**entry, "outputs": other}).clean
    longer = output_records("rk3588", artifact(tmp_path / "c", "rk3588", "model.rknn", b"RKNN" + bytes(64)))
    drift = compare("m-rk3588-int8", {**entry, "outputs": record}, {**entry, "outputs": longer})
    assert drift.files[0] == {"file": "model.rknn (size)", "locked": 64, "now": 68}


def test_inputs_are_recorded_with_paths_relative_to_the_project(project):
    folder, sha = project
    config = write(folder, model_table(sha, 'task = "classify"') + '[[matrix]]\nmodels = ["tiny"]\ntargets = ["onnx"]\n')
    entry = load_project(config).entries["tiny-onnx-int8"]
    records = input_records(entry.request(folder / "out"), folder, needs_calibration=True)
    assert records["source"] == {"path": "model.onnx", "sha256": sha}
    assert records["calibration"]["path"] == "calib" and records["calibration"]["samples"] == 3
    assert records["task"] == {"name": "classify"} and set(records) == {"source", "calibration", "eval", "labels", "task"}
    np.save(folder / "calib" / "001.npy", np.full((1, 1, 8, 8), 7, np.float32))
    assert input_records(entry.request(folder / "out"), folder, True)["calibration"]["sha256"] != records["calibration"]["sha256"]
    assert "calibration" not in input_records(load_project(config).entries["tiny-onnx-fp32"].request(folder), folder, False)


def lock_entry(**changes) -> dict:
    entry = {
        "model": "tiny", "target": "onnx", "quant": "int8", "options": {}, "input_shapes": [],
        "inputs": {"source": {"path": "model.onnx", "sha256": "a" * 64}, "calibration": {"path": "calib", "sha256": "b" * 64, "samples": 3}},
        "images": {"onnx": {"lock_sha256": "c" * 64, "recipe_sha256": "d" * 64, "base": "debootstrap bookworm/minbase amd64 python3"}},
        "code_sha256": "e" * 64, "edgeship_version": "0.1.0",
        "outputs": {"files": {"model.onnx": "f" * 64, "ops.json": "1" * 64}, "manifest_sha256": "2" * 64, "bytes_reproducible": True},
    }
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = entry
        for key in parents:
            node = node[key]
        node[last] = value
    return entry


def test_a_drift_is_one_line_with_the_entry_the_file_both_hashes_and_the_input():
    locked = lock_entry()
    now = lock_entry(inputs__calibration__sha256="9" * 64)
    now["outputs"]["files"] = {"model.onnx": "8" * 64, "ops.json": "1" * 64}
    now["outputs"]["manifest_sha256"] = "3" * 64
    line = compare("tiny-onnx-int8", locked, now).line()
    assert line == ("tiny-onnx-int8: model.onnx ffffffffffffffff in the lock, 8888888888888888 now (and 1 more: manifest.json (without image ids)); "
                    "changed input: calibration calib (bbbbbbbbbbbbbbbb in the lock, 9999999999999999 now)")


@pytest.mark.parametrize(("change", "named"), [
    ({"images__onnx__lock_sha256": "7" * 64}, "image onnx requirements.lock (cccccccccccccccc in the lock, 7777777777777777 now)"),
    ({"images__onnx__recipe_sha256": "7" * 64}, "image onnx recipe (dddddddddddddddd in the lock, 7777777777777777 now)"),
    ({"code_sha256": "7" * 64}, "code (targets/, runtime/edgeship_runtime/) (eeeeeeeeeeeeeeee in the lock, 7777777777777777 now)"),
    ({"inputs__source__sha256": "7" * 64}, "source model.onnx (aaaaaaaaaaaaaaaa in the lock, 7777777777777777 now)"),
])
def test_inputs_that_changed_while_the_outputs_did_not_make_a_stale_lock(change, named):
    drift = compare("tiny-onnx-int8", lock_entry(), lock_entry(**change))
    assert not drift.clean and not drift.files
    assert drift.line() == (f"tiny-onnx-int8: every output is as locked, but an input changed: {named}; the lock is stale: "
                            "run `invoke build` and commit conversions.lock")


def test_other_bytes_from_the_same_inputs_are_called_a_toolchain_that_is_not_deterministic():
    now = lock_entry()
    now["outputs"] = {**now["outputs"], "files": {"model.onnx": "8" * 64, "ops.json": "1" * 64}}
    here = {"images": {"onnx": {"base_id": "sha256:one"}}}
    drift = compare("tiny-onnx-int8", lock_entry(), now, here, here)
    assert drift.line() == ("tiny-onnx-int8: model.onnx ffffffffffffffff in the lock, 8888888888888888 now; no input changed: "
                            "the onnx toolchain (int8) is not deterministic: the same inputs gave other bytes")
    elsewhere = compare("tiny-onnx-int8", lock_entry(), now, here, {"images": {"onnx": {"base_id": "sha256:two"}}})
    assert "this machine's base image of onnx is not the locking machine's" in elsewhere.line()
    assert Drift("x").clean


def test_the_shipped_conversions_file_covers_every_target_and_every_example(tmp_path):
    import targets
    from edgeship.examples import DEFAULT
    from tests.support import ROOT, stand_in_example_files

    project = load_project(stand_in_example_files(ROOT / "edgeship.toml", tmp_path), check_sha=False)
    entries = project.entries.values()
    assert {entry.target for entry in entries} == set(targets.TARGETS)
    assert {entry.model.key for entry in entries} <= set(DEFAULT)


def test_retrained_external_weights_change_the_lock_inputs_the_cache_key_and_the_graph_key(tmp_path):
    """An ONNX model whose weights live beside it: the model file's sha256 stays the same when the
    weights file is replaced, so the weights are hashed as an input of their own."""
    from edgeship.convert import Request
    from edgeship.convert.cache import cache_key
    from edgeship.convert.clean import clean_key
    from edgeship.convert.request import plan
    from tests.support.models import external_model

    model = external_model(tmp_path)
    request = Request(target="onnx", model=model, quant="fp32", out=tmp_path / "out")
    before = (input_records(request, tmp_path, False), cache_key(plan(request), "sha256:image"), clean_key(plan(request), "sha256:image"))
    assert before[0]["external_data"]["path"] == "ext.weights"
    weights = tmp_path / "ext.weights"
    weights.write_bytes(bytes(reversed(weights.read_bytes())))  # the same size, other values: a retrained model
    after = (input_records(request, tmp_path, False), cache_key(plan(request), "sha256:image"), clean_key(plan(request), "sha256:image"))
    assert after[0]["source"] == before[0]["source"]  # the model file itself did not change
    assert after[0]["external_data"]["sha256"] != before[0]["external_data"]["sha256"]
    assert after[1] != before[1] and after[2] != before[2]
    locked = lock_entry(inputs=before[0])
    drift = compare("ext-onnx-fp32", locked, lock_entry(inputs=after[0]))
    assert "external_data" in drift.line()
