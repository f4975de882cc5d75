"""The sharded CI templates (.ci/templates/*-shards.yml), parsed, and the shell of their plan and
merge jobs run here against a small project: the plan job's matrix has a row per shard with what
the build jobs read (shard, index, images), and the merge job turns the parts the build jobs name
into the lock one build writes. The build jobs' conversion command needs Docker: the container
tier runs it (tests/container/convert/test_shards.py, three shards at once). `./dev` stands for
edgeship's own (which would set the machine up first): it runs invoke from this checkout."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from edgeship.convert import shards
from edgeship.convert.lockfile import write_lock
from edgeship.convert.project import load_project
from tests.support import ROOT
from tests.unit.edgeship.convert.test_shards import made, record
from tests.unit.edgeship.convert.test_shards import project as project  # the fixture

TEMPLATES = ROOT / ".ci" / "templates"


@pytest.fixture
def edgeship_dir(tmp_path):
    folder = tmp_path / "edgeship"
    folder.mkdir()
    (folder / "dev").write_text(f'#!/bin/sh\ncd "{ROOT}" && exec "{sys.executable}" -m invoke "$@"\n')
    (folder / "dev").chmod(0o755)
    return folder


def shell(script: str, cwd, env: dict) -> subprocess.CompletedProcess:
    result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=cwd, capture_output=True, text=True,
                            timeout=300, env={**os.environ, **env})
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result


def write_parts(project, plan: dict, name) -> None:
    """What each build job's `--lock-out` leaves in the workspace (the records made up)."""
    for index in range(1, plan["shards"] + 1):
        part = shards.part_record(plan, index)
        shards.write_part(project.config.parent / name(index), project.config, {n: record(n) for n in part["entries"]},
                          {n: made(n) for n in part["entries"]}, part)


def one_build_lock(project, tmp_path) -> bytes:
    return write_lock(tmp_path / "one.lock", project.config, {n: record(n) for n in project.entries},
                      {n: made(n) for n in project.entries}).read_bytes()


