"""The conversion worker: `python -m edgeship.worker /job/job.json`, run INSIDE a toolchain image.

It reads the job the controller wrote, computes fp32 reference outputs of the source model,
calls the target's converter, runs the converted model on the same inputs, and writes the
artifact directory (artifact, reference data, accuracy and op reports, manifest.json).
It imports only numpy, onnx/onnxruntime and the target's own toolchain.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
from edgeship_runtime.accuracy import compare_output, labelled_accuracy, within_tolerance
from edgeship_runtime.artifact import sha256_file

from edgeship import __version__

MANIFEST_SCHEMA = 1
MAX_REFERENCE_SAMPLES = 512
MAX_REFERENCE_BYTES = 16 << 20
DEFAULT_REFERENCE_SAMPLES = 8


def log(message: str) -> None:
    print(f"edgeship-worker: {message}", flush=True)


def split_samples(arrays: dict, names: list[str]) -> list[dict]:
    """Arrays stacked on axis 0 -> one dict per sample, each with a batch axis of 1."""
    count = len(arrays[names[0]])
    return [{name: np.ascontiguousarray(arrays[name][index:index + 1], np.float32) for name in names} for index in range(count)]


def stack_samples(samples: list[dict]) -> dict:
    return {name: np.concatenate([sample[name] for sample in samples]) for name in samples[0]} if samples else {}


def load_calibration(job: dict) -> list[dict]:
    calibration = job.get("calibration")
    if not calibration:
        return []
    names = [item["name"] for item in job["inputs"]]
    samples = []
    for file_name in calibration["files"]:
        path = Path(calibration["path"]) / file_name
        if path.suffix == ".npz":
            with np.load(path) as data:
                sample = {name: data[name] for name in names}
        else:
            sample = {names[0]: np.load(path)}
        samples.append({name: np.asarray(value, np.float32).reshape(spec["shape"])
                        for (name, value), spec in zip(sample.items(), job["inputs"])})
    return samples


def load_eval(job: dict):
    evaluation = job.get("eval")
    if not evaluation:
        return [], None
    names = [item["name"] for item in job["inputs"]]
    with np.load(evaluation["path"]) as data:
        arrays = {name: data[name] for name in names}
        labels = data["labels"] if "labels" in data.files else None
    return split_samples(arrays, names), labels


def reference_inputs(job: dict, eval_samples: list[dict], calibration: list[dict]) -> list[dict]:
    if eval_samples:
        per_sample = sum(value.nbytes for value in eval_samples[0].values())
        return eval_samples[: max(1, min(MAX_REFERENCE_SAMPLES, MAX_REFERENCE_BYTES // per_sample))]
    if calibration:
        return calibration[:DEFAULT_REFERENCE_SAMPLES]
    rng = np.random.default_rng(0)  # no data given: seeded random inputs, said so in the manifest
    return [{item["name"]: rng.standard_normal(item["shape"]).astype(np.float32) for item in job["inputs"]}
            for _ in range(DEFAULT_REFERENCE_SAMPLES)]


def onnx_reference(job: dict, samples: list[dict]) -> list[dict]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # one thread: the same summation order on every run
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(job["source"]["path"], options, providers=["CPUExecutionProvider"])
    output_names = [item["name"] for item in job["outputs"]]
    return [dict(zip(output_names, session.run(output_names, sample))) for sample in samples]


def toolchain_versions(packages) -> dict:
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def run_with_runtime(out: Path, artifact: Path, target, job: dict, io_mapping: dict, samples: list[dict]) -> list[dict]:
    """The converted model's outputs through the board runtime's backend for the target."""
    from edgeship_runtime.artifact import Artifact
    from edgeship_runtime.backends import backend_class

    manifest = {"artifact": {"file": artifact.name}, "runtime_backend": target.runtime_backend, "inputs": job["inputs"],
                "outputs": job["outputs"], "artifact_io": {"mapping": io_mapping}}
    with backend_class(target.runtime_backend)(Artifact(out, manifest), threads=1) as backend:
        return [backend.infer(sample) for sample in samples]


def accuracy_report(job, reference, converted, labels, fp32_all, converted_all) -> dict:
    tolerances = job["tolerances"]
    outputs = {}
    for item in job["outputs"]:
        name = item["name"]
        figures = compare_output([r[name] for r in reference], [c[name] for c in converted])
        figures["passed"] = within_tolerance(figures, tolerances)
        outputs[name] = figures
    report = {"outputs": outputs, "tolerances": tolerances, "passed": all(f["passed"] for f in outputs.values())}
    if labels is not None:
        first = job["outputs"][0]["name"]
        report["labelled_accuracy"] = {
            "fp32": labelled_accuracy([o[first] for o in fp32_all], labels),
            "converted": labelled_accuracy([o[first] for o in converted_all], labels),
            "samples": len(labels),
            "output": first,
        }
    return report


def main(job_path: str) -> int:
    job = json.loads(Path(job_path).read_text())
    out = Path(job["out"])
    started = time.monotonic()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from targets import TARGETS
    from targets.base import load_function

    target = TARGETS[job["target"]]

    calibration = load_calibration(job)
    eval_samples, labels = load_eval(job)
    reference_in = reference_inputs(job, eval_samples, calibration)
    log(f"{len(calibration)} calibration samples, {len(eval_samples)} eval samples, {len(reference_in)} reference samples")

    # fp32 reference: the source model itself, on the CPU (ONNX Runtime, or the target's
    # own framework for its native formats).
    reference = onnx_reference if job["source"]["format"] == "onnx" else load_function(target.reference)
    fp32_all = reference(job, eval_samples if labels is not None else reference_in)
    fp32_ref = fp32_all[: len(reference_in)]
    log(f"fp32 reference outputs computed ({time.monotonic() - started:.1f} s)")

    with tempfile.TemporaryDirectory(prefix="convert-") as scratch:
        built = load_function(target.convert)(job, calibration, reference_in, Path(scratch))
        artifact = out / ("model" + target.artifact_suffix)
        shutil.copyfile(built, artifact)
        log(f"converted to {artifact.name} ({time.monotonic() - started:.1f} s)")

        ops = load_function(target.op_report)(artifact)
        io_mapping = load_function(target.io_map)(artifact, job["inputs"], job["outputs"])
        # The converted model runs through the board runtime's own backend, so x86 accuracy
        # is measured on the very code path a board uses; targets whose artifact only runs
        # on their accelerator use the vendor's simulator behind that same backend interface.
        samples = eval_samples if labels is not None else reference_in
        if target.simulate:
            converted_all = load_function(target.simulate)(out, artifact, job, io_mapping, samples)
        else:
            converted_all = run_with_runtime(out, artifact, target, job, io_mapping, samples)
        converted_ref = converted_all[: len(reference_in)]
        report = accuracy_report(job, fp32_ref, converted_ref, labels, fp32_all, converted_all)
        if not report["passed"] and target.analyse:
            log("below tolerance: running the toolkit's per-layer accuracy analysis")
            report["per_layer"] = load_function(target.analyse)(out, job, reference_in, Path(scratch))

    (out / "reference").mkdir()
    np.savez(out / "reference" / "inputs.npz", **stack_samples(reference_in))
    np.savez(out / "reference" / "outputs.npz", **stack_samples(fp32_ref))
    np.savez(out / "reference" / "expected.npz", **stack_samples(converted_ref))
    (out / "accuracy.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    (out / "ops.json").write_text(json.dumps(ops, indent=2, sort_keys=True) + "\n")
    if job.get("labels"):
        (out / "labels.txt").write_text("\n".join(job["labels"]) + "\n")

    files = {str(path.relative_to(out)): sha256_file(path) for path in sorted(out.rglob("*")) if path.is_file() and path.name not in ("manifest.json", "convert.log", *target.log_files)}
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "edgeship_version": __version__,
        "target": target.name,
        "runtime_backend": target.runtime_backend,
        "options": {"quant": job["quant"], **job["options"], "input_shapes": {i["name"]: i["shape"] for i in job["inputs"]}},
        "source": {key: job["source"][key] for key in ("file", "format", "sha256")},
        "artifact": {"file": artifact.name, "sha256": files[artifact.name], "size": artifact.stat().st_size},
        "inputs": job["inputs"],
        "outputs": job["outputs"],
        "artifact_io": {"tensors": {"inputs": ops["inputs"], "outputs": ops["outputs"]}, "mapping": io_mapping},
        "labels": job.get("labels"),
        **({"preprocess": job["preprocess"]} if job.get("preprocess") else {}),
        "toolchain": toolchain_versions(target.toolchain_packages),
        "image": job["image"],
        "calibration": {k: job["calibration"][k] for k in ("sha256", "samples")} if job.get("calibration") else None,
        "eval": {k: job["eval"][k] for k in ("sha256", "samples", "labelled")} if job.get("eval") else None,
        "reference": {
            "inputs": "reference/inputs.npz",
            "outputs": "reference/outputs.npz",
            "expected": "reference/expected.npz",
            "samples": len(reference_in),
            "source": "eval" if eval_samples else ("calibration" if calibration else "seeded random normal (no data given)"),
        },
        "accuracy": {
            "passed": report["passed"],
            **({"measured_with": target.measured_with} if target.measured_with else {}),
            "tolerances": report["tolerances"],
            "outputs": {name: {k: v for k, v in figures.items()} for name, figures in report["outputs"].items()},
            **({"labelled_accuracy": report["labelled_accuracy"]} if "labelled_accuracy" in report else {}),
            **({"per_layer": {k: v for k, v in report["per_layer"].items() if k != "layers"}} if "per_layer" in report else {}),
        },
        "logs": [name for name in ("convert.log", *target.log_files)],
        "ops": ops["ops"],
        "files": files,
        "cache_key": job["cache_key"],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    log(f"done in {time.monotonic() - started:.1f} s")
    return 0


def inspect(job_path: str) -> int:
    """Print the declared inputs/outputs of a non-ONNX source, read with the target's toolchain."""
    job = json.loads(Path(job_path).read_text())
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from targets import TARGETS
    from targets.base import load_function

    inputs, outputs = load_function(TARGETS[job["target"]].inspect)(job)
    print("edgeship-inspect: " + json.dumps({"inputs": inputs, "outputs": outputs}), flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(inspect(sys.argv[2]) if sys.argv[1] == "--inspect" else main(sys.argv[1]))
    except Exception as error:  # report one line to the controller; the full trace is in the log
        traceback.print_exc()
        print(f"edgeship-worker-error: {type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}", flush=True)
        sys.exit(3)
