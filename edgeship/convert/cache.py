"""The conversion cache: an artifact's folder name carries a key of every input, option, image
and code hash, so an identical request returns the folder without a container."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from edgeship.convert.container import CODE_DIRS
from edgeship.convert.inputs import calibration_digest, external_sha256
from edgeship.convert.request import Plan
from edgeship.paths import REPO_ROOT
from edgeship_runtime.files import sha256_file, tree_sha256


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
    task = (p.task or p.task_request or {"name": "generic"})["name"]
    material = {
        "target": p.target.name, "quant": p.quant, "options": p.options, "input_shapes": p.input_shapes,
        "source": p.source_sha256, "format": p.source_format,
        **({"external": external_sha256(p.external_data)} if p.external_data else {}),
        "calibration": p.calibration_files and calibration_digest(p.calibration_files),
        "eval": p.request.eval and sha256_file(p.request.eval), "labels": p.labels, "image": image_id,
        "code": code_sha256(), "tolerances": p.target.tolerances(task, p.quant), "task": p.task_request,
        **({"graph": graph_key} if graph_key else {}),
        **({"gpus": True} if p.request.gpus else {}),
        **({"preprocess": p.preprocess_request} if p.preprocess_request is not None else {}),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def model_name(p: Plan) -> str:
    """What the artifact calls its model: --name, or the model file's stem (its folder's name for
    model.onnx and SavedModels). The manifest records it, so nothing parses folder names back."""
    model = p.request.model
    return p.request.name or (model.parent.name if model.stem in ("model", "saved_model") or model.name == "saved_model" else model.stem)


def artifact_name(p: Plan, key: str) -> str:
    return f"{model_name(p)}-{p.target.name}-{p.quant}-{key[:12]}"


def cached(final: Path, key: str) -> bool:
    manifest = final / "manifest.json"
    if not manifest.is_file():
        return False
    try:
        data = json.loads(manifest.read_text())
    except json.JSONDecodeError:
        return False
    artifact = final / data.get("artifact", {}).get("file", "")
    return data.get("cache_key") == key and artifact.is_file()


