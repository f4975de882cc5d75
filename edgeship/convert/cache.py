"""The conversion cache: an artifact's folder name carries a key of every input, option, image
and code hash, so an identical request returns the folder without a container."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

from edgeship.convert.container import CODE_DIRS
from edgeship.convert.hits import cached  # noqa: F401  # one check of a cached artifact, for run.py and hits.py
from edgeship.convert.inputs import calibration_digest, external_sha256
from edgeship.convert.request import Plan, artifact_folder
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
