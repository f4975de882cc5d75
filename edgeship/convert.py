"""`invoke convert`: check the inputs, then run the target's conversion inside its image.

The container runs as a non-root user with the network off, the inputs and edgeship's
code mounted read-only, and writes into a staging directory that is renamed into place
only when the manifest verifies. The artifact directory's name carries a key of every
input, option, image and code hash, so an identical request returns it without a container.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgeship import __version__
from edgeship.errors import EdgeshipError
from edgeship.inputs import (
    calibration_digest,
    calibration_files,
    check_calibration,
    check_eval,
    check_preprocess,
    detect_format,
    load_onnx,
    onnx_signature,
    parse_input_shapes,
    read_labels,
    read_preprocess,
    resolve_io,
    source_sha256,
)
from edgeship.lockfile import REPO_ROOT, load_spec, sha256_file

CONTAINER_UID = 10001  # the `edgeship` user of every toolchain image
# edgeship's code mounted read-only into the container: repo folder -> package name.
CODE_DIRS = {"edgeship": "edgeship", "targets": "targets", "runtime/edgeship_runtime": "edgeship_runtime"}
CONVERT_TIMEOUT_S = 3600


@dataclass
class Request:
    target: str
    model: Path
    quant: str | None = None
    calib: Path | None = None
    eval: Path | None = None
    labels: Path | None = None
    input_shapes: list[str] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)
    out: Path = Path("artifacts")
    name: str | None = None
    preprocess: Path | None = None  # JSON: how a camera frame becomes the model input (the demo reads it)
    gpus: bool = False  # also build and measure a test engine on this host's GPU (targets with a gpu_image)


def parse_options(items) -> dict[str, str]:
    options = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise EdgeshipError(f"--option {item!r} is not KEY=VALUE; write e.g. --option io_dtype=uint8")
        options[key.strip().replace("-", "_")] = value.strip()
    return options


def resolve_options(target, quant: str, given: dict[str, str]) -> dict[str, str]:
    """The target's options for this quantization, user values checked against the table."""
    resolved = {}
    for key, value in given.items():
        option = target.option(key)
        if option is None:
            known = ", ".join(o.name for o in target.options) or "none"
            raise EdgeshipError(f"target {target.name} has no option {key!r}; its options: {known}")
        if option.applies_to and quant not in option.applies_to:
            raise EdgeshipError(f"option {key}={value} only applies to --quant {'/'.join(option.applies_to)} on target {target.name}, not {quant}; drop it or change --quant")
        if option.parse is not None:
            try:
                value = option.parse(value)
            except ValueError as error:
                raise EdgeshipError(f"option {key}={value!r} for target {target.name}: {error}; {option.help}") from None
        elif value not in option.choices:
            raise EdgeshipError(f"option {key}={value!r} is not offered by target {target.name}; choose one of: {', '.join(option.choices)}")
        resolved[key] = value
    for option in target.options:
        if option.name not in resolved and (not option.applies_to or quant in option.applies_to):
            resolved[option.name] = option.default
    return resolved


def code_sha256() -> str:
    """Hash of the edgeship code mounted into the container (part of the cache key)."""
    digest = hashlib.sha256()
    for folder in sorted(CODE_DIRS):
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@dataclass
class Plan:
    """Everything a conversion needs. ONNX sources are checked completely on the host;
    other formats need their toolchain to be read, so `inputs` stays None until
    `complete_plan` has asked the image."""

    target: object
    request: Request
    quant: str
    options: dict
    source_format: str
    source_sha256: str
    input_shapes: dict
    calibration_files: list | None
    labels: list | None
    inputs: list | None = None
    outputs: list | None = None
    calibration: dict | None = None
    evaluation: dict | None = None
    preprocess_request: dict | None = None  # as the user wrote it (in the cache key)
    preprocess: dict | None = None  # completed against the input, once its shape is known


