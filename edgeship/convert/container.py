"""How conversions run in a toolchain image: the worker as a non-root user, the network off,
the inputs and the in-image code mounted read-only, a read-only root file system, writing
only into the staging folder mounted at /out, with a memory and a process limit (how a
running container is watched is in following.py)."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgeship.convert.following import ERROR, Deadline, Followed, follow, shown
from edgeship.convert.limits import DEFAULT_MEMORY, DEFAULT_PIDS, MEMORY_SETTING, PIDS_SETTING, limits  # noqa: F401 (re-exported)
from edgeship.convert.request import Plan
from edgeship.errors import EdgeshipError, ToolchainFailed
from edgeship.paths import REPO_ROOT
from edgeship_runtime.files import UnsafePath, confined
from targets.base import REQUEST_EXIT
from targets.job import SOURCE_MOUNT, Job, Source

CONTAINER_UID = 10001  # the `edgeship` user of every toolchain image
# The in-image code, mounted read-only into the container: repo folder -> package name. The
# controller's own package is not among them, so nothing in an image can import it.
CODE_DIRS = {"targets": "targets", "runtime/edgeship_runtime": "edgeship_runtime"}
CONVERT_TIMEOUT_S = 3600
INSPECT_TIMEOUT_S = 600
WORKER = ["python", "-m", "targets.worker"]
JOB_MOUNT = "/job/job.json"
# What a container may take of the machine: limits.py reads the settings. The memory covers the
# /tmp tmpfs too (its pages count against the container); the rk3588 toolkit imports torch and
# TensorFlow, and its builds of PP-OCR and YOLOv8 run in a few GB. Threads count as processes:
# TensorFlow and ONNX Runtime start one pool per core.


@dataclass(frozen=True)
class Toolchain:
    """The commands the containers run: the real conversion worker and graph clean-up. Only a test
    passes others (a hostile toolchain's, to check the controller against what it leaves); they
    are in no cache key, so such a test keeps a cache and an output folder of its own."""

    convert: tuple[str, ...] = (*WORKER, JOB_MOUNT)
    clean_up: tuple[str, ...] = ("python", "-m", "targets.graph", JOB_MOUNT)


def source_of(p: Plan) -> Source:
    return Source(path=f"{SOURCE_MOUNT}/{p.request.model.name}", file=p.request.model.name, format=p.source_format, sha256=p.source_sha256)


def bind(source: Path, target: str, read_only: bool = True):
    """A bind mount of the user's or edgeship's own path (resolved: a model in a linked folder is fine).
    Never for a path a container made: see bind_made."""
    from docker.types import Mount

    return Mount(target=target, source=str(source.resolve()), type="bind", read_only=read_only)


def bind_made(path: Path, target: str, what: str):
    """A read-only bind mount of a file a container made (the cleaned graph): its folder is
    edgeship's own and resolved, the file itself is never resolved or followed; it must be a
    regular file (lstat), or a planted link would mount a host file into the next container."""
    from docker.types import Mount

    try:
        source = confined(path.parent.resolve(), path.name, what)
    except UnsafePath as error:
        raise EdgeshipError(f"{error}; it is not mounted (delete {path.parent} and convert again)") from None
    return Mount(target=target, source=str(source), type="bind", read_only=True)


def write_job(job_dir: Path, job: Job | dict) -> Path:
    """job.json in a folder the container's unprivileged user can read."""
    job_file = job.write(job_dir / "job.json") if isinstance(job, Job) else job_dir / "job.json"
    if isinstance(job, dict):
        job_file.write_text(json.dumps(job, indent=2, sort_keys=True) + "\n")
    os.chmod(job_dir, 0o755)
    os.chmod(job_file, 0o644)
    return job_file


def base_mounts(p: Plan, job_file: Path) -> list:
    """The source model, the job and the in-image code: what every worker run reads."""
    mounts = [bind(p.request.model, f"{SOURCE_MOUNT}/{p.request.model.name}"), bind(job_file, JOB_MOUNT)]
    # an ONNX model's external data files, beside it as onnx.load looks for them
    mounts += [bind(path, f"{SOURCE_MOUNT}/{path.relative_to(p.request.model.parent).as_posix()}") for path in p.external_data]
    return mounts + [bind(REPO_ROOT / folder, f"/opt/edgeship/src/{package}") for folder, package in CODE_DIRS.items()]


GRAPH_MOUNT = "/in/graph/model.onnx"  # the cleaned graph of an ONNX source


def conversion_mounts(p: Plan, staging: Path, job_file: Path, graph: Path | None = None) -> list:
    mounts = base_mounts(p, job_file) + [bind(staging, "/out", read_only=False)]
    if graph is not None:
        mounts.append(bind_made(graph, GRAPH_MOUNT, "the cleaned graph"))
    if p.calibration and p.request.calib:
        mounts.append(bind(p.request.calib, "/in/calib"))
    if p.evaluation and p.request.eval:
        mounts.append(bind(p.request.eval, "/in/eval.npz"))
    return mounts


def sandbox_kwargs(mounts) -> dict:
    """How every conversion container runs: non-root, no network, read-only except /out and /tmp,
    within the memory and process limits."""
    uid = os.getuid()
    return {
        **limits(),
        "user": f"{CONTAINER_UID}:{CONTAINER_UID}" if uid == 0 else f"{uid}:{os.getgid()}",
        "network_mode": "none",
        "read_only": True,
        "mounts": mounts,
        "tmpfs": {"/tmp": "rw,exec,size=8g"},
        "working_dir": "/tmp",
        "environment": {"PYTHONPATH": "/opt/edgeship/src", "HOME": "/tmp", "MPLCONFIGDIR": "/tmp"},
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
    }


SIGKILL_EXIT = 128 + 9  # a process killed by SIGKILL, as the engine reports its exit


def memory_note() -> str:
    return (f"it ran out of its memory limit ({MEMORY_SETTING}={limits()['mem_limit']}); give it more, "
            f"e.g. {MEMORY_SETTING}=32g, or convert on a machine with more memory")


def run_worker(client, image_tag: str, mounts, log_path: Path, gpus: bool = False, command: tuple[str, ...] = Toolchain.convert) -> Followed:
    """Run the conversion worker (or `command`); its progress lines are shown as they come, its
    log kept in log_path. The caller checks what it left (untrusted.take_output), then its exit
    (raise_for_exit)."""
    extra = {}
    if gpus:  # every GPU of the host, through the NVIDIA container toolkit (docker run --gpus all)
        from docker.types import DeviceRequest

        extra["device_requests"] = [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    try:
        container = client.containers.run(image_tag, list(command), detach=True, **sandbox_kwargs(mounts), **extra)
    except Exception as error:  # docker.errors.APIError: no nvidia runtime, no GPU
        if not gpus:
            raise
        raise EdgeshipError(f"--gpus: docker could not give {image_tag} a GPU ({str(error).splitlines()[0]}); install the NVIDIA "
                            "container toolkit on this host, or convert without --gpus (the board builds the engine)") from None
    return follow(container, CONVERT_TIMEOUT_S, log_path)


def raise_for_exit(run: Followed, image_tag: str, log_path: Path) -> None:
    """The worker's exit as the controller reports it: a deadline, the user's fix (exit 2), or the
    toolchain's failure (ToolchainFailed, remembered by the caller when it may repeat)."""
    if run.expired:
        raise EdgeshipError(Deadline.message(f"the conversion in {image_tag}", CONVERT_TIMEOUT_S) + f"; full log: {log_path}")
    if run.out_of_memory:
        raise ToolchainFailed(f"the conversion in {image_tag} was stopped: {memory_note()}", run.status.get("StatusCode"), log_path)
    if run.status.get("StatusCode") == SIGKILL_EXIT:
        # Killed, and not by us (no deadline passed). Some engines never set State.OOMKilled (Docker
        # 20.10 on this cgroup-v1 VM reports false for a plain `docker run --memory` hog), so name the
        # likeliest cause, the memory limit, and say the engine did not confirm it.
        raise ToolchainFailed(f"the conversion in {image_tag} was killed (exit 137, SIGKILL; the engine did not say why): "
                              f"most likely {memory_note()}; full log: {log_path}", SIGKILL_EXIT, log_path)
    if run.status.get("StatusCode") == REQUEST_EXIT and run.error_line:
        raise EdgeshipError(f"{run.error_line} (full log: {log_path})")
    if run.status.get("StatusCode") != 0:
        raise ToolchainFailed(f"conversion failed in {image_tag} (exit {run.status.get('StatusCode')}): {run.error_line or 'no error line'}",
                              run.status.get("StatusCode"), log_path)


def inspect_source(client, image_tag: str, p: Plan) -> tuple[list[dict], list[dict]]:
    """Ask the target's image for the declared inputs/outputs of a non-ONNX source."""
    with tempfile.TemporaryDirectory(prefix="edgeship-inspect-") as job_dir:
        job_file = write_job(Path(job_dir), Job(target=p.target.name, source=source_of(p)))
        container = client.containers.run(image_tag, [*WORKER, "--inspect", JOB_MOUNT], detach=True,
                                          **sandbox_kwargs(base_mounts(p, job_file)))
        run = follow(container, INSPECT_TIMEOUT_S, show=False)
        status, output = run.status, run.log.decode(errors="replace")
    if run.expired:
        raise EdgeshipError(Deadline.message(f"reading {p.request.model} in {image_tag}", INSPECT_TIMEOUT_S))
    for line in output.splitlines():
        if line.startswith("edgeship-inspect: "):
            return _declared_io(line[len("edgeship-inspect: "):], p, image_tag)
    error = next((line for line in output.splitlines() if line.startswith(ERROR)), "")
    raise EdgeshipError(f"{p.request.model} could not be read as a {p.source_format} model by {image_tag} "
                        f"(exit {status.get('StatusCode')}: {shown(error[len(ERROR):]) or 'no error line'}); check that the file is complete")


def _declared_io(text: str, p: Plan, image_tag: str) -> tuple[list[dict], list[dict]]:
    """The inspect line's inputs and outputs, shape-checked: the container's word is input."""
    try:
        found = json.loads(text)
        inputs, outputs = found["inputs"], found["outputs"]
    except (ValueError, RecursionError, TypeError, KeyError):
        found = inputs = outputs = None
    if not (isinstance(inputs, list) and isinstance(outputs, list) and all(isinstance(spec, dict) for spec in inputs + outputs)):
        raise EdgeshipError(f"{image_tag} answered the inspection of {p.request.model} with no list of inputs and outputs; "
                            f"the image's worker is not edgeship's: rebuild it (`invoke convert --rebuild-image`)")
    return inputs, outputs
