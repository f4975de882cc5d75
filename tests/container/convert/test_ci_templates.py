"""The CI templates in .ci/templates/, parsed, and their commands run in order on this machine
against a small project (the digits model to the onnx target, locked first): every shell step
must pass and leave behind what the upload step takes.

What only the CI service does is not run, and each such step is named with the reason: the
checkout (the workspace is made here), the cache restore and save (the cache folder starts
empty, as on a runner's first job), the upload (its paths are checked instead). edgeship runs
from a snapshot of this checkout, as a repository's submodule would hold it (EDGESHIP_DIR).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.container.convert.test_verify import cli, digits_project, snapshot_env, snapshot_of
from tests.support import ROOT

TEMPLATES = ROOT / ".ci" / "templates"
# GitHub actions that are the CI service itself, and why they are not run here.
SERVICE_ACTIONS = {
    "actions/checkout": "checks the repository out: the workspace is made here",
    "actions/cache": "restores and saves EDGESHIP_CACHE's wheelhouses in GitHub's cache: here the folder starts empty",
    "actions/upload-artifact": "uploads to GitHub's artifact store: here its paths are checked to exist",
}
# A runner runs as a user with passwordless sudo; this machine runs as root without sudo, where
# sudo would run the command as it is: so does this stand-in (sudo's own options dropped).
SUDO_AS_ROOT = '#!/bin/sh\nwhile [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do shift; done\nexec "$@"\n'


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A repository as CI checks it out: edgeship.toml, the models, conversions.lock, and
    edgeship itself at edgeship/ (a snapshot of this checkout)."""
    from edgeship.examples import build_examples

    # a folder others may enter (pytest's own is root's alone): the verify step also runs as an
    # unprivileged runner user below
    root = Path(tempfile.mkdtemp(prefix="edgeship-ci-workspace-"))
    os.chmod(root, 0o755)
    snapshot = snapshot_of(root / "edgeship")
    # ./dev reinstalls the environment when its stamp (a hash of the pyproject files) is not in
    # .venv. The snapshot shares this checkout's environment, which this test must not reinstall
    # for everyone: its .venv is links to the shared one's files plus the snapshot's own stamp (a
    # dependency the shared environment lacks would show as an import error, not be installed).
    (snapshot / ".venv").unlink()
    (snapshot / ".venv").mkdir()
    for item in (ROOT / ".venv").iterdir():
        if not item.name.startswith(".edgeship-"):
            (snapshot / ".venv" / item.name).symlink_to(item)
    stamp = hashlib.sha256((snapshot / "pyproject.toml").read_bytes() + (snapshot / "runtime" / "pyproject.toml").read_bytes()).hexdigest()
    (snapshot / ".venv" / f".edgeship-{stamp[:16]}").touch()
    (digits,) = build_examples(ROOT / "examples", names=("digits",))
    config = digits_project(root, digits, targets=("onnx",))
    result = cli(snapshot, "build", "--config", str(config))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    bin_dir = tmp_path_factory.mktemp("bin")
    if shutil.which("sudo") is None and os.geteuid() == 0:
        (bin_dir / "sudo").write_text(SUDO_AS_ROOT)
        (bin_dir / "sudo").chmod(stat.S_IRWXU)
    yield root, snapshot, bin_dir
    shutil.rmtree(root, ignore_errors=True)


def run_shell(script: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    """A step's commands as the runners run them: bash, exit on the first failing command."""
    print(f"\n$ {script.strip()}", flush=True)
    result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=7200)
    print("\n".join(result.stdout.splitlines()[-5:]), flush=True)
    return result


def overrides(snapshot: Path, cache: Path) -> dict:
    """The template's variables a project sets for itself: edgeship at its submodule path, only
    the image its matrix uses, a cache folder of this test's own."""
    return {"EDGESHIP_DIR": str(snapshot), "EDGESHIP_IMAGES": "onnx", "EDGESHIP_CACHE": str(cache)}