def plan(request: Request) -> Plan:
    import targets

    target = targets.get(request.target)
    quant = request.quant or target.default_quant
    if request.gpus and not target.gpu_image:
        raise EdgeshipError(f"--gpus is only used by targets that build on a GPU (jetson), not {target.name}; drop --gpus")
    if quant not in target.quantizations:
        raise EdgeshipError(f"target {target.name} does not offer --quant {quant}; choose one of: {', '.join(target.quantizations)}")
    options = resolve_options(target, quant, request.options)
    model = request.model
    fmt = detect_format(model)
    if fmt not in target.source_formats:
        raise EdgeshipError(f"target {target.name} cannot convert {fmt} models ({model}); it takes: {', '.join(target.source_formats)}")
    input_shapes = parse_input_shapes(request.input_shapes)
    if quant in target.needs_calibration and request.calib is None:
        raise EdgeshipError(f"--quant {quant} on target {target.name} needs a calibration set; pass --calib DIR with one .npy sample per file")
    if quant not in target.needs_calibration and request.calib is not None:
        raise EdgeshipError(f"--calib is only used by --quant {'/'.join(target.needs_calibration)} on target {target.name}, not {quant}; drop --calib")
    if request.eval is not None and not request.eval.is_file():
        raise EdgeshipError(f"evaluation set {request.eval} does not exist; pass --eval FILE.npz with inputs stacked on axis 0 and optional labels")
    p = Plan(target, request, quant, options, fmt, source_sha256(model), input_shapes, None,
             read_labels(request.labels) if request.labels else None)
    p.preprocess_request = read_preprocess(request.preprocess) if request.preprocess else None
    if fmt == "onnx":
        proto = load_onnx(model)
        if any(init.HasField("data_location") and init.data_location == 1 for init in proto.graph.initializer):
            raise EdgeshipError(f"{model} keeps its weights in external data files; save it as one file (onnx.save(..., save_as_external_data=False))")
        complete_plan(p, *onnx_signature(proto))
    p.calibration_files = calibration_files(request.calib) if request.calib else None
    return p


def complete_plan(p: Plan, declared_inputs: list[dict], declared_outputs: list[dict]) -> Plan:
    """Fix the input shapes and check the calibration and eval data against them."""
    p.inputs, p.outputs = resolve_io(p.request.model, declared_inputs, declared_outputs, p.input_shapes)
    p.calibration = check_calibration(p.request.calib, p.inputs) if p.request.calib else None
    p.evaluation = check_eval(p.request.eval, p.inputs) if p.request.eval else None
    if p.preprocess_request is not None:
        p.preprocess = check_preprocess(p.request.preprocess, p.preprocess_request, p.inputs)
    return p


