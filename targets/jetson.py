"""`jetson`: NVIDIA Jetson GPUs through TensorRT; the x86 host prepares and proves the network.

A TensorRT engine belongs to one GPU and one TensorRT version, so it cannot be made on an
x86 build host for a Jetson. This target makes everything else:

- **the cleaned graph**: like every ONNX-consuming target, it converts the graph edgeship's one
  clean-up made (targets/graph.py): the conversion's static input shapes (the engine is built
  for them), valid names, folded constants and a simplified graph (onnx-simplifier), which
  removes the shape arithmetic TensorRT would otherwise import as layers, IR <= 10;
  `sanitize.json` records each step's node count.
- **op check**: every op (in subgraphs too) is checked against TensorRT's documented
  support matrix for the TensorRT of JetPack 6 (targets/tensorrt_ops.py). An unsupported op
  stops the conversion with one line naming the op and its nodes, so it never reaches a board.
- **precision**: `fp16` (default), `int8` or `fp32` is the engine's build precision, kept
  in `tensorrt.json` with the builder workspace. For `int8` the calibration set is packaged
  as `calibration.npz`, and the board calibrates with it when it builds the engine.
- **reference**: fp32 outputs come from ONNX Runtime on the source model. The accuracy
  measured here is the cleaned ONNX on ONNX Runtime's CPU provider (what a board without
  a GPU runs as its fallback): it proves the clean-up changed nothing. TensorRT's own fp16 or
  int8 accuracy is measured where an engine exists: on the board (`edgeship-runtime check`),
  or here with `--gpus`, which builds a test engine through the board's own code
  (edgeship_runtime.trt_engine), writes the int8 calibration cache, and measures it.
- **rescue** (`--option rescue=auto`, int8; targets/rescue.py): TensorRT's int8 cannot be built
  here, so ONNX Runtime's QDQ int8 of the same graph stands in for it: when that misses the
  task's int8 tolerance, its nodes are ranked (qdq_loss_debug, as the onnx target does) and the
  fewest kept float that bring it within tolerance become `fp16_layers` in `tensorrt.json`.
  The board's engine build keeps those layers in fp16 (OBEY_PRECISION_CONSTRAINTS; TensorRT's
  ONNX parser names layers after the ONNX nodes). The manifest's `rescue` record says what the
  stand-in measured; the engine's own accuracy is measured on the board (or with `--gpus`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from targets.base import Converter, Option, RequestError, Target
from targets.onnx import RANK_SAMPLES, identity_io_map, onnx_op_report, qdq_quantize, qdq_ranking
from targets.rescue import Ranking, Rescuer, rescue_options
from targets.tensorrt_ops import JETPACK, OPSET_MAX, OPSET_MIN, TENSORRT_VERSION

MAX_IR_VERSION = 10  # TensorRT 10.3's parser (and onnxsim's ONNX) read IR <= 10


def parse_workspace(value: str) -> str:
    try:
        mib = int(value)
    except ValueError:
        raise ValueError("not a whole number of MiB") from None
    if not 16 <= mib <= 65536:
        raise ValueError(f"{mib} MiB is outside 16..65536")
    return str(mib)


class UnsupportedByTensorRT(RequestError):
    """The model has ops TensorRT's ONNX parser does not import."""


