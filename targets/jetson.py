"""`jetson`: NVIDIA Jetson GPUs through TensorRT; the x86 host prepares and proves the network.

A TensorRT engine belongs to one GPU and one TensorRT version, so it cannot be made on an
x86 build host for a Jetson. This target makes everything else:

- **sanitize**: the model's inputs get the static shapes of the conversion (the engine is
  built for them), constants are folded (Polygraphy, through ONNX Runtime) and the graph
  is simplified (onnx-simplifier), which removes the shape arithmetic TensorRT would
  otherwise import as layers; `sanitize.json` records each step's node count.
- **op check**: every op (in subgraphs too) is checked against TensorRT's documented
  support matrix for the TensorRT of JetPack 6 (targets/tensorrt_ops.py). An unsupported op
  stops the conversion with one line naming the op and its nodes, so it never reaches a board.
- **precision**: `fp16` (default), `int8` or `fp32` is the engine's build precision, kept
  in `tensorrt.json` with the builder workspace. For `int8` the calibration set is packaged
  as `calibration.npz`, and the board calibrates with it when it builds the engine.
- **reference**: fp32 outputs come from ONNX Runtime on the source model. The accuracy
  measured here is the sanitized ONNX on ONNX Runtime's CPU provider (what a board without
  a GPU runs as its fallback): it proves sanitizing changed nothing. TensorRT's own fp16 or
  int8 accuracy is measured where an engine exists: on the board (`edgeship-runtime check`),
  or here with `--gpus`, which builds a test engine through the board's own code
  (edgeship_runtime.trt_engine), writes the int8 calibration cache, and measures it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from targets.base import DEFAULT_TOLERANCES, Option, Target
from targets.tensorrt_ops import JETPACK, TENSORRT_VERSION

MAX_IR_VERSION = 10  # TensorRT 10.3's parser (and onnxsim's ONNX) read IR <= 10


def parse_workspace(value: str) -> str:
    try:
        mib = int(value)
    except ValueError:
        raise ValueError("not a whole number of MiB") from None
    if not 16 <= mib <= 65536:
        raise ValueError(f"{mib} MiB is outside 16..65536")
    return str(mib)


TARGET = Target(
    name="jetson",
    image="jetson",
    description=f"NVIDIA Jetson GPUs through TensorRT {TENSORRT_VERSION} (JetPack {JETPACK}); engines are built on the board",
    source_formats=("onnx",),
    quantizations=("fp16", "int8", "fp32"),
    default_quant="fp16",
    artifact_suffix=".onnx",
    runtime_backend="tensorrt",
    needs_calibration=("int8",),
    options=(
        Option("workspace", (), "1024", "TensorRT builder workspace in MiB (16..65536); Orin Nano shares 8 GB with the CPU",
               parse=parse_workspace),
    ),
    # Measured here on the sanitized fp32 ONNX, so every precision is held to fp32's tolerance.
    tolerances={quant: DEFAULT_TOLERANCES["fp32"] for quant in ("fp16", "int8", "fp32")},
    convert="targets.jetson:convert",
    op_report="targets.jetson:op_report",
    io_map="targets.onnx:io_map",
    simulate="targets.jetson:simulate",
    measured_with="the sanitized ONNX on ONNX Runtime's CPU provider (the engine's fp16/int8 accuracy is measured where it is built: "
                  "on the board, or here with --gpus)",
    gpu_image="jetson-tensorrt",
    toolchain_packages=("onnx", "onnxruntime", "onnxsim", "polygraphy", "onnx-graphsurgeon", "numpy", "protobuf", "tensorrt"),
)


class UnsupportedByTensorRT(RuntimeError):
    """The model has ops TensorRT's ONNX parser does not import."""


def sanitize(source: str, inputs: list[dict], log=print) -> tuple[object, dict]:
    """Static input shapes, folded constants, simplified graph; the report of each step."""
    import onnx
    import onnxsim
    from polygraphy.backend.onnx import fold_constants

    model = onnx.load(source)
    steps = [{"step": "source", "nodes": len(model.graph.node)}]
    shapes = {spec["name"]: spec["shape"] for spec in inputs}
    for value in model.graph.input:
        if value.name in shapes:
            dims = value.type.tensor_type.shape.dim
            for dim, size in zip(dims, shapes[value.name]):
                dim.Clear()
                dim.dim_value = int(size)
    for value in model.graph.output:  # let shape inference fill the outputs for the fixed inputs
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param"):
                dim.Clear()
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    steps.append({"step": "static shapes", "nodes": len(model.graph.node), "shapes": shapes})
    model = fold_constants(model, num_passes=None)
    model.ir_version = min(model.ir_version, MAX_IR_VERSION)
    steps.append({"step": "fold constants (Polygraphy)", "nodes": len(model.graph.node)})
    simplified, ok = onnxsim.simplify(model, overwrite_input_shapes=shapes)
    if not ok:
        raise RuntimeError("onnx-simplifier could not check the simplified model against the original")
    simplified.ir_version = min(simplified.ir_version, MAX_IR_VERSION)
    onnx.checker.check_model(simplified, full_check=True)
    steps.append({"step": "simplify (onnxsim)", "nodes": len(simplified.graph.node)})
    log("sanitized for TensorRT: " + " -> ".join(f"{s['step']} {s['nodes']} nodes" for s in steps))
    return simplified, {"steps": steps}


