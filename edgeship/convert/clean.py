"""The one graph clean-up every ONNX-consuming target converts from (targets/graph.py), run in its
own container step in the onnx image, once per source and input shapes, and cached: onnx2tf, ONNX
Runtime's quantizer, rknn-toolkit2 and the TensorRT op check all read the very same graph."""

from __future__ import annotations

import fcntl
import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgeship.convert.container import Deadline, base_mounts, bind, follow, sandbox_kwargs, source_of, write_job
from edgeship.convert.inputs import external_sha256
from edgeship.convert.request import Plan
from edgeship.errors import EdgeshipError
from edgeship.paths import REPO_ROOT, cache_root
from edgeship_runtime.files import staged_dir, tree_sha256

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
                "inputs": [[spec["name"], spec["shape"]] for spec in p.inputs or []], "image": image_id, "code": code}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def clean_graph(client, p: Plan, scratch: Path | None = None) -> CleanGraph:
    """The cleaned graph of the plan's ONNX source (made now, or found in the cache). With
    `scratch` (`invoke verify`'s fresh conversions) it is made again there, the cache neither
    read nor written."""
    from edgeship.images.build import build
    from edgeship.images.locks import load_spec

    image = build(client, load_spec(CLEAN_IMAGE))
    image_tag = image.tags[0] if image.tags else image.id
    key = clean_key(p, image.id)
    if scratch is not None:
        folder, job_dir = scratch / "graph", scratch / "job"
        folder.mkdir()
        job_dir.mkdir()
        _run_clean_up(client, image_tag, p, folder, job_dir)
    else:
        folder = cache_root() / "graphs" / key[:24]
        folder.parent.mkdir(parents=True, exist_ok=True)
        # One clean-up per graph at a time: conversions of one model run side by side (the main
        # job, two `invoke convert`s) and would stage into, and rename over, the same folder.
        # flock serializes threads and processes alike; the second finds the first's graph.
        with open(folder.parent / f"{folder.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (folder / "report.json").is_file():
                with staged_dir(folder) as staging, tempfile.TemporaryDirectory(prefix="edgeship-clean-") as job_dir_name:
                    _run_clean_up(client, image_tag, p, staging, Path(job_dir_name))
    return CleanGraph(folder / "model.onnx", json.loads((folder / "report.json").read_text()), key)


def _run_clean_up(client, image_tag: str, p: Plan, out: Path, job_dir: Path) -> None:
    import os

    from edgeship.convert.container import CONTAINER_UID

    job = {"source": source_of(p).path, "input_shapes": {spec["name"]: spec["shape"] for spec in p.inputs or []}, "out": "/out"}
    job_file = write_job(job_dir, job)
    if os.getuid() == 0:
        os.chown(out, CONTAINER_UID, CONTAINER_UID)
    mounts = base_mounts(p, job_file) + [bind(out, "/out", read_only=False)]
    print(f"edgeship: cleaning the graph of {p.request.model.name} in {image_tag}", flush=True)
    container = client.containers.run(image_tag, ["python", "-m", "targets.graph", "/job/job.json"], detach=True, **sandbox_kwargs(mounts))
    run = follow(container, CLEAN_TIMEOUT_S)
    if run.expired:
        raise EdgeshipError(Deadline.message(f"the graph clean-up of {p.request.model} in {image_tag}", CLEAN_TIMEOUT_S))
    if os.getuid() == 0:
        for path in [out, *out.iterdir()]:
            os.chown(path, 0, 0)
    if run.status.get("StatusCode") != 0:
        (out.parent / f"{out.name}.log").write_bytes(run.log)
        raise EdgeshipError(f"the graph clean-up of {p.request.model} failed in {image_tag} (exit {run.status.get('StatusCode')}): "
                            f"{run.error_line or 'no error line'}; the model may use an op ONNX's tools cannot fold or convert: re-export it "
                            f"with opset 13 or later")

