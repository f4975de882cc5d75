"""The conversion cache: an artifact's folder name carries a key of every input, option, image
and code hash, so an identical request returns the folder without a container."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from edgeship.convert.container import CODE_DIRS
from edgeship.convert.hits import cached  # one check of a cached artifact, for run.py and hits.py
from edgeship.convert.inputs import calibration_digest, external_sha256
from edgeship.convert.request import Plan, artifact_folder
from edgeship.errors import EdgeshipError
from edgeship.paths import REPO_ROOT
from edgeship_runtime.files import atomic_write_text, sha256_file, tree_sha256


def code_sha256() -> str:
    """Hash of the code mounted into the container (part of the cache key): the targets and the
    board runtime they run converted models with."""
    digest = hashlib.sha256()
    for folder in sorted(CODE_DIRS):
        root = REPO_ROOT / folder
        digest.update(folder.encode() + b"\0" + tree_sha256(root, root.rglob("*.py")).encode() + b"\n")
    return digest.hexdigest()


def cache_key(p: Plan, image_id: str, graph_key: str | None = None) -> str:
    """Key of everything that decides the artifact, computable before the image reads the model."""
    from edgeship_runtime.tasks import fallback

    task = (p.task or p.task_request or {"name": fallback().name})["name"]
    material = {
        "target": p.target.name, "quant": p.quant, "options": p.options, "input_shapes": p.input_shapes,
        "source": p.source_sha256, "format": p.source_format,
        **({"external": external_sha256(p.external_data)} if p.external_data else {}),
        "calibration": p.calibration_files and calibration_digest(p.calibration_files),
        "eval": p.request.eval and sha256_file(p.request.eval), "labels": p.labels, "image": image_id,
        "code": code_sha256(), "tolerances": p.target.tolerances(task, p.quant), "task": p.task_request,
        **({"graph": graph_key} if graph_key else {}),
        **({"gpus": True} if p.request.gpus else {}),
        **({"axes": sorted(p.request.batch_axes), "state": sorted(p.request.state)} if p.request.batch_axes or p.request.state else {}),
        **({"preprocess": p.preprocess_request} if p.preprocess_request is not None else {}),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _fsync(path: str | Path, flags: int) -> None:
    fd = os.open(path, os.O_RDONLY | flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    """Every file and folder of a finished entry on disk before its name is published: after a
    crash (or on a runner whose cache is saved right after the job) the name never points at
    files the kernel had not written yet."""
    for top, _dirs, files in os.walk(folder):
        for name in files:
            _fsync(os.path.join(top, name), os.O_NOFOLLOW)
        _fsync(top, os.O_DIRECTORY)


def publish(staging: Path, final: Path, complete: Callable[[Path], bool]) -> bool:
    """Put a finished entry (a folder filled under a temporary name in final's folder) at its
    content-addressed name, safe when other processes or runners sharing the cache publish the
    same key at the same moment: rename(2) of a folder onto a non-empty one fails, so exactly one
    writer's copy lands whole and a loser discards its own. An entry already there that is
    `complete` wins; one that is not (an older edgeship's, a crash's) is renamed aside first and
    removed. True when this copy was published, False when another writer's was kept."""
    _fsync_tree(staging)
    for _ in range(8):  # each round either publishes, finds a whole entry, or moves an incomplete one aside
        try:
            os.rename(staging, final)
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        else:
            _fsync(final.parent, os.O_DIRECTORY)  # the new name itself on disk
            return True
        if complete(final):
            shutil.rmtree(staging, ignore_errors=True)
            return False
        aside = final.with_name(f".{final.name}.stale-{os.getpid()}-{time.monotonic_ns()}")
        try:
            os.rename(final, aside)
        except FileNotFoundError:  # another writer moved it aside first
            continue
        # Between the check and the move, another writer may have replaced the incomplete entry with
        # its whole one: that one is put back, never removed (a reader or its writer may use it).
        if complete(aside):
            try:
                os.rename(aside, final)
            except OSError as error:
                if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
            else:
                shutil.rmtree(staging, ignore_errors=True)
                return False
        shutil.rmtree(aside, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    raise EdgeshipError(f"{final} kept changing while this conversion published its copy (another writer replaces it over and "
                        f"over); run again, or give this job a cache folder of its own (EDGESHIP_CACHE, --out)")


def publish_artifact(staging: Path, final: Path, key: str) -> bool:
    """publish() for a conversion, fresh or not: an entry of this key already whole at `final` is
    another writer's (or an earlier run's) finished artifact of the very same inputs, and a reader
    or that writer may be using it, so it is kept and this copy discarded; only a half-written or
    foreign folder is moved aside. True when this copy was published."""
    return publish(staging, final, lambda path: cached(path, key))


def model_name(p: Plan) -> str:
    """What the artifact calls its model: --name, or the model file's stem (its folder's name for
    model.onnx and SavedModels). The manifest records it, so nothing parses folder names back."""
    model = p.request.model
    return p.request.name or (model.parent.name if model.stem in ("model", "saved_model") or model.name == "saved_model" else model.stem)


def artifact_name(p: Plan, key: str) -> str:
    """The artifact's folder name (request.check_name has made sure it follows the one name rule)."""
    return artifact_folder(model_name(p), p.target.name, p.quant, key)


# A toolchain that raised on a request (the worker's exit 3: an exception in the vendor's
# compiler, e.g. rknn-toolkit2's IndexError on YOLOv8's head) raises again on the same key: every
# input, option, image and code hash is in it. The failure is kept beside the artifacts so a run
# with nothing changed says so at once instead of spending minutes in the container again.
# Timeouts, kills and engine errors are not kept: they may not happen twice; nor is the user's
# fix (exit 2, targets.base.RequestError), which leaves nothing in the output folder.
FAILED_FOLDER = ".failed"


def remember_failure(out: Path, name: str, key: str, message: str, log: Path | None) -> None:
    folder = out / FAILED_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    kept_log = folder / f"{name}.log"
    if log is not None and log.is_file():
        shutil.copyfile(log, kept_log)
    record = {"cache_key": key, "error": message, "log": str(kept_log) if kept_log.is_file() else None,
              "failed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_write_text(folder / f"{name}.json", json.dumps(record, indent=2) + "\n")


def remembered_failure(out: Path, name: str, key: str) -> dict | None:
    """The failure kept for this artifact name, when it was for this very key."""
    try:
        record = json.loads((out / FAILED_FOLDER / f"{name}.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) and record.get("cache_key") == key else None


def forget_failure(out: Path, name: str) -> None:
    for path in (out / FAILED_FOLDER / f"{name}.json", out / FAILED_FOLDER / f"{name}.log"):
        path.unlink(missing_ok=True)
