"""The conversion worker: `python -m targets.worker /job/job.json`, run INSIDE a toolchain image.

It reads the job the controller wrote, computes fp32 reference outputs of the source model,
lets the target's converter build the artifact, runs the converted model on the same inputs,
and writes the artifact directory (artifact, reference data, accuracy and op reports,
manifest.json). It imports numpy, the board runtime and the target's own toolchain; nothing
of the controller.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgeship_runtime import sequence
from edgeship_runtime.files import sha256_file
from targets.base import Target, log, worker_exit
from targets.job import Job

MANIFEST_SCHEMA = 1
MAX_REFERENCE_SAMPLES = 512
MAX_REFERENCE_BYTES = 16 << 20
DEFAULT_REFERENCE_SAMPLES = 8
# Seeded random reference inputs by dtype, where no data is given: float32 standard normal,
# int32/int64 uniform in [0, RANDOM_INT_HIGH) (small enough to index any table of that many rows,
# e.g. token ids into an embedding), uint8 over 0..255 (an image), bool half true.
RANDOM_INT_HIGH = 16
RANDOM_SOURCE = (f"seeded random (no data given): float32 normal, int32/int64 uniform in [0, {RANDOM_INT_HIGH}), "
                 "uint8 uniform in [0, 255], bool half true")


def split_samples(arrays: dict, specs: list[dict]) -> list[dict]:
    """Stacked arrays -> one dict per sample, each sliced on its tensor's batch axis
    (edgeship_runtime.sequence), in its input's dtype (float32 unless the spec names another;
    the host checked the values fit)."""
    dtypes = {spec["name"]: spec.get("dtype", "float32") for spec in specs}
    return [{name: np.ascontiguousarray(value, dtypes[name]) for name, value in sample.items()} for sample in sequence.split(arrays, specs)]


def stack_samples(samples: list[dict], specs: list[dict]) -> dict:
    return sequence.stack(samples, specs)


def load_calibration(job: Job) -> list[dict]:
    if not job.calibration:
        return []
    names = job.input_names
    samples = []
    for file_name in job.calibration["files"]:
        path = Path(job.calibration["path"]) / file_name
        if path.suffix == ".npz":
            with np.load(path) as data:
                sample = {name: data[name] for name in names}
        else:
            sample = {names[0]: np.load(path)}
        samples.append({name: np.asarray(value, spec.get("dtype", "float32")).reshape(spec["shape"])
                        for (name, value), spec in zip(sample.items(), job.inputs)})
    return samples


def load_eval(job: Job):
    if not job.eval:
        return [], None
    names = job.input_names
    with np.load(job.eval["path"]) as data:
        arrays = {name: data[name] for name in names}
        labels = data["labels"] if "labels" in data.files else None
    lengths = job.eval.get("sequences")
    if lengths:
        # a stateful model's sequences: the state inputs hold one initial value per sequence, which
        # each step of it holds until the carried run feeds it the state the step before returned
        carried = sequence.state_inputs(job.state)
        steps = split_samples(arrays, [spec for spec in job.inputs if spec["name"] not in carried])
        initial = split_samples(arrays, [spec for spec in job.inputs if spec["name"] in carried])
        owner = [index for index, length in enumerate(lengths) for _ in range(length)]
        return [{**step, **initial[owner[position]]} for position, step in enumerate(steps)], labels
    return split_samples(arrays, job.inputs), labels


def reference_inputs(job: Job, eval_samples: list[dict], calibration: list[dict]) -> list[dict]:
    if eval_samples:
        per_sample = sum(value.nbytes for value in eval_samples[0].values())
        count = max(1, min(MAX_REFERENCE_SAMPLES, MAX_REFERENCE_BYTES // per_sample))
        lengths = (job.eval or {}).get("sequences")
        if lengths:  # whole sequences: the board carries the state from each one's start
            count = sum(sequence.whole_sequences(lengths, count))
        return eval_samples[:count]
    if calibration:
        return calibration[:DEFAULT_REFERENCE_SAMPLES]
    rng = np.random.default_rng(0)  # no data given: seeded random inputs, said so in the manifest
    return [{spec["name"]: random_input(rng, spec) for spec in job.inputs} for _ in range(DEFAULT_REFERENCE_SAMPLES)]


def random_input(rng, spec: dict) -> np.ndarray:
    """One seeded random input of the spec's shape and dtype (see RANDOM_SOURCE)."""
    dtype, shape = spec.get("dtype", "float32"), spec["shape"]
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype == "uint8":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    if dtype in ("int32", "int64"):
        return rng.integers(0, RANDOM_INT_HIGH, shape).astype(dtype)
    return rng.standard_normal(shape).astype(np.float32)