def convert(job: dict, calibration_set: list[dict], reference_set: list[dict], workdir: Path) -> Path:
    import onnx

    from edgeship.worker import log
    from targets.tensorrt_ops import check_model, describe_problems

    out = Path(job["out"])
    model, report = sanitize(job["source"]["path"], job["inputs"], log)
    support = check_model(model)
    if not support["supported"]:
        log("TensorRT op check: " + json.dumps(support["unsupported"]))
        raise UnsupportedByTensorRT(f"{job['source']['file']}: TensorRT {TENSORRT_VERSION} (JetPack {JETPACK}) cannot import: "
                                    f"{describe_problems(support)}; replace these ops in the model (or re-export it), "
                                    f"then convert again")
    artifact = workdir / "model.onnx"
    onnx.save(model, str(artifact))
    (out / "sanitize.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    config = {"tensorrt": TENSORRT_VERSION, "jetpack": JETPACK, "precision": job["quant"],
              "workspace_mib": int(job["options"]["workspace"]), "calibration": None}
    if job["quant"] == "int8":
        names = [spec["name"] for spec in job["inputs"]]
        np.savez(out / "calibration.npz", **{name: np.concatenate([sample[name] for sample in calibration_set]) for name in names})
        config["calibration"] = {"file": "calibration.npz", "samples": len(calibration_set), "batch": 1, "inputs": names}
        log(f"packaged {len(calibration_set)} calibration samples for the board's int8 calibrator")
    (out / "tensorrt.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return artifact


def op_report(artifact: Path) -> dict:
    import onnx

    from targets.onnx import op_report as onnx_op_report
    from targets.tensorrt_ops import check_model

    report = onnx_op_report(artifact)
    report["tensorrt"] = check_model(onnx.load(str(artifact)))
    return report


def _artifact(out: Path, artifact: Path, job: dict, io_mapping: dict, backend: str):
    from edgeship_runtime.artifact import Artifact, sha256_file

    manifest = {"artifact": {"file": artifact.name, "sha256": sha256_file(artifact)}, "runtime_backend": backend,
                "inputs": job["inputs"], "outputs": job["outputs"], "artifact_io": {"mapping": io_mapping},
                "options": {"quant": job["quant"]}, "source": {"sha256": job["source"]["sha256"]}, "target": "jetson"}
    return Artifact(out, manifest)


def simulate(out: Path, artifact: Path, job: dict, io_mapping: dict, samples: list[dict]) -> list[dict]:
    """The sanitized ONNX on ONNX Runtime's CPU provider (the board's fallback backend); with
    `--gpus`, also a TensorRT engine of it built by the board's code, measured the same way."""
    from edgeship_runtime.backends import backend_class

    from edgeship.worker import log

    with backend_class("onnxruntime")(_artifact(out, artifact, job, io_mapping, "onnxruntime"), threads=1) as backend:
        results = [backend.infer(sample) for sample in samples]
    if job.get("gpus"):
        gpu_engine(out, artifact, job, io_mapping, samples, results, log)
    return results


def gpu_engine(out: Path, artifact: Path, job: dict, io_mapping: dict, samples: list[dict], cpu_results: list[dict], log) -> None:
    """Build a test engine on this host's GPU with the board's code path, keep the int8
    calibration cache, and record the engine's accuracy against ONNX Runtime."""
    import tempfile

    from edgeship_runtime.accuracy import compare_output
    from edgeship_runtime.backends import backend_class

    target = _artifact(out, artifact, job, io_mapping, "tensorrt")
    cache = Path(tempfile.mkdtemp(prefix="engines-"))
    with backend_class("tensorrt")(target, engine_cache=str(cache)) as backend:
        record = backend.engine_record
        results = [backend.infer(sample) for sample in samples]
    calibration_cache = cache / f"{record['key']}.calibration.cache"
    if calibration_cache.is_file():
        (out / "calibration.cache").write_bytes(calibration_cache.read_bytes())
    figures = {item["name"]: compare_output([c[item["name"]] for c in cpu_results], [g[item["name"]] for g in results])
               for item in job["outputs"]}
    summary = {"engine": {k: v for k, v in record.items() if k != "path"}, "accuracy_vs_onnxruntime": figures,
               "note": "test engine built on the conversion host's GPU; the board builds its own for its GPU and TensorRT"}
    (out / "gpu_engine.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    log(f"test engine on {record['gpu']['name']} (sm {record['gpu']['compute_capability']}, TensorRT {record['tensorrt']}): "
        + ", ".join(f"{name} cosine min {f['cosine_min']:.5f}" for name, f in figures.items()))
