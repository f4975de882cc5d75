"""Bad-input corpus, family `shards`: what `invoke plan`, `build --shard`, `verify --shard` and
`lock.merge` are given that cannot make one plan or one lock (a shard that is not K/N, a shard and
--entries at once, more shards than entries, a plan file of another conversions file or another
N, a broken times file, no parts, a part of another plan, N or conversions file, a part whose shard is
not K/N or that has no config, parts that do not cover the conversions file's entries, a lock that
is not a part). Each ends
in one line, exit 2, no traceback, before any container, and no lock is written."""

from __future__ import annotations

import hashlib
import json

import pytest

from edgeship.convert import shards
from edgeship.convert.lockfile import write_lock
from edgeship.convert.project import load_project
from tests.support import tiny_cnn
from tests.support.badinput import assert_one_clean_line, invoke_cli

PREFIX = "edgeship: error: "


@pytest.fixture
def project(tmp_path):
    tiny_cnn(tmp_path / "a.onnx")
    sha = hashlib.sha256((tmp_path / "a.onnx").read_bytes()).hexdigest()
    config = tmp_path / "edgeship.toml"
    config.write_text(f'[models.a]\npath = "a.onnx"\nsha256 = "{sha}"\n'
                      '[[matrix]]\nmodels = ["a"]\ntargets = ["onnx", "tflite"]\nquants = ["fp32"]\n'
                      '[[matrix]]\nmodels = ["a"]\ntargets = ["tflite"]\nquants = ["fp16"]\n')
    return config


def _plan_file(config, count: int):
    path = config.parent / f"plan-{count}.json"
    path.write_text(json.dumps(shards.make_plan(load_project(config), count, {})))
    return path


def _edited_after_plan(config):
    path = _plan_file(config, 3)
    config.write_text(config.read_text() + "# edited after the plan\n")
    return ["build", "--config", str(config), "--shard", "1/3", "--plan", str(path)]


def _parts(config, count: int, change=None) -> list[str]:
    """The parts `invoke build --shard K/count` writes (records made up), `change(index, lock)` applied."""
    project = load_project(config)
    plan = shards.make_plan(project, count, {})
    args = ["lock.merge", "--config", str(config)]
    for index in range(1, count + 1):
        part = shards.part_record(plan, index)
        path = shards.part_path(project.lock, index, count)
        shards.write_part(path, config, {name: {} for name in part["entries"]}, {}, part)
        if change:
            lock = json.loads(path.read_text())
            change(index, lock)
            path.write_text(json.dumps(lock))
        args += ["--part", str(path)]
    return args


def _parts_of_two_plans(config):
    project = load_project(config)
    paths = []
    for index, count in ((1, 2), (2, 3)):
        plan = shards.make_plan(project, count, {}, image_cost=index * 1000.0)
        part = shards.part_record(plan, index)
        path = shards.part_path(project.lock, index, count)
        shards.write_part(path, config, {name: {} for name in part["entries"]}, {}, part)
        paths.append(str(path))
    return ["lock.merge", "--config", str(config), "--part", paths[0], "--part", paths[1]]


def _edited_after_build(config):
    args = _parts(config, 2)
    config.write_text(config.read_text() + "# edited after the build\n")
    return args


def _one_entry_dropped(index: int, lock: dict) -> None:
    if index == 1:
        name = lock["part"]["entries"].pop()
        lock["entries"].pop(name)


def _an_entry_added(index: int, lock: dict) -> None:
    if index == 1:
        lock["part"]["entries"].append("z-onnx-fp32")
        lock["entries"]["z-onnx-fp32"] = {}


def _a_lock_not_a_part(config):
    path = write_lock(config.parent / "other.lock", config, {}, {})
    return ["lock.merge", "--config", str(config), "--part", str(path)]


def _verify_shard(config, shard: str):
    write_lock(config.parent / "conversions.lock", config, {}, {})
    return ["verify", "--config", str(config), "--shard", shard]


