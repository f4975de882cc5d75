"""The matrix fanned out over CI runners, without Docker: the plan's balanced shards (by image and
measured time), a shard's partial lock and the merge, which must give the very bytes one build's
lock has, and refuses overlaps, gaps and parts of other plans in one line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from edgeship.convert import shards
from edgeship.convert.lockfile import write_lock
from edgeship.convert.project import load_project
from edgeship.errors import EdgeshipError
from tests.support import tiny_cnn


@pytest.fixture
def project(tmp_path):
    """Two models to three targets (onnx, tflite, openvino) in their float modes: 14 entries."""
    for name in ("a", "b"):
        tiny_cnn(tmp_path / f"{name}.onnx")
    tables = "".join(f'[models.{name}]\npath = "{name}.onnx"\nsha256 = "{hashlib.sha256((tmp_path / f"{name}.onnx").read_bytes()).hexdigest()}"\n'
                     for name in ("a", "b"))
    config = tmp_path / "edgeship.toml"
    config.write_text(tables + '[[matrix]]\nmodels = ["a", "b"]\ntargets = ["onnx"]\nquants = ["fp32"]\n'
                               '[[matrix]]\nmodels = ["a", "b"]\ntargets = ["tflite"]\nquants = ["fp32", "fp16", "dynamic"]\n'
                               '[[matrix]]\nmodels = ["a", "b"]\ntargets = ["openvino"]\nquants = ["fp32", "fp16"]\n')
    return load_project(config)


def record(name: str) -> dict:
    """A lock entry as entry_record shapes it (the merge only moves them)."""
    return {"model": name.split("-")[0], "target": name.split("-")[1], "outputs": {"files": {"model.bin": hashlib.sha256(name.encode()).hexdigest()}}}


def made(name: str) -> dict:
    return {"artifact": f"{name}-0123456789ab", "images": {"onnx": {"tag": "edgeship/onnx:abc", "base_id": "sha256:1"}}}


def build_parts(project, plan: dict, folder: Path) -> list[Path]:
    """What `invoke build --shard K/N` writes for each shard (the records made up)."""
    paths = []
    for index in range(1, plan["shards"] + 1):
        part = shards.part_record(plan, index)
        path = shards.part_path(folder / "conversions.lock", index, plan["shards"])
        shards.write_part(path, project.config, {n: record(n) for n in part["entries"]}, {n: made(n) for n in part["entries"]}, part)
        paths.append(path)
    return paths


def test_shard_text_is_k_of_n():
    assert shards.parse_shard("2/3") == (2, 3) and shards.parse_shard(" 1/1 ") == (1, 1)
    for bad in ("0/3", "4/3", "3", "a/b", "1/0", "-1/3", "1/3/4", "１/3", "2/1000"):
        with pytest.raises(EdgeshipError, match=r"^--shard .* is not K/N .*write e\.g\. --shard 2/3$"):
            shards.parse_shard(bad)


def test_without_shards_the_plan_is_one_matrix_row_per_entry(project):
    plan = shards.make_plan(project, None, {})
    assert [row["entry"] for row in plan["include"]] == list(project.entries)
    row = plan["include"][list(project.entries).index("a-tflite-fp16")]
    assert row == {"entry": "a-tflite-fp16", "target": "tflite", "quant": "fp16", "images": "onnx tflite"}
    assert plan["config_sha256"] == hashlib.sha256(project.config.read_bytes()).hexdigest()


def test_shards_cover_every_entry_once_and_keep_image_groups_together(project):
    plan = shards.make_plan(project, 3, {}, image_cost=60)
    names = [name for index in range(1, 4) for name in shards.share(plan, index)]
    assert sorted(names) == sorted(project.entries)
    # equal weights (60 s), targets of 2, 6 and 4 entries: two tflite entries join the onnx
    # shard, which then builds the tflite image too, and every shard takes 360 s instead of 480
    assert sorted(row["images"] for row in plan["include"]) == ["onnx openvino", "onnx tflite", "onnx tflite"]
    assert [row["estimated_s"] for row in plan["include"]] == [360.0, 360.0, 360.0]
    assert shards.make_plan(project, 3, {}, image_cost=60) == plan  # every runner computes the same plan
    # where the targets' groups take equal time, each shard builds one toolchain image only
    even = {name: {"onnx": 30.0, "tflite": 10.0, "openvino": 15.0}[entry.target] for name, entry in project.entries.items()}
    grouped = shards.make_plan(project, 3, even, image_cost=60)
    assert sorted(row["images"] for row in grouped["include"]) == ["onnx", "onnx openvino", "onnx tflite"]


def test_measured_times_move_entries_off_the_longest_shard(project):
    # the tflite entries are slow: with 2 shards they are split even though that costs an image
    times = {name: (100.0 if "-tflite-" in name else 1.0) for name in project.entries}
    plan = shards.make_plan(project, 2, times, image_cost=10)
    loads = [row["estimated_s"] for row in plan["include"]]
    assert max(loads) <= 340 and all("tflite" in row["images"] for row in plan["include"])
    assert all(item["measured"] for item in plan["entries"])
    # an entry never timed weighs as its target's timed ones do
    partial = {name: seconds for name, seconds in times.items() if name != "b-tflite-dynamic"}
    entry = next(item for item in shards.make_plan(project, 2, partial)["entries"] if item["entry"] == "b-tflite-dynamic")
    assert entry == {**entry, "seconds": 100.0, "measured": False}


def test_more_shards_than_entries_is_one_line(project):
    with pytest.raises(EdgeshipError, match=r"--shards 13: .*edgeship.toml has 12 entries; choose 1 to 12 shards$"):
        shards.make_plan(project, 13, {})


def test_the_merge_is_byte_for_byte_the_lock_of_one_build(project, tmp_path):
    plan = shards.make_plan(project, 3, {})
    merged = shards.merge_parts(project, list(reversed(build_parts(project, plan, tmp_path))), tmp_path / "merged.lock")
    one = write_lock(tmp_path / "one.lock", project.config, {n: record(n) for n in project.entries}, {n: made(n) for n in project.entries})
    assert merged.read_bytes() == one.read_bytes()
    assert "part" not in json.loads(merged.read_text())


def test_a_plan_file_is_checked_against_the_conversions_file(project, tmp_path):
    plan = shards.make_plan(project, 2, {})
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    assert shards.read_plan(path, project, 2)["plan_sha256"] == plan["plan_sha256"]
    with pytest.raises(EdgeshipError, match=r"plans 2 shards, not 3; use --shard K/2 or plan again$"):
        shards.read_plan(path, project, 3)
    project.config.write_text(project.config.read_text() + "\n# edited\n")
    with pytest.raises(EdgeshipError, match=r"was planned from another edgeship.toml .*plan again with `invoke plan --shards 2"):
        shards.read_plan(path, project, 2)
    path.write_text("{not json")
    with pytest.raises(EdgeshipError, match=r"is not a plan of `invoke plan --shards N` \(not JSON"):
        shards.read_plan(path, project, 2)


def _rewrite(path: Path, change) -> None:
    lock = json.loads(path.read_text())
    change(lock)
    path.write_text(json.dumps(lock))


MERGE_REFUSALS = [
    ("a shard missing", lambda parts: parts[:2], r"shard 3/3 is missing \(passed: .*\); pass every part of the plan$"),
    ("a part twice", lambda parts: [*parts, parts[0]], r"are both shard 1/3; pass each part once$"),
    ("no part", lambda parts: [], r"^no partial locks to merge into .*merged.lock; pass the parts"),
]


@pytest.mark.parametrize(("kind", "choose", "message"), MERGE_REFUSALS, ids=[case[0] for case in MERGE_REFUSALS])
def test_missing_or_repeated_parts_are_refused(project, tmp_path, kind, choose, message):
    parts = build_parts(project, shards.make_plan(project, 3, {}), tmp_path)
    with pytest.raises(EdgeshipError, match=message):
        shards.merge_parts(project, choose(parts), tmp_path / "merged.lock")
    assert not (tmp_path / "merged.lock").exists()


def _steal(lock: dict, name: str) -> None:
    lock["entries"][name] = record(name)


PART_EDITS = [
    ("overlap", lambda parts, names: _rewrite(parts[1], lambda lock: (_steal(lock, names[0][0]), lock["part"]["entries"].append(names[0][0]))),
     r"entry .* is in .*part-1-of-3 and in .*part-2-of-3; each entry belongs to one shard: plan again$"),
    ("disagreement", lambda parts, names: _rewrite(parts[1], lambda lock: (lock["entries"].update({names[0][0]: {"other": 1}}),
                                                                           lock["part"]["entries"].append(names[0][0]))),
     r"entry .* is in .*part-1-of-3 and in .*part-2-of-3, and they disagree; build it in one shard only$"),
    ("another plan", lambda parts, names: _rewrite(parts[2], lambda lock: lock["part"].update(plan_sha256="0" * 64)),
     r"part-3-of-3 was made from another plan than .*part-1-of-3 \(0000000000000000 against .*\); build every shard from one `invoke plan`$"),
    ("a failed entry", lambda parts, names: _rewrite(parts[0], lambda lock: lock["entries"].pop(names[0][0])),
     r"part-1-of-3: entry .* of shard 1/3 is not in it \(it did not convert\); build that shard again$"),
    ("an unplanned entry", lambda parts, names: _rewrite(parts[0], lambda lock: _steal(lock, names[1][0])),
     r"part-1-of-3 holds entry .*, which its plan gives another shard; build every shard from one plan$"),
    ("not a part", lambda parts, names: _rewrite(parts[0], lambda lock: lock.pop("part")),
     r"part-1-of-3 is not a partial lock of `invoke build --shard K/N` \(KeyError\); build that shard again$"),
    ("no config", lambda parts, names: _rewrite(parts[1], lambda lock: lock.pop("config")),
     r"part-2-of-3 is not a partial lock of `invoke build --shard K/N` \(KeyError\); build that shard again$"),
    ("a shard past N", lambda parts, names: _rewrite(parts[0], lambda lock: lock["part"].update(shard=7, of=0)),
     r"part-1-of-3 claims to be shard 7 of 0, not K/N with 1 <= K <= N <= 256; build that shard again"),
    ("a shard of zero", lambda parts, names: _rewrite(parts[0], lambda lock: lock["part"].update(shard=0)),
     r"part-1-of-3 claims to be shard 0 of 3, not K/N"),
    ("another N", lambda parts, names: _rewrite(parts[1], lambda lock: lock["part"].update(of=4)),
     r"part-2-of-3 is shard 2/4, .*part-1-of-3 is of 3 shards; build every shard from one `invoke plan`$"),
    ("another conversions file", lambda parts, names: _rewrite(parts[2], lambda lock: lock["part"].update(config_sha256="0" * 64)),
     r"part-3-of-3 was built from another edgeship.toml than .*edgeship.toml \(sha256 0000000000000000, now .*\); plan and build"),
    ("an entry no part holds", lambda parts, names: _rewrite(parts[0], lambda lock: (lock["entries"].pop(names[0][0]),
                                                                                      lock["part"]["entries"].remove(names[0][0]))),
     r"^no part holds entry .* of .*edgeship.toml; plan and build the shards again from this edgeship.toml$"),
    ("an entry the project does not make", lambda parts, names: _rewrite(parts[0], lambda lock: (_steal(lock, "c-onnx-fp32"),
                                                                                                  lock["part"]["entries"].append("c-onnx-fp32"))),
     r"part-1-of-3 holds entry c-onnx-fp32, which .*edgeship.toml does not make; plan and build the shards again"),
]


@pytest.mark.parametrize(("kind", "edit", "message"), PART_EDITS, ids=[case[0] for case in PART_EDITS])
def test_overlaps_and_disagreements_are_one_line(project, tmp_path, kind, edit, message):
    plan = shards.make_plan(project, 3, {})
    parts = build_parts(project, plan, tmp_path)
    edit(parts, [shards.share(plan, index) for index in range(1, 4)])
    with pytest.raises(EdgeshipError, match=message):
        shards.merge_parts(project, parts, tmp_path / "merged.lock")
    assert not (tmp_path / "merged.lock").exists()


def test_parts_of_another_conversions_file_are_refused_together(project, tmp_path):
    """Every part agrees with the others, but the conversions file changed since they were built."""
    parts = build_parts(project, shards.make_plan(project, 3, {}), tmp_path)
    project.config.write_text(project.config.read_text() + "# edited after the build\n")
    with pytest.raises(EdgeshipError, match=r"part-1-of-3 was built from another edgeship.toml than .*; plan and build the shards again"):
        shards.merge_parts(load_project(project.config), parts, tmp_path / "merged.lock")
    assert not (tmp_path / "merged.lock").exists()


def test_parts_and_plans_are_read_bounded_and_never_through_a_link(project, tmp_path):
    plan = shards.make_plan(project, 3, {})
    parts = build_parts(project, plan, tmp_path)
    real = parts[0].with_name("real")
    parts[0].rename(real)
    parts[0].symlink_to(real)
    with pytest.raises(EdgeshipError, match=r"part-1-of-3 is not a partial lock of `invoke build --shard K/N` \(unsafe\)"):
        shards.merge_parts(project, parts, tmp_path / "merged.lock")
    path = tmp_path / "plan.json"
    path.write_text(" " * (shards.PLAN_BYTES + 1))
    with pytest.raises(EdgeshipError, match=r"plan.json is not a plan of `invoke plan --shards N` \(too big"):
        shards.read_plan(path, project, 3)
    times = tmp_path / "times.json"
    times.symlink_to(path)
    with pytest.raises(EdgeshipError, match=r"times.json is not a times file of `invoke build` \(unsafe\)"):
        shards.read_times(times)


def test_build_times_are_kept_per_entry(tmp_path):
    path = tmp_path / "artifacts" / shards.TIMES_NAME
    shards.record_times(path, {"b": 2.04, "a": 1.0})
    shards.record_times(path, {"b": 3.0})
    assert shards.read_times(path) == {"a": 1.0, "b": 3.0}
    path.write_text('{"a": "slow"}')
    with pytest.raises(EdgeshipError, match=r"build-times.json is not a times file of `invoke build` \(entry names to seconds\); delete it"):
        shards.read_times(path)
    shards.record_times(path, {"c": 1.0})  # a broken file is replaced by what was measured
    assert shards.read_times(path) == {"c": 1.0}