def test_the_github_plan_matrix_and_merge_run(project, edgeship_dir, tmp_path):
    import json

    workflow = yaml.safe_load((TEMPLATES / "github-actions-shards.yml").read_text())
    assert list(workflow["jobs"]) == ["plan", "build", "merge-and-verify"]
    root = project.config.parent
    env = {**{key: str(value) for key, value in workflow["env"].items()}, "EDGESHIP_DIR": str(edgeship_dir),
           "EDGESHIP_CACHE": str(tmp_path / "cache"), "GITHUB_WORKSPACE": str(root), "GITHUB_OUTPUT": str(tmp_path / "output")}
    (step,) = [step for step in workflow["jobs"]["plan"]["steps"] if step.get("id") == "plan"]
    shell(step["run"], root, env)
    matrix = json.loads((tmp_path / "output").read_text().removeprefix("matrix="))
    assert list(matrix) == ["include"] and len(matrix["include"]) == 3  # the matrix: only include, one row per shard
    build = workflow["jobs"]["build"]
    assert build["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    for key in ("shard", "index", "images"):  # what the build job reads from its row
        assert all(key in row for row in matrix["include"]) and f"matrix.{key}" in json.dumps(build["env"])
    (convert,) = [step for step in build["steps"] if step.get("name") == "Convert this shard and write its partial lock"]
    assert '--shard "$SHARD" --plan "$GITHUB_WORKSPACE/plan.json"' in convert["run"]
    assert '--lock-out "$GITHUB_WORKSPACE/conversions.lock.part-$SHARD_INDEX"' in convert["run"]

    plan = shards.read_plan(root / "plan.json", load_project(project.config), 3)
    write_parts(project, plan, lambda index: f"conversions.lock.part-{index}")
    # each shard's times file: its own entries measured now, others' (and one gone entry) from older runs
    previous = {name: 100.0 for name in project.entries} | {"gone-onnx-fp32": 7.0}
    (tmp_path / "cache" / "artifacts").mkdir(parents=True)
    (tmp_path / "cache" / "artifacts" / "build-times.json").write_text(json.dumps(previous))
    for index in (1, 2, 3):
        mine = {name: float(index) for name in shards.share(plan, index)}
        (root / f"build-times.part-{index}.json").write_text(json.dumps({name: 50.0 + index for name in project.entries} | mine))
    merge = workflow["jobs"]["merge-and-verify"]
    # all of the merge job's shell but the sudo that makes /var/cache/edgeship (this test's cache folder exists)
    outputs = [shell(step["run"], root, env).stdout for step in merge["steps"] if "run" in step and step["name"] != "Make the cache folder"]
    assert (root / "conversions.lock").read_bytes() == one_build_lock(project, tmp_path)
    times = shards.read_times(tmp_path / "cache" / "artifacts" / "build-times.json")
    assert times == {"gone-onnx-fp32": 7.0} | {name: float(index) for index in (1, 2, 3) for name in shards.share(plan, index)}
    # the merged times are saved for the next plan (restored by the plan job), each shard's cache restored first
    saved = [step for step in merge["steps"] if step.get("uses", "").startswith("actions/cache/save")]
    assert [step["with"]["key"] for step in saved] == ["edgeship-times-${{ github.run_id }}"]
    (restore,) = [step for step in workflow["jobs"]["plan"]["steps"] if step.get("uses", "").startswith("actions/cache/restore")]
    assert restore["with"]["restore-keys"] == "edgeship-times-" and saved[0]["with"]["path"] == restore["with"]["path"]
    (shared,) = [step for step in build["steps"] if step.get("name") == "Restore the shared cache"]
    assert shared["with"]["restore-keys"].splitlines() == ["edgeship-cache-${{ matrix.index }}-", "edgeship-cache-"]
    (upload,) = [step for step in build["steps"] if step.get("name") == "Upload the partial lock"]
    assert "build-times.part-*.json" in upload["with"]["path"]
    assert "conversions.lock: none is committed yet" in outputs[-1]  # the workspace is no repository: nothing committed


@pytest.mark.parametrize("template", ["github", "gitlab"])
def test_the_merge_job_says_whether_a_lock_is_committed_and_current(tmp_path, template):
    """`git diff --quiet` says nothing differs for a file git does not track: the lock is looked up first."""
    if template == "github":
        steps = yaml.safe_load((TEMPLATES / "github-actions-shards.yml").read_text())["jobs"]["merge-and-verify"]["steps"]
        (compare,) = [step["run"] for step in steps if step.get("name") == "Compare the merged lock with the committed one"]
    else:
        script = yaml.safe_load((TEMPLATES / "gitlab-ci-shards.yml").read_text())["edgeship-merge-and-verify"]["script"]
        (compare,) = [line for line in script if "git diff" in line]
    git = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CEILING_DIRECTORIES": str(tmp_path)}
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, timeout=30, env={**os.environ, **git})
    (tmp_path / "conversions.lock").write_text("{}\n")
    assert "committed" in shell(compare, tmp_path, git).stdout and "current" not in shell(compare, tmp_path, git).stdout
    subprocess.run(["git", "add", "conversions.lock"], cwd=tmp_path, check=True, timeout=30, env={**os.environ, **git})
    subprocess.run(["git", "commit", "-qm", "lock"], cwd=tmp_path, check=True, timeout=30, env={**os.environ, **git})
    assert "is current" in shell(compare, tmp_path, git).stdout
    (tmp_path / "conversions.lock").write_text('{"changed": 1}\n')
    assert "differs from the committed one" in shell(compare, tmp_path, git).stdout


def test_the_gitlab_plan_build_shares_and_merge_run(project, edgeship_dir, tmp_path):
    pipeline = yaml.safe_load((TEMPLATES / "gitlab-ci-shards.yml").read_text())
    root = project.config.parent
    variables = {key: str(value).replace("$CI_PROJECT_DIR", str(root)) for key, value in pipeline["variables"].items()}
    env = {**variables, "EDGESHIP_DIR": str(edgeship_dir), "CI_PROJECT_DIR": str(root)}
    assert pipeline["edgeship-build"]["parallel"] == int(variables["EDGESHIP_SHARDS"])
    shell("\n".join(pipeline["edgeship-plan"]["script"]), root, env)
    plan = shards.read_plan(root / "plan.json", load_project(project.config), 3)
    (images_line,) = [line for line in pipeline["edgeship-build"]["script"] if line.startswith("IMAGES=")]
    for index in (1, 2, 3):  # each parallel job finds its shard's images in the plan
        found = shell(images_line + '\necho "$IMAGES"', root, {**env, "CI_NODE_INDEX": str(index), "CI_NODE_TOTAL": "3"})
        assert found.stdout.strip() == plan["include"][index - 1]["images"]
    write_parts(project, plan, lambda index: f"conversions.lock.part-{index}")
    shell("\n".join(pipeline["edgeship-merge-and-verify"]["script"]), root, env)
    assert (root / "conversions.lock").read_bytes() == one_build_lock(project, tmp_path)