def toolchain_versions(packages) -> dict:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def accuracy_report(job: Job, out: Path, reference, converted, labels, fp32_all, converted_all) -> dict:
    """The converted model against fp32, judged by what the model is for (the board runtime's
    task code: the board's check judges the same way), and both against the eval labels."""
    from edgeship_runtime.tasks import against_labels, compare, get

    report = compare(job.task, reference, converted, job.tolerances, artifact_dir=out)
    report["tolerances"] = job.tolerances
    if labels is not None:
        characters = job.labels if get(job.task["name"]).reads_text else None
        report["labelled"] = {"fp32": against_labels(job.task, fp32_all, labels, characters, out),
                              "converted": against_labels(job.task, converted_all, labels, characters, out), "samples": len(fp32_all)}
    return report


def write_manifest(out: Path, job: Job, target: Target, artifact: Path, ops: dict, io_mapping: dict, report: dict,
                   reference_in: list, eval_samples: list, calibration: list, reference_lengths: list[int] | None = None) -> dict:
    files = {str(path.relative_to(out)): sha256_file(path) for path in sorted(out.rglob("*"))
             if path.is_file() and path.name not in ("manifest.json", "convert.log", *target.log_files)}
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "edgeship_version": job.edgeship_version,
        "model": job.model_name,
        "target": target.name,
        "runtime_backend": target.runtime_backend,
        "options": {"quant": job.quant, **job.options, "input_shapes": {i["name"]: i["shape"] for i in job.inputs}},
        "source": {"file": job.source.file, "format": job.source.format, "sha256": job.source.sha256},
        # the size of everything the model is made of (a multi-file artifact's companions too)
        "artifact": {"file": artifact.name, "sha256": files[artifact.name],
                     "size": sum(artifact.with_suffix(suffix).stat().st_size for suffix in (artifact.suffix, *target.companion_suffixes))},
        "inputs": job.inputs,
        "outputs": job.outputs,
        **({"state": job.state} if job.state else {}),
        "artifact_io": {"tensors": {"inputs": ops["inputs"], "outputs": ops["outputs"]}, "mapping": io_mapping},
        "labels": job.labels,
        "task": job.task,
        **({"preprocess": job.preprocess} if job.preprocess else {}),
        **({"graph": {"steps": job.graph.get("steps", []), "renamed": job.graph.get("renamed", {})}} if job.graph else {}),
        # inputs replaced by constants before the clean-up (targets/freeze.py): not in "inputs", the board feeds none of them
        **({"input_values": job.graph["input_values"]} if job.graph and job.graph.get("input_values") else {}),
        "toolchain": toolchain_versions(target.toolchain_packages),
        "image": job.image,
        "calibration": {k: job.calibration[k] for k in ("sha256", "samples")} if job.calibration else None,
        "eval": {k: job.eval[k] for k in ("sha256", "samples", "labelled")} if job.eval else None,
        "reference": {
            "inputs": "reference/inputs.npz",
            "outputs": "reference/outputs.npz",
            "expected": "reference/expected.npz",
            "samples": len(reference_in),
            **({"sequences": reference_lengths} if reference_lengths else {}),
            "source": "eval" if eval_samples else ("calibration" if calibration else RANDOM_SOURCE),
        },
        "accuracy": {
            "passed": report["passed"],
            **({"measured_with": target.measured_with} if target.measured_with else {}),
            "task": report["task"],
            "tolerances": report["tolerances"],
            "outputs": report["outputs"],
            "metrics": report["metrics"],
            "failed": report["failed"],
            **({"labelled": report["labelled"]} if "labelled" in report else {}),
            **({"per_layer": {k: v for k, v in report["per_layer"].items() if k != "layers"}} if "per_layer" in report else {}),
        },
        **({"rescue": report["rescue"]} if "rescue" in report else {}),
        **({"rewrites": ops["rewrites"]} if "rewrites" in ops else {}),  # custom kernels rewritten into builtins
        **({"firmware": ops["firmware"]} if "firmware" in ops else {}),  # a microcontroller build's figures (mcu: arena, resolver, board)
        "logs": ["convert.log", *target.log_files],
        "ops": ops["ops"],
        "files": files,
        "cache_key": job.cache_key,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def run(job: Job, target: Target) -> int:
    out = Path(job.out)
    started = time.monotonic()
    calibration = load_calibration(job)
    eval_samples, labels = load_eval(job)
    reference_in = reference_inputs(job, eval_samples, calibration)
    log(f"{len(calibration)} calibration samples, {len(eval_samples)} eval samples, {len(reference_in)} reference samples")
    samples = eval_samples if labels is not None else reference_in
    # a stateful model's eval sequences: every run carries the state step to step (edgeship_runtime.sequence)
    lengths = (job.eval or {}).get("sequences") if eval_samples else None
    reference_lengths = sequence.whole_sequences(lengths, len(reference_in)) if lengths else None
    run_lengths = lengths if labels is not None else reference_lengths

    with tempfile.TemporaryDirectory(prefix="convert-") as scratch, target.converter(target, job, Path(scratch)) as converter:
        # fp32 reference: the source model itself, on the CPU (ONNX Runtime, or the target's
        # own framework for its native formats).
        fp32_all = sequence.run_sequences(converter.reference, samples, run_lengths, job.state)
        # the reference inputs as the eval set gives them (each sequence's initial state at each of its
        # steps): the board's check carries the state from there, as the conversion did
        reference_given = reference_in
        if run_lengths:  # what fp32's carried run fed each step: the open-loop inputs of the toolchain, rescue and analysis
            samples = sequence.as_fed(samples, fp32_all, run_lengths, job.state)
            reference_in = samples[: len(reference_in)]

        def run_converted(model: Path) -> list[dict]:
            return sequence.run_sequences(lambda batch: converter.run_converted(model, io_mapping, batch), samples, run_lengths, job.state)

        fp32_ref = fp32_all[: len(reference_in)]
        log(f"fp32 reference outputs computed ({time.monotonic() - started:.1f} s)")

        built = converter.convert(calibration, reference_in)
        artifact = out / ("model" + target.artifact_suffix)
        shutil.copyfile(built, artifact)
        for suffix in target.companion_suffixes:
            shutil.copyfile(built.with_suffix(suffix), artifact.with_suffix(suffix))
        log(f"converted to {artifact.name} ({time.monotonic() - started:.1f} s)")

        ops = converter.op_report(artifact)
        io_mapping = converter.io_map(artifact)
        converted_all = run_converted(artifact)
        converted_ref = converted_all[: len(reference_in)]
        report = accuracy_report(job, out, fp32_ref, converted_ref, labels, fp32_all, converted_all)
        if job.quant == "int8" and job.options.get("rescue", "off") != "off":
            # int8 that misses its tolerance: keep the layers that lose it in higher precision (targets/rescue.py)
            from targets.rescue import rescue

            rescued, record = rescue(converter, report, artifact, calibration, reference_in, fp32_ref)
            if rescued is not None:
                for suffix in (artifact.suffix, *target.companion_suffixes):
                    shutil.copyfile(rescued.with_suffix(suffix), artifact.with_suffix(suffix))
                converter.close_converted()  # the artifact's path now holds another model: load it again
                ops = converter.op_report(artifact)
                io_mapping = converter.io_map(artifact)
                converted_all = run_converted(artifact)
                converted_ref = converted_all[: len(reference_in)]
                report = accuracy_report(job, out, fp32_ref, converted_ref, labels, fp32_all, converted_all)
            report["rescue"] = record
        if not report["passed"]:
            analysis = converter.analyse(reference_in)
            if analysis is not None:
                report["per_layer"] = analysis

    (out / "reference").mkdir()
    np.savez(out / "reference" / "inputs.npz", **stack_samples(reference_given, job.inputs))
    np.savez(out / "reference" / "outputs.npz", **stack_samples(fp32_ref, job.outputs))
    np.savez(out / "reference" / "expected.npz", **stack_samples(converted_ref, job.outputs))
    (out / "accuracy.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    (out / "ops.json").write_text(json.dumps(ops, indent=2, sort_keys=True) + "\n")
    if job.labels:
        (out / "labels.txt").write_text("\n".join(job.labels) + "\n")
    write_manifest(out, job, target, artifact, ops, io_mapping, report, reference_in, eval_samples, calibration, reference_lengths)
    log(f"done in {time.monotonic() - started:.1f} s")
    return 0


def inspect(job: Job, target: Target) -> int:
    """Print the declared inputs/outputs of a non-ONNX source, read with the target's toolchain."""
    with tempfile.TemporaryDirectory(prefix="inspect-") as scratch, target.converter(target, job, Path(scratch)) as converter:
        inputs, outputs = converter.inspect()
    print("edgeship-inspect: " + json.dumps({"inputs": inputs, "outputs": outputs}), flush=True)
    return 0


def main(argv: list[str]) -> int:
    import targets  # the table is read here, not at import: `targets` discovers this module too

    inspecting = argv[0] == "--inspect"
    job = Job.load(argv[1] if inspecting else argv[0])
    target = targets.get(job.target)
    return inspect(job, target) if inspecting else run(job, target)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Exception as error:  # one line for the controller (the trace is in the log); the exit says whose fix it is
        sys.exit(worker_exit(error))