def _broken_times(config):
    (config.parent / "times.json").write_text('{"a-onnx-fp32": -1}')
    return ["plan", "--config", str(config), "--shards", "2", "--times", str(config.parent / "times.json")]


CASES = [
    ("a shard of zero", lambda c: ["build", "--config", str(c), "--shard", "0/3"], r"--shard '0/3' is not K/N with 1 <= K <= N"),
    ("a shard past N", lambda c: ["build", "--config", str(c), "--shard", "4/3"], r"--shard '4/3' is not K/N"),
    ("a shard without N", lambda c: ["build", "--config", str(c), "--shard", "2"], r"--shard '2' is not K/N"),
    ("a shard and entries", lambda c: ["build", "--config", str(c), "--shard", "1/2", "--entries", "a-onnx-fp32"],
     r"--shard and --entries both choose the entries to build; pass one of them"),
    ("more shards than entries", lambda c: ["plan", "--config", str(c), "--shards", "9"], r"--shards 9: .* has 3 entries; choose 1 to 3 shards"),
    ("a plan of another N", lambda c: ["build", "--config", str(c), "--shard", "1/2", "--plan", str(_plan_file(c, 3))],
     r"plans 3 shards, not 2; use --shard K/3 or plan again"),
    ("a plan of another conversions file", _edited_after_plan, r"was planned from another edgeship.toml"),
    ("a plan file that is not JSON", lambda c: ["build", "--config", str(c), "--shard", "1/2", "--plan", str(c)],
     r"is not a plan of `invoke plan --shards N` \(not JSON"),
    ("a broken times file", _broken_times, r"times.json is not a times file of `invoke build`"),
    ("no parts to merge", lambda c: ["lock.merge", "--config", str(c)], r"no partial locks to merge into .*conversions.lock"),
    ("parts of two plans", lambda c: _parts(c, 2, lambda i, lock: lock["part"].update(plan_sha256=str(i) * 64)),
     r"was made from another plan than"),
    ("parts of a different N", _parts_of_two_plans, r"part-2-of-3 is shard 2/3, .*part-1-of-2 is of 2 shards; build every shard"),
    ("a part claiming shard 7 of 0", lambda c: _parts(c, 1, lambda i, lock: lock["part"].update(shard=7, of=0)),
     r"part-1-of-1 claims to be shard 7 of 0, not K/N with 1 <= K <= N <= 256"),
    ("a part without config", lambda c: _parts(c, 1, lambda i, lock: lock.pop("config")),
     r"part-1-of-1 is not a partial lock of `invoke build --shard K/N` \(KeyError\)"),
    ("parts of another conversions file", _edited_after_build, r"part-1-of-2 was built from another edgeship.toml than"),
    ("parts without an entry of the conversions file", lambda c: _parts(c, 1, _one_entry_dropped),
     r"no part holds entry .* of .*edgeship.toml; plan and build the shards again"),
    ("parts with an entry the conversions file does not make", lambda c: _parts(c, 1, _an_entry_added),
     r"part-1-of-1 holds entry z-onnx-fp32, which .*edgeship.toml does not make"),
    ("a lock that is not a part", _a_lock_not_a_part, r"other.lock is not a partial lock of `invoke build --shard K/N` \(KeyError\)"),
    ("a verify shard past N", lambda c: _verify_shard(c, "3/2"), r"--shard '3/2' is not K/N"),
]
KINDS = [("shards", kind) for kind, _, _ in CASES]


@pytest.mark.parametrize(("kind", "args", "pattern"), CASES, ids=[case[0] for case in CASES])
def test_a_bad_shard_input_is_one_line(project, kind, args, pattern):
    result = invoke_cli(*args(project))
    assert_one_clean_line(result, PREFIX, pattern)
    assert not (project.parent / "conversions.lock").exists() or kind.startswith("a verify")
