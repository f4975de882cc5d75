"""Issue 31's acceptance on this machine: three shards of a conversions file, run at the same time
from three working copies of the project that share one cache folder (EDGESHIP_CACHE and the
artifacts root), write partial locks whose merge is byte for byte the lock one `invoke build` of
the same entries writes from a cache of its own. Kept small (three onnx entries of digits: one
cleaned graph, a few seconds of conversion each) so that it fits the container tier's budget."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from edgeship_runtime.files import sha256_file
from tests.container.convert.test_verify import cli, snapshot_env, snapshot_of
from tests.support import ROOT

SHARDS = 3


def make_project(folder, digits):
    """A user's working copy: the digits model twice (two keys: two entries' worth of names) to onnx."""
    shutil.copytree(digits, folder / "models" / "digits")
    tables = "".join(f'[models.{key}]\npath = "models/digits/model.onnx"\n'
                     f'sha256 = "{sha256_file(folder / "models" / "digits" / "model.onnx")}"\n'
                     'calibration = "models/digits/calib"\neval = "models/digits/eval.npz"\nlabels = "models/digits/labels.txt"\n\n'
                     for key in ("digits", "digits2"))
    config = folder / "edgeship.toml"
    config.write_text(tables + '[[matrix]]\nmodels = ["digits"]\ntargets = ["onnx"]\n\n'
                               '[[matrix]]\nmodels = ["digits2"]\ntargets = ["onnx"]\nquants = ["fp32"]\n')
    return config


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    return snapshot_of(tmp_path_factory.mktemp("snapshot") / "edgeship")


def test_three_shards_side_by_side_merge_into_one_builds_lock(snapshot, tmp_path):
    from edgeship.examples import build_examples

    (digits,) = build_examples(ROOT / "examples", names=("digits",))
    one = make_project(tmp_path / "one", digits)
    result = cli(snapshot, "build", "--config", str(one), env={"EDGESHIP_CACHE": str(tmp_path / "cache-one")})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]

    copies = [make_project(tmp_path / f"copy-{index}", digits) for index in range(1, SHARDS + 1)]
    plan_file = tmp_path / "plan.json"
    result = cli(snapshot, "plan", "--config", str(copies[0]), "--shards", str(SHARDS), "--out", str(plan_file))
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert [row["entries"] for row in plan["include"]] != [] and len(plan["include"]) == SHARDS
    assert sorted(row["entries"] for row in plan["include"]) == ["digits-onnx-fp32", "digits-onnx-int8", "digits2-onnx-fp32"]

    shared = {"EDGESHIP_CACHE": str(tmp_path / "shared" / "cache")}
    jobs = [subprocess.Popen([sys.executable, "-m", "invoke", "build", "--config", str(config), "--shard", f"{index}/{SHARDS}",
                              "--plan", str(plan_file), "--out", str(tmp_path / "shared" / "artifacts")],
                             cwd=snapshot, env=snapshot_env(snapshot, shared), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for index, config in enumerate(copies, start=1)]
    outputs = [job.communicate(timeout=900)[0] for job in jobs]
    assert [job.returncode for job in jobs] == [0] * SHARDS, "\n".join(output[-1500:] for output in outputs)
    parts = [config.parent / f"conversions.lock.part-{index}-of-{SHARDS}" for index, config in enumerate(copies, start=1)]
    assert all(part.is_file() for part in parts)

    result = cli(snapshot, "lock.merge", "--config", str(copies[0]), *[arg for part in parts for arg in ("--part", str(part))])
    assert result.returncode == 0, result.stderr
    merged = copies[0].parent / "conversions.lock"
    assert merged.read_bytes() == (one.parent / "conversions.lock").read_bytes()

    # the shared artifacts folder holds each entry once, whole; the times file has every shard's entries
    artifacts = sorted(path.name for path in (tmp_path / "shared" / "artifacts").iterdir() if not path.name.startswith("."))
    assert len([name for name in artifacts if name.startswith("digits")]) == 3, artifacts
    times = json.loads((tmp_path / "shared" / "artifacts" / "build-times.json").read_text())
    assert sorted(times) == ["digits-onnx-fp32", "digits-onnx-int8", "digits2-onnx-fp32"]

    # verify --shard: the third copy verifies its share of the merged lock in fresh containers
    shutil.copyfile(merged, copies[2].parent / "conversions.lock")
    result = cli(snapshot, "verify", "--config", str(copies[2]), "--shard", f"{SHARDS}/{SHARDS}", "--plan", str(plan_file),
                 env={"EDGESHIP_CACHE": str(tmp_path / "cache-verify")})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "verified 1 entries against conversions.lock" in result.stdout and "0 differences" in result.stdout
    assert (copies[2].parent / "artifacts" / "verify" / f"report.part-{SHARDS}-of-{SHARDS}.json").is_file()

    # a part from another plan is refused in one line and leaves the merged lock as it was
    other = json.loads(parts[1].read_text())
    other["part"]["plan_sha256"] = "f" * 64
    parts[1].write_text(json.dumps(other))
    result = cli(snapshot, "lock.merge", "--config", str(copies[0]), *[arg for part in parts for arg in ("--part", str(part))])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "was made from another plan" in result.stderr
    assert merged.read_bytes() == (one.parent / "conversions.lock").read_bytes()
