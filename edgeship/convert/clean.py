"""The one graph clean-up every ONNX-consuming target converts from (targets/graph.py), run in its
own container step in the onnx image, once per source and input shapes, and cached: onnx2tf, ONNX
Runtime's quantizer, rknn-toolkit2 and the TensorRT op check all read the very same graph."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgeship.convert.cache import publish
from edgeship.convert.container import CONTAINER_UID, Toolchain, base_mounts, bind, memory_note, sandbox_kwargs, source_of, write_job
from edgeship.convert.following import Deadline, follow
from edgeship.convert.inputs import external_sha256
from edgeship.convert.request import Plan
from edgeship.convert.untrusted import GRAPH_LIMITS, is_regular, read_json, take_output
from edgeship.errors import EdgeshipError
from edgeship.paths import REPO_ROOT, cache_root
from edgeship_runtime.files import tree_sha256

CLEAN_IMAGE = "onnx"  # onnx, onnxsim and ONNX Runtime, pinned by its lock
CLEAN_TIMEOUT_S = 1800


@dataclass(frozen=True)
class CleanGraph:
    path: Path  # model.onnx on the host
    report: dict  # {"steps": [...], "renamed": {...}}
    key: str


def clean_key(p: Plan, image_id: str) -> str:
    """Everything the cleaned graph depends on: the source, its input shapes, the image, the code."""
    code = tree_sha256(REPO_ROOT, [REPO_ROOT / "targets" / "graph.py"])
    # "external": [] for a model without external weights, as before they were hashed (its key stays)
    material = {"source": p.source_sha256, "external": external_sha256(p.external_data) or [], "shapes": p.input_shapes,
                "inputs": [[spec["name"], spec["shape"]] for spec in p.inputs or []], "image": image_id, "code": code,
                **({"input_values": p.input_values} if p.input_values else {})}  # absent when none: other keys stay
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def clean_graph(client, p: Plan, scratch: Path | None = None, command: tuple[str, ...] = Toolchain.clean_up) -> CleanGraph:
    """The cleaned graph of the plan's ONNX source (made now, or found in the cache). With
    `scratch` (`invoke verify`'s fresh conversions) it is made again there, the cache neither
    read nor written. `command` is what the container runs (a test passes a hostile one)."""
    from edgeship.images.build import build
    from edgeship.images.locks import load_spec

    image = build(client, load_spec(CLEAN_IMAGE))
    image_tag = image.tags[0] if image.tags else image.id
    key = clean_key(p, image.id)
    if scratch is not None:
        folder, job_dir = scratch / "graph", scratch / "job"
        folder.mkdir()
        job_dir.mkdir()
        _run_clean_up(client, image_tag, p, folder, job_dir, command)
    else:
        folder = cache_root() / "graphs" / key[:24]
        folder.parent.mkdir(parents=True, exist_ok=True)
        # One clean-up per graph at a time: conversions of one model run side by side (the main
        # job, two `invoke convert`s) and would stage into, and rename over, the same folder.
        # flock serializes threads and processes alike; the second finds the first's graph.
        with open(folder.parent / f"{folder.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not _complete(folder):
                # staged under a name of its own and renamed whole (cache.publish): a runner sharing
                # the cache folder where flock does not reach (a network file system) loses the race
                # cleanly and keeps the winner's graph
                staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent))
                try:
                    os.chmod(staging, 0o755)
                    with tempfile.TemporaryDirectory(prefix="edgeship-clean-") as job_dir_name:
                        _run_clean_up(client, image_tag, p, staging, Path(job_dir_name), command)
                    publish(staging, folder, _complete)
                finally:
                    shutil.rmtree(staging, ignore_errors=True)
    return CleanGraph(folder / "model.onnx", _report(folder), key)


def _complete(folder: Path) -> bool:
    # lstat: a cached graph whose files are links (planted before edgeship checked) is made again
    return is_regular(folder / "report.json") and is_regular(folder / "model.onnx")


def _report(folder: Path) -> dict:
    report = read_json(folder, "report.json", "the graph clean-up's report")
    if not (isinstance(report.get("steps"), list) and isinstance(report.get("renamed"), dict)):
        raise EdgeshipError(f"{folder / 'report.json'} has no steps and renamed names; delete {folder} and convert again")
    return report


def _run_clean_up(client, image_tag: str, p: Plan, out: Path, job_dir: Path, command: tuple[str, ...]) -> None:
    job = {"source": source_of(p).path, "input_shapes": {spec["name"]: spec["shape"] for spec in p.inputs or []}, "out": "/out",
           "input_values": p.input_values}
    job_file = write_job(job_dir, job)
    if os.getuid() == 0:
        os.chown(out, CONTAINER_UID, CONTAINER_UID)
    mounts = base_mounts(p, job_file) + [bind(out, "/out", read_only=False)]
    print(f"edgeship: cleaning the graph of {p.request.model.name} in {image_tag}", flush=True)
    container = client.containers.run(image_tag, list(command), detach=True, **sandbox_kwargs(mounts))
    run = follow(container, CLEAN_TIMEOUT_S, job_dir / "clean.log")
    # walked before anything in it is owned or read: a planted link would be chowned through, or
    # mounted into the conversion's container as the graph
    take_output(out, GRAPH_LIMITS, "the graph clean-up's output", CLEAN_IMAGE)
    if run.expired:
        raise EdgeshipError(Deadline.message(f"the graph clean-up of {p.request.model} in {image_tag}", CLEAN_TIMEOUT_S))
    if run.status.get("StatusCode") != 0:
        kept_log = shutil.copyfile(job_dir / "clean.log", out.parent / f"{out.name}.log")
        why = memory_note() if run.out_of_memory else (f"{run.error_line or 'no error line'}; the model may use an op ONNX's tools "
                                                       f"cannot fold or convert: re-export it with opset 13 or later")
        raise EdgeshipError(f"the graph clean-up of {p.request.model} failed in {image_tag} (exit {run.status.get('StatusCode')}): "
                            f"{why} (full log: {kept_log})")
    for name in ("model.onnx", "report.json"):
        if not is_regular(out / name):
            raise EdgeshipError(f"the graph clean-up of {p.request.model} in {image_tag} left no {name} in {out}; "
                                f"its image is not edgeship's: rebuild it (`invoke images.build --target {CLEAN_IMAGE} --rebuild`)")

