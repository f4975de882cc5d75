"""`invoke convert`: check the inputs on the host, then run the target's conversion in its image.

The worker writes into a staging directory that is renamed into place only when the manifest
verifies. The artifact directory's name carries a key of every input, option, image and code
hash, so an identical request returns it without a container. `invoke verify` converts with
`fresh=True`: the graph clean-up and the conversion run again in new containers, and nothing is
read from or written to the caches.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from edgeship import __version__
from edgeship.convert.cache import artifact_name, cache_key, cached, forget_failure, model_name, remember_failure, remembered_failure
from edgeship.convert.clean import CleanGraph, clean_graph
from edgeship.convert.container import CONTAINER_UID, GRAPH_MOUNT, conversion_mounts, inspect_source, run_worker, source_of, write_job
from edgeship.convert.request import Plan, Request, complete_plan, plan
from edgeship.errors import EdgeshipError, ToolchainFailed
from edgeship.images.locks import ImageSpec, load_spec
from edgeship_runtime.files import sha256_file
from targets.base import TOOLCHAIN_EXIT
from targets.job import Job


def make_job(p: Plan, key: str, image_tag: str, image_id: str, lock_sha: str, graph: CleanGraph | None = None) -> Job:
    return Job(
        target=p.target.name,
        source=source_of(p),
        quant=p.quant,
        options=p.options,
        inputs=p.inputs or [],
        outputs=p.outputs or [],
        calibration=p.calibration and {**p.calibration, "path": "/in/calib"},
        eval=p.evaluation and {**p.evaluation, "path": "/in/eval.npz"},
        labels=p.labels,
        preprocess=p.preprocess,
        task=p.task or {"name": "generic"},
        graph={"path": GRAPH_MOUNT, "key": graph.key, **graph.report} if graph else None,
        image={"tag": image_tag, "id": image_id, "lock_sha256": lock_sha},
        tolerances=p.target.tolerances((p.task or {"name": "generic"})["name"], p.quant),
        cache_key=key,
        gpus=p.request.gpus,
        edgeship_version=__version__,
        model_name=model_name(p),
    )


def _chown_tree(root: Path, uid: int) -> None:
    for path in [root, *root.rglob("*")]:
        os.chown(path, uid, uid, follow_symlinks=False)


def convert(request: Request, client=None, rebuild_image: bool = False, fresh: bool = False) -> Path:
    """Convert and return the artifact directory (an existing one when the key matches).

    fresh: convert again even when the key matches, the graph clean-up too, reading and writing
    no cache; the artifact lands in request.out as usual, replacing one of the same name."""
    from edgeship.images.build import build, find_image
    from edgeship.images.engine import ensure_engine

    p = plan(request)
    client = client or ensure_engine()
    spec = load_spec(p.target.gpu_image if request.gpus else p.target.image)
    image = find_image(client, spec)
    if image is None or rebuild_image:
        image = build(client, spec, rebuild=rebuild_image)
    image_tag = image.tags[0] if image.tags else image.id
    if fresh and p.source_format == "onnx":
        with tempfile.TemporaryDirectory(prefix="edgeship-fresh-graph-") as scratch:
            os.chmod(scratch, 0o755)  # the container's user reads the graph mounted from here
            return _convert_planned(client, p, spec, image, image_tag, clean_graph(client, p, Path(scratch)), fresh)
    graph = clean_graph(client, p) if p.source_format == "onnx" else None
    return _convert_planned(client, p, spec, image, image_tag, graph, fresh)


def _convert_planned(client, p: Plan, spec: ImageSpec, image, image_tag: str, graph: CleanGraph | None, fresh: bool) -> Path:
    request = p.request
    key = cache_key(p, image.id, graph.key if graph else None)
    out = request.out
    final = out / artifact_name(p, key)
    if not fresh and cached(final, key):
        return final
    failure = None if fresh else remembered_failure(out, final.name, key)
    if failure:
        raise EdgeshipError(f"{failure['error']} (the same request failed at {failure['failed_at']} and "
                            f"would again: every input, option, image and code hash is the same; `--fresh` tries again); "
                            f"log: {failure['log'] or 'not kept'}")
    if p.inputs is None:  # a native source: its I/O is read by the target's toolchain
        complete_plan(p, *inspect_source(client, image_tag, p))

    created_out = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{final.name}-", dir=out))
    job_dir = Path(tempfile.mkdtemp(prefix="edgeship-job-"))
    log_path = job_dir / "convert.log"
    started = time.monotonic()
    try:
        if os.getuid() == 0:
            os.chown(staging, CONTAINER_UID, CONTAINER_UID)
        job_file = write_job(job_dir, make_job(p, key, image_tag, image.id, spec.lock_sha256(), graph))
        print(f"edgeship: converting {request.model} for {p.target.name} ({p.quant}) in {image_tag}", flush=True)
        run_worker(client, image_tag, conversion_mounts(p, staging, job_file, graph.path if graph else None), log_path, gpus=request.gpus)
        if os.getuid() == 0:
            _chown_tree(staging, 0)
        manifest = json.loads((staging / "manifest.json").read_text())
        artifact = staging / manifest["artifact"]["file"]
        if sha256_file(artifact) != manifest["artifact"]["sha256"]:
            raise EdgeshipError(f"{artifact} does not match the sha256 in its manifest; the conversion output is corrupt, run again")
        shutil.copy2(log_path, staging / "convert.log")
        if final.exists():
            shutil.rmtree(final)  # an incomplete directory from an older edgeship
        os.rename(staging, final)
        forget_failure(out, final.name)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if not fresh and isinstance(error, ToolchainFailed) and error.status == TOOLCHAIN_EXIT and "MemoryError" not in error.reason:
            remember_failure(out, final.name, key, error.reason, log_path)
        if created_out and out.exists() and not any(out.iterdir()):
            out.rmdir()
        raise
    finally:
        if log_path.exists() and final.exists():
            shutil.rmtree(job_dir, ignore_errors=True)
    print(f"edgeship: conversion took {time.monotonic() - started:.1f} s", flush=True)
    return final
