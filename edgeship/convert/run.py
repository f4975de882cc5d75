"""`invoke convert`: check the inputs on the host, then run the target's conversion in its image.

The worker writes into a staging directory that is renamed into place only when the manifest
verifies; what it left there is untrusted until walked (convert/untrusted.py). The artifact
directory's name carries a key of every input, option, image and code hash, so an identical
request returns it without a container. `invoke verify` converts with `fresh=True`: the graph
clean-up and the conversion run again in new containers, and nothing is read from or written
to the caches.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from edgeship import __version__
from edgeship.convert import hits
from edgeship.convert.cache import (
    artifact_name,
    cache_key,
    cached,
    forget_failure,
    model_name,
    publish_artifact,
    remember_failure,
    remembered_failure,
)
from edgeship.convert.clean import CleanGraph, clean_graph
from edgeship.convert.container import (
    CONTAINER_UID,
    GRAPH_MOUNT,
    Toolchain,
    conversion_mounts,
    inspect_source,
    raise_for_exit,
    run_worker,
    source_of,
    write_job,
)
from edgeship.convert.request import Plan, Request, complete_plan, plan
from edgeship.convert.untrusted import CONVERSION_LIMITS, artifact_file, read_json, take_output
from edgeship.errors import EdgeshipError, ToolchainFailed
from edgeship.images.locks import ImageSpec, load_spec
from edgeship_runtime.files import sha256_file, write_new
from targets.base import TOOLCHAIN_EXIT
from targets.job import Job


def make_job(p: Plan, key: str, image_tag: str, image_id: str, lock_sha: str, graph: CleanGraph | None = None) -> Job:
    from edgeship_runtime.tasks import fallback

    return Job(
        target=p.target.name,
        source=source_of(p),
        quant=p.quant,
        options=p.options,
        inputs=p.inputs or [],
        outputs=p.outputs or [],
        state=p.state,
        calibration=p.calibration and {**p.calibration, "path": "/in/calib"},
        eval=p.evaluation and {**p.evaluation, "path": "/in/eval.npz"},
        labels=p.labels,
        preprocess=p.preprocess,
        task=p.task or {"name": fallback().name},
        graph={"path": GRAPH_MOUNT, "key": graph.key, **graph.report} if graph else None,
        image={"tag": image_tag, "id": image_id, "lock_sha256": lock_sha},
        tolerances=p.target.tolerances((p.task or {"name": fallback().name})["name"], p.quant),
        cache_key=key,
        gpus=p.request.gpus,
        edgeship_version=__version__,
        model_name=model_name(p),
    )


def convert(request: Request, client=None, rebuild_image: bool = False, fresh: bool = False, toolchain: Toolchain | None = None) -> Path:
    """Convert and return the artifact directory (an existing one when the key matches).

    fresh: convert again even when the key matches, the graph clean-up too, reading and writing
    no cache; the artifact lands in request.out as usual (a whole one of the same key already there,
    another writer's, is kept: see cache.publish_artifact).
    toolchain: what the containers run (the real worker and clean-up; a test passes a hostile one)."""
    from edgeship.images.build import build, find_image
    from edgeship.images.engine import ensure_engine

    if not (fresh or rebuild_image or toolchain) and (found := hits.hit(asdict(request))):
        return found[0]  # the very request again, all it read unchanged (convert/hits.py)
    # before the plan: the record's code and input files are never newer than its key's (a file changed
    # while the conversion ran is found changed at the end, and then no record is written)
    code = None if fresh else (hits.code_sha256(), hits.input_digests(asdict(request)))
    toolchain = toolchain or Toolchain()
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
            fresh_graph = clean_graph(client, p, Path(scratch), toolchain.clean_up)
            return _convert_planned(client, p, spec, image, image_tag, fresh_graph, fresh, toolchain.convert, code)
    graph = clean_graph(client, p, command=toolchain.clean_up) if p.source_format == "onnx" else None
    return _convert_planned(client, p, spec, image, image_tag, graph, fresh, toolchain.convert, code)


def _convert_planned(client, p: Plan, spec: ImageSpec, image, image_tag: str, graph: CleanGraph | None, fresh: bool,
                     command: tuple[str, ...], code: tuple[str, dict] | None = None) -> Path:
    request = p.request
    key = cache_key(p, image.id, graph.key if graph else None)
    out = request.out
    final = out / artifact_name(p, key)
    if not fresh and cached(final, key):
        _remember_hit(client, p, spec, graph, key, final, code)
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
        mounts = conversion_mounts(p, staging, job_file, graph.path if graph else None)
        run = run_worker(client, image_tag, mounts, log_path, gpus=request.gpus, command=command)
        # Walked before anything in it is read, owned or moved, and before the exit is judged: a
        # planted link or FIFO is refused (and not remembered as the toolchain's failure).
        take_output(staging, CONVERSION_LIMITS, "the conversion's output", spec.name)
        raise_for_exit(run, image_tag, log_path)
        artifact, sha256 = artifact_file(staging, read_json(staging, "manifest.json", "the conversion's manifest"))
        if sha256_file(artifact) != sha256:
            raise EdgeshipError(f"{artifact} does not match the sha256 in its manifest; the conversion output is corrupt, run again")
        if os.path.lexists(staging / "convert.log"):
            raise EdgeshipError(f"the toolchain wrote {staging / 'convert.log'} itself, the name of the controller's log of it; none "
                                f"of it is kept: rebuild its image (`invoke images.build --target {spec.name} --rebuild`); log: {log_path}")
        write_new(staging / "convert.log", log_path.read_bytes())  # never through a link; the log is capped in size
        # renamed whole; a runner sharing the folder that published this key first wins (cache.publish)
        if not publish_artifact(staging, final, key) and fresh:
            print(f"edgeship: {final} already holds a whole artifact of this key (another writer's, or an earlier run's); kept "
                  f"it, this fresh copy was discarded (remove the folder first to replace it)", flush=True)
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
    if not fresh:
        _remember_hit(client, p, spec, graph, key, final, code)
    return final


def _remember_hit(client, p: Plan, spec: ImageSpec, graph: CleanGraph | None, key: str, final: Path,
                  code: tuple[str, dict] | None) -> None:
    """Record what this artifact's key was made of, so the same request answers at once next time
    (convert/hits.py). A record not written only makes the next run take the full path."""
    import docker

    from edgeship.convert.clean import CLEAN_IMAGE
    from edgeship.convert.summary import summary
    from edgeship.images.build import resolve

    request = p.request
    specs = [spec] + ([load_spec(CLEAN_IMAGE)] if graph else [])
    if code is None or any(s.local_debs for s in specs) or not request.model.is_file():
        return  # a .deb the environment names, a SavedModel folder: asked in full every time
    files = [request.model, *p.external_data, *(p.calibration_files or []),
             *(path for path in (request.eval, request.labels, request.preprocess) if path is not None)]
    if request.task and os.path.isfile(request.task):
        files.append(Path(request.task))
    try:
        images = []
        for s in specs:
            tag, _, base, base_id = resolve(client, s)
            images.append({"name": s.name, "tag": tag, "id": client.images.get(tag).id, "base": base, "base_id": base_id})
        hits.remember(asdict(request), code[0], files, request.calib, images, key, final, summary(final), before=code[1])
    except (OSError, ValueError, KeyError, EdgeshipError, docker.errors.DockerException) as error:
        print(f"edgeship: note: the quick cache record of {final.name} was not written ({error}); the next run checks in full", flush=True)