class JetsonConverter(Converter):
    def convert(self, calibration: list[dict], reference_set: list[dict]) -> Path:
        import onnx

        from targets.tensorrt_ops import check_model, describe_problems

        # The cleaned graph (static shapes, folded constants, simplified, IR <= 10: what TensorRT's
        # parser reads best) is what the board builds its engine from.
        model = onnx.load(self.job.model_path)
        model.ir_version = min(model.ir_version, MAX_IR_VERSION)
        report = {"steps": [{"step": step["step"], "nodes": step["nodes"]} for step in (self.job.graph or {}).get("steps", [])]}
        support = check_model(model)
        if not support["supported"]:
            self.log("TensorRT op check: " + json.dumps(support["unsupported"]))
            raise UnsupportedByTensorRT(f"{self.job.source.file}: TensorRT {TENSORRT_VERSION} (JetPack {JETPACK}) cannot import: "
                                        f"{describe_problems(support)}; replace these ops in the model (or re-export it), "
                                        f"then convert again")
        artifact = self.workdir / "model.onnx"
        onnx.save(model, str(artifact))
        (self.out / "sanitize.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        config: dict = {"tensorrt": TENSORRT_VERSION, "jetpack": JETPACK, "precision": self.job.quant,
                        "workspace_mib": int(self.job.options["workspace"]), "calibration": None}
        if self.job.quant == "int8":
            names = self.job.input_names
            stacked = {name: np.concatenate([sample[name] for sample in calibration]) for name in names}
            np.savez(self.out / "calibration.npz", **stacked)  # type: ignore[arg-type]  # numpy's stub reads **kwds as allow_pickle
            config["calibration"] = {"file": "calibration.npz", "samples": len(calibration), "batch": 1, "inputs": names}
            self.log(f"packaged {len(calibration)} calibration samples for the board's int8 calibrator")
        (self.out / "tensorrt.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        return artifact

    def op_report(self, artifact: Path) -> dict:
        import onnx

        from targets.tensorrt_ops import check_model

        report = onnx_op_report(artifact)
        report["tensorrt"] = check_model(onnx.load(str(artifact)))
        return report

    def io_map(self, artifact: Path) -> dict:
        return identity_io_map(self.job)

    def run_converted(self, artifact: Path, io_mapping: dict, samples: list[dict]) -> list[dict]:
        """The sanitized ONNX on ONNX Runtime's CPU provider (the board's fallback backend); with
        `--gpus`, also a TensorRT engine of it built by the board's code, measured the same way."""
        from edgeship_runtime.backends import backend_class

        cpu = self.job.provisional_artifact(self.out, artifact, io_mapping, "onnxruntime")
        with backend_class("onnxruntime")(cpu, threads=1) as backend:
            results = [backend.infer(sample) for sample in samples]
        if self.job.gpus:
            self.gpu_engine(artifact, io_mapping, samples, results)
        return results

    def gpu_engine(self, artifact: Path, io_mapping: dict, samples: list[dict], cpu_results: list[dict]) -> None:
        """Build a test engine on this host's GPU with the board's code path, keep the int8
        calibration cache, and record the engine's accuracy against ONNX Runtime."""
        import tempfile

        from edgeship_runtime.backends import backend_class
        from edgeship_runtime.tasks.compare import generic_figures

        gpu = self.job.provisional_artifact(self.out, artifact, io_mapping, "tensorrt")
        cache = Path(tempfile.mkdtemp(prefix="engines-"))
        with backend_class("tensorrt")(gpu, engine_cache=str(cache)) as backend:
            record = backend.engine_record  # type: ignore[attr-defined]  # the TensorRT backend's own
            results = [backend.infer(sample) for sample in samples]
        calibration_cache = cache / f"{record['key']}.calibration.cache"
        if calibration_cache.is_file():
            (self.out / "calibration.cache").write_bytes(calibration_cache.read_bytes())
        figures = {name: generic_figures([c[name] for c in cpu_results], [g[name] for g in results]) for name in self.job.output_names}
        summary = {"engine": {k: v for k, v in record.items() if k != "path"}, "accuracy_vs_onnxruntime": figures,
                   "note": "test engine built on the conversion host's GPU; the board builds its own for its GPU and TensorRT"}
        (self.out / "gpu_engine.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        self.log(f"test engine on {record['gpu']['name']} (sm {record['gpu']['compute_capability']}, TensorRT {record['tensorrt']}): "
                 + ", ".join(f"{name} cosine min {f['cosine_min']:.5f}" for name, f in figures.items()))

    def rescuer(self, calibration: list[dict], samples: list[dict], reference: list[dict]) -> Rescuer:
        return JetsonRescuer(self, calibration, samples, reference)

    @classmethod
    def summary(cls, artifact_dir: Path, manifest: dict, ops: dict) -> list[str]:
        from targets.rescue import rescue_summary

        lines = rescue_summary(manifest)
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
        return lines


class JetsonRescuer(Rescuer):
    """ONNX Runtime's QDQ int8 of the shipped graph stands in for TensorRT's int8 (same graph,
    same calibration samples, per-channel weights like TensorRT's); the plan it finds is handed to
    the board's engine build as fp16 layers. Judged at the int8 tolerances of the task, since the
    worker's own figures measure the fp32 ONNX."""

    def __init__(self, converter: JetsonConverter, calibration: list[dict], samples: list[dict], reference: list[dict]):
        super().__init__(converter, calibration, samples, reference)
        from edgeship_runtime.tasks import default_tolerances

        self.tolerances = default_tolerances(self.job.task["name"], "int8")
        self.judged_on = "ONNX Runtime's QDQ int8 standing in for TensorRT's; the engine's own accuracy is measured on the board"
        self.graph = converter.workdir / "model.onnx"  # what convert wrote: the graph the board builds its engine from

    def baseline(self, report: dict, artifact: Path) -> tuple[dict, Path]:
        built = self.build(())
        return self.judge(built), built

    def rank(self) -> Ranking:
        ranking = qdq_ranking(self.graph, self.converter.workdir / "rescue-000.onnx", self.samples[:RANK_SAMPLES], self.converter.workdir)
        ranking.method += " (ONNX Runtime's QDQ int8 standing in for TensorRT's)"
        ranking.precision = "float16"
        return ranking

    def build(self, layers: tuple[str, ...]) -> Path:
        return qdq_quantize(self.graph, self.converter.workdir / f"rescue-{len(layers):03d}.onnx", self.calibration, "minmax", layers)

    def run(self, trial: Path, io_mapping: dict) -> list[dict]:
        from edgeship_runtime.backends import backend_class

        provisional = self.job.provisional_artifact(self.converter.out, trial, io_mapping, "onnxruntime")
        with backend_class("onnxruntime")(provisional, threads=1) as backend:
            return [backend.infer(sample) for sample in self.samples]

    def size(self, built: Path) -> int:
        return self.graph.stat().st_size  # the shipped fp32 graph; the engine's size is the board's to measure

    def latency_ms(self, built: Path) -> float | None:
        return None  # the engine is built and timed on the board

    def adopt(self, layers: tuple[str, ...], built: Path) -> Path | None:
        config_path = self.converter.out / "tensorrt.json"
        config = json.loads(config_path.read_text())
        config["fp16_layers"] = list(layers)
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        self.converter.log(f"tensorrt.json: {len(layers)} layer(s) kept fp16 in the board's int8 engine")
        if self.job.gpus:  # the test engine was built before the plan existed: build it again with the plan
            converter: JetsonConverter = self.converter  # type: ignore[assignment]
            artifact = converter.out / "model.onnx"
            io_mapping = converter.io_map(artifact)
            converter.gpu_engine(artifact, io_mapping, self.samples, self.run(artifact, io_mapping))
        return None  # the shipped ONNX is the same graph; the plan travels in tensorrt.json


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
        *rescue_options(),
    ),
    # TensorRT 10.x's parser imports opsets 9 to 20 (targets/tensorrt_ops.py).
    onnx_opsets=(OPSET_MIN, OPSET_MAX),
    # Measured here on the cleaned fp32 ONNX, so every precision is held to fp32's tolerance.
    measured_as="fp32",
    converter=JetsonConverter,
    measured_with="the cleaned ONNX on ONNX Runtime's CPU provider (the engine's fp16/int8 accuracy is measured where it is built: "
                  "on the board, or here with --gpus)",
    gpu_image="jetson-tensorrt",
    toolchain_packages=("onnx", "onnxruntime", "onnxsim", "polygraphy", "onnx-graphsurgeon", "numpy", "protobuf", "tensorrt"),
    # Jetson's GPU through the Tegra drivers (nvhost/nvmap/nvgpu) and NVIDIA's own nodes.
    device_nodes=("char-nvhost rw", "char-nvmap rw", "char-nvgpu rw", "char-nvidia rw"),
    report_note=("jetson accuracy is measured on the sanitized ONNX on ONNX Runtime's CPU provider (TensorRT engines are "
                 "built on the board, for its GPU); a board without a GPU runs that same ONNX on ONNX Runtime, labelled."),
)