def cache_key(p: Plan, image_id: str) -> str:
    """Key of everything that decides the artifact, computable before the image reads the model."""
    material = {
        "target": p.target.name, "quant": p.quant, "options": p.options, "input_shapes": p.input_shapes,
        "source": p.source_sha256, "format": p.source_format,
        "calibration": p.calibration_files and calibration_digest(p.calibration_files),
        "eval": p.request.eval and sha256_file(p.request.eval), "labels": p.labels, "image": image_id,
        "code": code_sha256(), "tolerances": p.target.tolerances[p.quant],
        **({"gpus": True} if p.request.gpus else {}),
        **({"preprocess": p.preprocess_request} if p.preprocess_request is not None else {}),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def artifact_name(p: Plan, key: str) -> str:
    model = p.request.model
    stem = p.request.name or (model.parent.name if model.stem in ("model", "saved_model") or model.name == "saved_model" else model.stem)
    return f"{stem}-{p.target.name}-{p.quant}-{key[:12]}"


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


def _job(p: Plan, key: str, image_tag: str, image_id: str, lock_sha: str) -> dict:
    return {
        "target": p.target.name,
        "quant": p.quant,
        "options": p.options,
        "source": {"path": "/in/model/" + p.request.model.name, "file": p.request.model.name,
                   "format": p.source_format, "sha256": p.source_sha256},
        "inputs": p.inputs,
        "outputs": p.outputs,
        "calibration": p.calibration and {**p.calibration, "path": "/in/calib"},
        "eval": p.evaluation and {**p.evaluation, "path": "/in/eval.npz"},
        "labels": p.labels,
        "preprocess": p.preprocess,
        "image": {"tag": image_tag, "id": image_id, "lock_sha256": lock_sha},
        "tolerances": p.target.tolerances[p.quant],
        "cache_key": key,
        "gpus": p.request.gpus,
        "out": "/out",
        "edgeship_version": __version__,
    }


def _bind(source: Path, target: str, read_only: bool = True):
    from docker.types import Mount

    return Mount(target=target, source=str(source.resolve()), type="bind", read_only=read_only)


def _write_job(job_dir: Path, job: dict) -> Path:
    """job.json in a folder the container's unprivileged user can read."""
    job_file = job_dir / "job.json"
    job_file.write_text(json.dumps(job, indent=2))
    os.chmod(job_dir, 0o755)
    os.chmod(job_file, 0o644)
    return job_file


def _base_mounts(p: Plan, job_file: Path) -> list:
    """The source model, the job and edgeship's code: what every worker run reads."""
    mounts = [_bind(p.request.model, "/in/model/" + p.request.model.name), _bind(job_file, "/job/job.json")]
    return mounts + [_bind(REPO_ROOT / folder, f"/opt/edgeship/src/{package}") for folder, package in CODE_DIRS.items()]


def _mounts(p: Plan, staging: Path, job_file: Path):
    mounts = _base_mounts(p, job_file) + [_bind(staging, "/out", read_only=False)]
    if p.calibration:
        mounts.append(_bind(p.request.calib, "/in/calib"))
    if p.evaluation:
        mounts.append(_bind(p.request.eval, "/in/eval.npz"))
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


def _run_container(client, image_tag: str, mounts, log_path: Path, gpus: bool = False) -> None:
    extra = {}
    if gpus:  # every GPU of the host, through the NVIDIA container toolkit (docker run --gpus all)
        from docker.types import DeviceRequest

        extra["device_requests"] = [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    try:
        container = client.containers.run(image_tag, ["python", "-m", "edgeship.worker", "/job/job.json"], detach=True,
                                          **sandbox_kwargs(mounts), **extra)
    except Exception as error:  # docker.errors.APIError: no nvidia runtime, no GPU
        if not gpus:
            raise
        raise EdgeshipError(f"--gpus: docker could not give {image_tag} a GPU ({str(error).splitlines()[0]}); install the NVIDIA "
                            "container toolkit on this host, or convert without --gpus (the board builds the engine)") from None
    error_line = ""
    try:
        with open(log_path, "wb") as log:
            for chunk in container.logs(stream=True, follow=True):
                log.write(chunk)
                for line in chunk.decode(errors="replace").splitlines():
                    if line.startswith("edgeship-worker: "):
                        print("  " + line[len("edgeship-worker: "):], flush=True)
                    elif line.startswith("edgeship-worker-error: "):
                        error_line = line[len("edgeship-worker-error: "):]
        status = container.wait(timeout=CONVERT_TIMEOUT_S)
    finally:
        container.remove(force=True)
    if status.get("StatusCode") != 0:
        raise EdgeshipError(f"conversion failed in {image_tag} (exit {status.get('StatusCode')}): {error_line or 'no error line'}; full log: {log_path}")


def inspect_source(client, image_tag: str, p: Plan) -> tuple[list[dict], list[dict]]:
    """Ask the target's image for the declared inputs/outputs of a non-ONNX source."""
    with tempfile.TemporaryDirectory(prefix="edgeship-inspect-") as job_dir:
        job_file = _write_job(Path(job_dir), {"target": p.target.name, "source": {
            "path": "/in/model/" + p.request.model.name, "format": p.source_format}})
        container = client.containers.run(image_tag, ["python", "-m", "edgeship.worker", "--inspect", "/job/job.json"],
                                          detach=True, **sandbox_kwargs(_base_mounts(p, job_file)))
        try:
            status = container.wait(timeout=600)
            output = container.logs().decode(errors="replace")
        finally:
            container.remove(force=True)
    for line in output.splitlines():
        if line.startswith("edgeship-inspect: "):
            found = json.loads(line[len("edgeship-inspect: "):])
            return found["inputs"], found["outputs"]
    error = next((line for line in output.splitlines() if line.startswith("edgeship-worker-error: ")), "")
    raise EdgeshipError(f"{p.request.model} could not be read as a {p.source_format} model by {image_tag} "
                        f"(exit {status.get('StatusCode')}: {error[len('edgeship-worker-error: '):] or 'no error line'}); check that the file is complete")


def convert(request: Request, client=None, rebuild_image: bool = False) -> Path:
    """Convert and return the artifact directory (an existing one when the key matches)."""
    p = plan(request)
    from edgeship.engine import ensure_engine
    from edgeship.images import build, find_image

    client = client or ensure_engine()
    spec = load_spec(p.target.gpu_image if request.gpus else p.target.image)
    image = find_image(client, spec)
    if image is None or rebuild_image:
        image = build(client, spec, rebuild=rebuild_image)
    image_tag = image.tags[0] if image.tags else image.id
    key = cache_key(p, image.id)
    out = request.out
    final = out / artifact_name(p, key)
    if cached(final, key):
        return final
    if p.inputs is None:
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
        job_file = _write_job(job_dir, _job(p, key, image_tag, image.id, spec.lock_sha256()))
        print(f"edgeship: converting {request.model} for {p.target.name} ({p.quant}) in {image_tag}", flush=True)
        _run_container(client, image_tag, _mounts(p, staging, job_file), log_path, gpus=request.gpus)
        if os.getuid() == 0:
            for path in [staging, *staging.rglob("*")]:
                os.chown(path, 0, 0, follow_symlinks=False)
        manifest = json.loads((staging / "manifest.json").read_text())
        artifact = staging / manifest["artifact"]["file"]
        if sha256_file(artifact) != manifest["artifact"]["sha256"]:
            raise EdgeshipError(f"{artifact} does not match the sha256 in its manifest; the conversion output is corrupt, run again")
        shutil.copy2(log_path, staging / "convert.log")
        if final.exists():
            shutil.rmtree(final)  # an incomplete directory from an older edgeship
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created_out and out.exists() and not any(out.iterdir()):
            out.rmdir()
        raise
    finally:
        if log_path.exists() and final.exists():
            shutil.rmtree(job_dir, ignore_errors=True)
    print(f"edgeship: conversion took {time.monotonic() - started:.1f} s", flush=True)
    return final


def summary(artifact_dir: Path) -> list[str]:
    """Lines `invoke convert` prints about an artifact: accuracy against fp32 and op placement."""
    manifest = json.loads((artifact_dir / "manifest.json").read_text())
    accuracy = manifest["accuracy"]
    lines = []
    if accuracy.get("measured_with"):
        lines.append(f"accuracy measured with {accuracy['measured_with']}")
    for name, figures in accuracy["outputs"].items():
        agreement = figures.get("top1_agreement")
        lines.append(f"accuracy of {name!r} vs fp32: cosine min {figures['cosine_min']:.5f}"
                     + (f", top-1 agreement {agreement:.2%}" if agreement is not None else "")
                     + f" ({'within' if figures['passed'] else 'BELOW'} tolerance)")
    labelled = accuracy.get("labelled_accuracy")
    if labelled:
        lines.append(f"labelled accuracy on {labelled['samples']} samples: fp32 {labelled['fp32']:.2%}, "
                     f"converted {labelled['converted']:.2%} ({(labelled['converted'] - labelled['fp32']) * 100:+.2f} points)")
    per_layer = accuracy.get("per_layer")
    if per_layer:
        worst = ", ".join(f"{row['layer']} ({row['op']}) {row['single_cos']:.4f}" for row in per_layer["worst_single_layers"][:3])
        first = per_layer.get("first_layer_below_tolerance")
        where = (f"the network's output first falls below cosine {per_layer['min_cosine']} at {first['layer']} ({first['op']}, "
                 f"{first['entire_cos']:.4f}); " if first else "")
        lines.append(f"per-layer analysis: {artifact_dir / per_layer['file']}: {where}worst single layers (cosine): {worst}")
    ops_path = artifact_dir / "ops.json"
    if ops_path.exists():
        ops = json.loads(ops_path.read_text())
        if "tensorrt" in ops:
            trt = ops["tensorrt"]
            lines.append(f"TensorRT {trt['tensorrt']} op check: {len(trt['ops'])} op types, "
                         + ("all supported" if trt["supported"] else f"UNSUPPORTED: {', '.join(sorted({u['op'] for u in trt['unsupported']}))}"))
        sanitize_path = artifact_dir / "sanitize.json"
        if sanitize_path.exists():
            steps = json.loads(sanitize_path.read_text())["steps"]
            lines.append("sanitized: " + " -> ".join(f"{step['step']} {step['nodes']}" for step in steps) + " nodes")
        gpu_path = artifact_dir / "gpu_engine.json"
        if gpu_path.exists():
            gpu = json.loads(gpu_path.read_text())
            lines.append(f"test engine ({gpu['engine']['precision']}, {gpu['engine']['gpu']['name']}, TensorRT {gpu['engine']['tensorrt']}): "
                         + ", ".join(f"{name} cosine min {f['cosine_min']:.5f}" for name, f in gpu["accuracy_vs_onnxruntime"].items()))
        if "cpu_layers" in ops:
            cpu = ", ".join(f"{layer['op']}" for layer in ops["cpu_layers"]) or "none"
            lines.append(f"layers: {ops['op_count']} ({ops['npu_layers']} on the NPU); on the CPU instead: {cpu}")
    return lines
