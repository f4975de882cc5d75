"""How conversions run in a toolchain image: the worker as a non-root user, the network off,
the inputs and the in-image code mounted read-only, a read-only root file system, writing
only into the staging folder mounted at /out."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgeship.convert.request import Plan
from edgeship.errors import EdgeshipError, ToolchainFailed
from edgeship.paths import REPO_ROOT
from targets.base import REQUEST_EXIT
from targets.job import SOURCE_MOUNT, Job, Source

CONTAINER_UID = 10001  # the `edgeship` user of every toolchain image
# The in-image code, mounted read-only into the container: repo folder -> package name. The
# controller's own package is not among them, so nothing in an image can import it.
CODE_DIRS = {"targets": "targets", "runtime/edgeship_runtime": "edgeship_runtime"}
CONVERT_TIMEOUT_S = 3600
INSPECT_TIMEOUT_S = 600
WORKER = ["python", "-m", "targets.worker"]
PROGRESS, ERROR = "edgeship-worker: ", "edgeship-worker-error: "


def source_of(p: Plan) -> Source:
    return Source(path=f"{SOURCE_MOUNT}/{p.request.model.name}", file=p.request.model.name, format=p.source_format, sha256=p.source_sha256)


def bind(source: Path, target: str, read_only: bool = True):
    from docker.types import Mount

    return Mount(target=target, source=str(source.resolve()), type="bind", read_only=read_only)


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
    mounts = [bind(p.request.model, f"{SOURCE_MOUNT}/{p.request.model.name}"), bind(job_file, "/job/job.json")]
    # an ONNX model's external data files, beside it as onnx.load looks for them
    mounts += [bind(path, f"{SOURCE_MOUNT}/{path.relative_to(p.request.model.parent).as_posix()}") for path in p.external_data]
    return mounts + [bind(REPO_ROOT / folder, f"/opt/edgeship/src/{package}") for folder, package in CODE_DIRS.items()]


GRAPH_MOUNT = "/in/graph/model.onnx"  # the cleaned graph of an ONNX source


def conversion_mounts(p: Plan, staging: Path, job_file: Path, graph: Path | None = None) -> list:
    mounts = base_mounts(p, job_file) + [bind(staging, "/out", read_only=False)]
    if graph is not None:
        mounts.append(bind(graph, GRAPH_MOUNT))
    if p.calibration and p.request.calib:
        mounts.append(bind(p.request.calib, "/in/calib"))
    if p.evaluation and p.request.eval:
        mounts.append(bind(p.request.eval, "/in/eval.npz"))
    return mounts


def sandbox_kwargs(mounts) -> dict:
    """How every conversion container runs: non-root, no network, read-only except /out and /tmp."""
    uid = os.getuid()
    return {
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


class Deadline:
    """Kills a container that runs past `seconds` (the log stream it is followed by would wait for
    it forever); `expired` says whether it did."""

    def __init__(self, container, seconds: float):
        import threading

        self.expired = False
        self.timer = threading.Timer(seconds, self._kill, [container])
        self.timer.daemon = True

    def _kill(self, container) -> None:
        self.expired = True
        try:
            container.kill()
        except Exception:  # already gone
            pass

    def __enter__(self) -> Deadline:
        self.timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.timer.cancel()

    @staticmethod
    def message(what: str, seconds: float) -> str:
        limit = f"{seconds / 60:.0f}-minute" if seconds >= 120 else f"{seconds:.0f}-second"
        return (f"{what} ran past its {limit} limit and was stopped; a toolchain that hangs on a model "
                f"(or a machine too loaded to finish it) ends here, not in a CI timeout")


@dataclass
class Followed:
    """What a followed toolchain container left: its exit status, its log and its error line."""

    status: dict
    log: bytes
    error_line: str
    expired: bool


def follow(container, seconds: float) -> Followed:
    """Show the container's progress lines as they come, keep its log and its last error line,
    kill it past `seconds`; the container is removed in any case."""
    chunks, error_line = [], ""
    try:
        with Deadline(container, seconds) as deadline:
            for chunk in container.logs(stream=True, follow=True):
                chunks.append(chunk)
                for line in chunk.decode(errors="replace").splitlines():
                    if line.startswith(PROGRESS):
                        print("  " + line[len(PROGRESS):], flush=True)
                    elif line.startswith(ERROR):
                        error_line = line[len(ERROR):]
            status = container.wait()
    finally:
        container.remove(force=True)
    return Followed(status, b"".join(chunks), error_line, deadline.expired)


def run_worker(client, image_tag: str, mounts, log_path: Path, gpus: bool = False) -> None:
    """Run the conversion worker; its progress lines are shown as they come, the whole log kept."""
    extra = {}
    if gpus:  # every GPU of the host, through the NVIDIA container toolkit (docker run --gpus all)
        from docker.types import DeviceRequest

        extra["device_requests"] = [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    try:
        container = client.containers.run(image_tag, [*WORKER, "/job/job.json"], detach=True, **sandbox_kwargs(mounts), **extra)
    except Exception as error:  # docker.errors.APIError: no nvidia runtime, no GPU
        if not gpus:
            raise
        raise EdgeshipError(f"--gpus: docker could not give {image_tag} a GPU ({str(error).splitlines()[0]}); install the NVIDIA "
                            "container toolkit on this host, or convert without --gpus (the board builds the engine)") from None
    run = follow(container, CONVERT_TIMEOUT_S)
    log_path.write_bytes(run.log)
    if run.expired:
        raise EdgeshipError(Deadline.message(f"the conversion in {image_tag}", CONVERT_TIMEOUT_S) + f"; full log: {log_path}")
    if run.status.get("StatusCode") == REQUEST_EXIT and run.error_line:
        raise EdgeshipError(f"{run.error_line} (full log: {log_path})")
    if run.status.get("StatusCode") != 0:
        raise ToolchainFailed(f"conversion failed in {image_tag} (exit {run.status.get('StatusCode')}): {run.error_line or 'no error line'}",
                              run.status.get("StatusCode"), log_path)


def inspect_source(client, image_tag: str, p: Plan) -> tuple[list[dict], list[dict]]:
    """Ask the target's image for the declared inputs/outputs of a non-ONNX source."""
    with tempfile.TemporaryDirectory(prefix="edgeship-inspect-") as job_dir:
        job_file = write_job(Path(job_dir), Job(target=p.target.name, source=source_of(p)))
        container = client.containers.run(image_tag, [*WORKER, "--inspect", "/job/job.json"], detach=True,
                                          **sandbox_kwargs(base_mounts(p, job_file)))
        try:
            with Deadline(container, INSPECT_TIMEOUT_S) as deadline:
                status = container.wait()
            output = container.logs().decode(errors="replace")
        finally:
            container.remove(force=True)
    if deadline.expired:
        raise EdgeshipError(Deadline.message(f"reading {p.request.model} in {image_tag}", INSPECT_TIMEOUT_S))
    for line in output.splitlines():
        if line.startswith("edgeship-inspect: "):
            found = json.loads(line[len("edgeship-inspect: "):])
            return found["inputs"], found["outputs"]
    error = next((line for line in output.splitlines() if line.startswith(ERROR)), "")
    raise EdgeshipError(f"{p.request.model} could not be read as a {p.source_format} model by {image_tag} "
                        f"(exit {status.get('StatusCode')}: {error[len(ERROR):] or 'no error line'}); check that the file is complete")