def test_the_github_actions_workflow_runs_in_order(workspace, tmp_path):
    root, snapshot, bin_dir = workspace
    workflow = yaml.safe_load((TEMPLATES / "github-actions.yml").read_text())
    job = workflow["jobs"]["verify"]
    assert job["env"]["EDGESHIP_CONFIG"] == "edgeship.toml" and all("${{" not in str(value) for value in job["env"].values())
    env = snapshot_env(snapshot, {**{key: str(value) for key, value in job["env"].items()}, **overrides(snapshot, tmp_path / "cache"),
                                  "GITHUB_WORKSPACE": str(root), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    ran, skipped, uploads = [], [], []
    order = [step.get("uses", "").split("@")[0] or step["name"] for step in job["steps"]]
    # actions/cache restores as the runner's user: the folder it restores into must exist and be theirs by then
    assert order.index("Make the cache folder") < order.index("actions/cache")
    for step in job["steps"]:
        if "uses" in step:
            action = step["uses"].split("@")[0]
            assert action in SERVICE_ACTIONS, f"{action}: a step this test does not know how to stand in for"
            skipped.append(f"{action}: {SERVICE_ACTIONS[action]}")
            if action == "actions/upload-artifact":
                uploads += [line.strip() for line in step["with"]["path"].splitlines() if line.strip()]
            continue
        assert step.get("if") in (None, "always()"), f"{step['name']}: condition {step['if']!r} is not evaluated here"
        assert "${{" not in step["run"], f"{step['name']}: a GitHub expression in a shell step cannot run outside GitHub"
        result = run_shell(step["run"], root, env)
        assert result.returncode == 0, f"{step['name']}: exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        ran.append((step["name"], result.stdout))
    print("\nnot run (the CI service):\n  " + "\n  ".join(skipped))
    names = [name for name, _ in ran]
    assert names.index("Build the toolchain images (wheelhouses from the cache)") < names.index("Verify every locked conversion in fresh containers")
    verify_output = dict(ran)["Verify every locked conversion in fresh containers"]
    assert "verified 2 entries against conversions.lock" in verify_output and "0 differences" in verify_output
    assert uploads == ["artifacts/verify/", "conversions.lock"]
    for path in uploads:
        assert (root / path).exists(), f"the upload step's {path} is missing"
    assert sorted(p.name for p in (root / "artifacts" / "verify").iterdir()) == ["digits-onnx-fp32", "digits-onnx-int8", "report.json"]


def test_the_gitlab_job_runs_in_order(workspace, tmp_path):
    root, snapshot, bin_dir = workspace
    pipeline = yaml.safe_load((TEMPLATES / "gitlab-ci.yml").read_text())
    job = pipeline["edgeship-verify"]
    base = {"CI_PROJECT_DIR": str(root), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    # the runner expands variables in variable values (EDGESHIP_CACHE names $CI_PROJECT_DIR)
    variables = {key: os.path.expandvars(str(value).replace("$CI_PROJECT_DIR", str(root))) for key, value in pipeline["variables"].items()}
    assert variables["EDGESHIP_CACHE"] == f"{root}/.edgeship-cache"
    env = snapshot_env(snapshot, {**variables, **overrides(snapshot, tmp_path / "cache"), **base})
    # the cache: GitLab hashes cache:key:files, which must exist; restoring and saving is the service's
    assert all((root / name).is_file() for name in job["cache"]["key"]["files"])
    # a shell executor runs the script lines in one shell, then after_script in another
    result = run_shell("\n".join(job["script"]), root, env)
    assert result.returncode == 0, f"script: exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "verified 2 entries against conversions.lock" in result.stdout and "0 differences" in result.stdout
    after = run_shell("\n".join(job["after_script"]), root, env)
    assert after.returncode == 0, after.stderr
    assert job["artifacts"]["when"] == "always"
    for path in job["artifacts"]["paths"]:  # uploading them is the service's; they must be there
        assert (root / path).exists(), f"the artifacts' {path} is missing"


RUNNER = "edgeship-runner"
VERIFY_STEP = "Verify every locked conversion in fresh containers"


@pytest.fixture(scope="module")
def runner_user():
    """An unprivileged user in the docker group, as a CI runner's user is (made once on this machine)."""
    import grp
    import pwd

    if os.geteuid() != 0:
        pytest.skip("making a runner user needs root")
    docker_gid = grp.getgrnam("docker").gr_gid  # the docker.io package makes the group; the engine's socket is its
    try:
        user = pwd.getpwnam(RUNNER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--groups", "docker", RUNNER],
                       check=True, timeout=60)
        user = pwd.getpwnam(RUNNER)
    return user.pw_uid, user.pw_gid, docker_gid


def test_verify_needs_no_root_where_the_docker_group_serves(workspace, runner_user, tmp_path):
    """The GitHub workflow's verify step, run as the runner's unprivileged user (in the docker
    group, no sudo on its PATH): it verifies the lock, and what it writes is that user's."""
    root, snapshot, _ = workspace
    uid, gid, docker_gid = runner_user
    workflow = yaml.safe_load((TEMPLATES / "github-actions.yml").read_text())
    (step,) = [step for step in workflow["jobs"]["verify"]["steps"] if step.get("name") == VERIFY_STEP]
    home = Path(tempfile.mkdtemp(prefix="edgeship-runner-home-"))
    # the checkout is the runner's, as actions/checkout leaves it (links are changed, not followed)
    for folder, dirs, files in os.walk(root):
        for name in [folder, *(os.path.join(folder, entry) for entry in dirs + files)]:
            os.chown(name, uid, gid, follow_symlinks=False)
    os.chown(home, uid, gid)
    env = snapshot_env(snapshot, {**{key: str(value) for key, value in workflow["jobs"]["verify"]["env"].items()},
                                  **overrides(snapshot, tmp_path / "cache"), "GITHUB_WORKSPACE": str(root), "HOME": str(home),
                                  "USER": RUNNER, "PATH": os.environ["PATH"]})
    try:
        # This machine's Python lives under /root (mode 0700), where a runner's would be its own: the
        # user gets CAP_DAC_READ_SEARCH to read it, and nothing else (no write, no chown, no setuid).
        result = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", f"--groups={docker_gid}",
                                 "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", "--",
                                 "bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                                cwd=root, env=env, capture_output=True, text=True, timeout=3600)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "verified 2 entries against conversions.lock" in result.stdout and "0 differences" in result.stdout
    verified = root / "artifacts" / "verify"
    owners = {path.stat().st_uid for path in verified.rglob("*") if path.is_file()}
    assert owners == {uid}, f"files under {verified} belong to {owners}, not the runner's uid {uid}"
