"""Int8 that keeps its accuracy: when an int8 build misses its task's tolerance, find the layers
that lose it and keep just those in higher precision (`--option rescue=auto`).

The search is the same for every toolchain; what differs is how a toolchain ranks its layers
and how it rebuilds with some of them kept float, which each target supplies as a `Rescuer`:

1. rank: the toolchain's own per-layer analysis scores the error int8 adds at each layer
   (ONNX Runtime's qdq_loss_debug, TFLite's QuantizationDebugger, rknn-toolkit2's
   accuracy_analysis); layers are sorted worst first, ties by name, so the order is stable;
2. pick the candidates in that order within the budget (`rescue_budget`: at most N layers,
   and/or at most P% of the model's multiply-accumulates kept float);
3. rebuild keeping the first k candidates float and judge each build with the task metric
   (`edgeship_runtime.tasks.compare`, the same gate the artifact is held to), for k = 1, 2, 4, ...
   until one passes, then bisect back to the fewest that pass. Every build is deterministic
   (fixed sample order, stable sort), so the same inputs give the same plan and the same bytes;
4. when no k within the budget passes, the best build found is kept (marked not passed, with
   the plan tried) and the one-line result names it: that is a result, not an error.

The record (manifest "rescue") holds the plan (the layers kept float, with their ranking
figures and share of MACs), every trial, and the accuracy and size before and after; the
latency before and after (where the host runs the artifact) goes to the log only, since a
measured time would make the manifest differ between rebuilds. The judged samples are the reference samples the gate
uses; the search picks layers on them, so a held-out set is the honest check of the result.
"""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from targets.base import Option

if TYPE_CHECKING:
    from targets.base import Converter

RESCUE_MODES = ("off", "auto")
DEFAULT_BUDGET = "layers:8"
RANKING_SHOWN = 20  # ranked layers recorded in the manifest beyond the plan, to show what came next
LATENCY_RUNS, LATENCY_MIN_S = 10, 1.0

# a temporary folder in a toolchain's message (the worker's /tmp/convert-*, ORT's ort.quant.*)
_TEMPORARY_PATH = re.compile(r"/tmp/[^\s'\"]*")
_BUDGET_PART = re.compile(r"^(?P<kind>layers|macs):(?P<value>\d+(?:\.\d+)?)(?P<percent>%?)$")


@dataclass(frozen=True)
class Budget:
    """How much a rescue may keep float: a number of layers and/or a share of the model's MACs."""

    max_layers: int | None = None
    max_mac_share: float | None = None  # 0..1

    @classmethod
    def parse(cls, text: str) -> Budget:
        """"layers:8", "macs:10%" or both ("layers:8,macs:10%"); ValueError says what is wrong."""
        layers = share = None
        parts = [part.strip() for part in text.split(",") if part.strip()]
        if not parts:
            raise ValueError("empty; write layers:N, macs:P% or both, e.g. layers:8,macs:10%")
        for part in parts:
            match = _BUDGET_PART.match(part)
            if not match:
                raise ValueError(f"{part!r} is neither layers:N nor macs:P% (e.g. layers:8, macs:10%)")
            if match["kind"] == "layers":
                if match["percent"] or "." in match["value"] or int(match["value"]) < 1:
                    raise ValueError(f"{part!r}: the layer count is a whole number of at least 1")
                layers = int(match["value"])
            else:
                if not match["percent"] or not 0 < float(match["value"]) <= 100:
                    raise ValueError(f"{part!r}: the MAC share is a percentage in (0, 100], e.g. macs:10%")
                share = float(match["value"]) / 100
        return cls(layers, share)

    def __str__(self) -> str:
        # a share written without an exponent (:g gives 1e-05), which parse() reads back
        percent = format(Decimal(repr(self.max_mac_share * 100)).normalize(), "f") if self.max_mac_share is not None else ""
        parts = ([f"layers:{self.max_layers}"] if self.max_layers is not None else []) + ([f"macs:{percent}%"] if percent else [])
        return ",".join(parts)


def parse_budget(value: str) -> str:
    """The option table's parser for `rescue_budget`: the normalized budget text."""
    return str(Budget.parse(value))


def rescue_options() -> tuple:
    """The two options every target with a rescue offers (int8 only)."""
    return (
        Option("rescue", RESCUE_MODES, "off", "when int8 misses the task's tolerance, keep the layers that lose it in higher precision "
               "(auto: rank layers by the error int8 adds, rebuild with the fewest float until the tolerance holds)", applies_to=("int8",)),
        Option("rescue_budget", (), DEFAULT_BUDGET, "what rescue=auto may keep float: layers:N, macs:P% (share of multiply-accumulates) "
               "or both, e.g. layers:8,macs:10%", applies_to=("int8",), parse=parse_budget),
    )


@dataclass(frozen=True)
class Layer:
    """One layer as a toolchain's analysis sees it: the name its rebuild takes, and how bad int8 is there."""

    name: str
    op: str
    score: float  # the error int8 adds at this layer, higher is worse (only the order matters)
    figure: str  # what `value` is, e.g. "sqnr_db_drop"
    value: float  # the toolchain's own figure for this layer
    macs: int = 0
    source: tuple[str, ...] = ()  # the source ONNX nodes it covers, where the toolchain's names show them

    def record(self, total_macs: int) -> dict:
        return {"name": self.name, "op": self.op, self.figure: round(self.value, 6), "macs": self.macs,
                "mac_share": round(self.macs / total_macs, 6) if total_macs else None, **({"source": list(self.source)} if self.source else {})}


@dataclass
class Ranking:
    layers: list[Layer]  # every layer the analysis scored
    total_macs: int  # of the whole model, for the MAC budget and shares
    method: str  # one line: which analysis, on how many samples
    precision: str  # what "float" means on this toolchain: "float32", "float16"

    def ranked(self) -> list[Layer]:
        """Worst first; equal scores by name, so two runs give the same order."""
        return sorted(self.layers, key=lambda layer: (-layer.score, layer.name))


def pick(ranking: Ranking, budget: Budget) -> list[Layer]:
    """The candidates, worst first, that fit the budget together: a layer that would push the float
    MACs past the share is skipped (a later, smaller one may still fit); layers that add no error
    (score <= 0) are never candidates."""
    chosen: list[Layer] = []
    macs = 0
    for layer in ranking.ranked():
        if layer.score <= 0 or (budget.max_layers is not None and len(chosen) >= budget.max_layers):
            continue
        if budget.max_mac_share is not None and ranking.total_macs and (macs + layer.macs) / ranking.total_macs > budget.max_mac_share:
            continue
        chosen.append(layer)
        macs += layer.macs
    return chosen


def shortfall(report: dict) -> float:
    """How far a failing build is from its gates: the sum of each failed gate's relative deficit
    (0 when it passes). Used to name the best build when none passes."""
    from edgeship_runtime.tasks.compare import shortfall as gate_shortfall

    if report.get("build_failed"):
        return math.inf
    return gate_shortfall(report)  # the task's gates, each in its direction (max_range_error is a ceiling)


@dataclass
class Trial:
    layers: tuple[str, ...]
    report: dict
    size: int
    artifact: Path  # the build


def search(candidates: Sequence[Layer], build_and_judge: Callable[[tuple[str, ...]], Trial], baseline: Trial,
           log: Callable[[str], None] = print) -> tuple[Trial, list[Trial]]:
    """The fewest leading candidates whose build passes: k = 1, 2, 4, ... up to all of them, then
    a bisection between the last failing and the first passing k (this assumes keeping more layers
    float does not make a build worse, which holds for the error int8 adds; a build that breaks it
    is still judged as it is). Returns (chosen trial, every trial in the order run); when none
    passes, the chosen one is the closest to its gates (fewer layers on a tie), possibly the baseline."""
    names = tuple(layer.name for layer in candidates)
    trials: dict[int, Trial] = {}

    def run(count: int) -> Trial:
        if count not in trials:
            trial = build_and_judge(names[:count])
            trials[count] = trial
            log(f"rescue: {count} layer(s) float -> " + ("within tolerance" if trial.report["passed"] else "; ".join(trial.report["failed"])))
        return trials[count]

    failing, passing = 0, None
    count = 1
    while count <= len(names):
        if run(count).report["passed"]:
            passing = count
            break
        failing = count
        count = len(names) if count < len(names) < count * 2 else count * 2
    if passing is not None:
        while passing - failing > 1:
            middle = (failing + passing) // 2
            if run(middle).report["passed"]:
                passing = middle
            else:
                failing = middle
        return trials[passing], [trials[k] for k in sorted(trials)]
    ordered = [trials[k] for k in sorted(trials)]
    best = min([baseline, *ordered], key=lambda trial: (shortfall(trial.report), len(trial.layers)))
    return best, ordered


def headline(report: dict) -> str:
    """The figure that decides a task, as text: 'detection F1 0.84' or 'cosine 0.97'."""
    from edgeship_runtime import tasks

    if report.get("build_failed"):
        return "build failed"
    metric, name, _, _ = tasks.get(report["task"], "rescue").headline
    if metric and report["metrics"].get(metric) is not None:
        return f"{name} {report['metrics'][metric]:.4g}"
    cosines = [figures["cosine_min"] for figures in report["outputs"].values() if figures.get("cosine_min") is not None]
    unmeasured = f"{name} not measurable, " if metric and report["metrics"].get("not_measurable") else ""
    return unmeasured + (f"cosine {min(cosines):.4g}" if cosines else "no figure")


def summary_of(report: dict, size: int) -> dict:
    """What the record keeps of one build: verdict, task metric, per-output cosine, size."""
    return {"passed": report["passed"], "failed": report["failed"], "metrics": report["metrics"],
            "cosine_min": {name: figures["cosine_min"] for name, figures in report["outputs"].items()},
            "snr_db_min": {name: figures["snr_db_min"] for name, figures in report["outputs"].items()},
            "size": size}


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.2f} MB" if size >= 1e5 else f"{size / 1e3:.1f} kB"


class Rescuer:
    """How one toolchain ranks its layers, rebuilds with some kept float and judges a build.

    A target offers rescue by listing `rescue_options()` among its options and returning a
    subclass from its converter's `rescuer(...)`; it fills in `rank` and `build`. The default
    `judge` runs a build through the converter's own `io_map` and `run_converted` (the path the
    artifact's accuracy is measured on) and compares it with the task metric."""

    def __init__(self, converter: Converter, calibration: list[dict], samples: list[dict], reference: list[dict]):
        self.converter, self.job = converter, converter.job
        self.calibration, self.samples, self.reference = calibration, samples, reference
        self.suffix = converter.target.artifact_suffix
        self.tolerances = self.job.tolerances  # the gates a build is judged by
        self.judged_on = ""  # what the builds are judged on, when it is not the artifact itself

    # -- what a toolchain fills in ------------------------------------------------------------
    def rank(self) -> Ranking:
        raise NotImplementedError

    def build(self, layers: tuple[str, ...]) -> Path:
        """The int8 artifact with these layers kept float (none: the plain int8 build)."""
        raise NotImplementedError

    # -- what it may override -------------------------------------------------------------------
    def baseline(self, report: dict, artifact: Path) -> tuple[dict, Path]:
        """The plain int8 build and its judgement: the worker's own by default."""
        return report, artifact

    def run(self, trial: Path, io_mapping: dict) -> list[dict]:
        """A build's outputs on the judged samples (the build sits in the artifact folder)."""
        return self.converter.run_converted(trial, io_mapping, self.samples)

    def judge(self, built: Path) -> dict:
        from edgeship_runtime.tasks import compare

        trial = self.converter.out / f"rescue-trial{self.suffix}"
        shutil.copyfile(built, trial)
        self.converter.close_converted()  # every trial is written to the same path: never judge the previous one's backend
        try:
            outputs = self.run(trial, self.converter.io_map(trial))
        finally:
            trial.unlink(missing_ok=True)
            self.converter.close_converted()
        report = compare(self.job.task, self.reference, outputs, self.tolerances, artifact_dir=self.converter.out)
        report["tolerances"] = self.tolerances
        return report

    def latency_ms(self, built: Path) -> float | None:
        """Median host latency of a build through the board runtime's backend (one thread); None
        where the host cannot run the artifact as a board does (simulators, engines built on boards)."""
        from edgeship_runtime.backends import backend_class
        from edgeship_runtime.bench import latency_stats, timed_loop

        trial = self.converter.out / f"rescue-timing{self.suffix}"
        shutil.copyfile(built, trial)
        try:
            io_mapping = self.converter.io_map(trial)
            provisional = self.job.provisional_artifact(self.converter.out, trial, io_mapping, self.converter.target.runtime_backend)
            with backend_class(self.converter.target.runtime_backend)(provisional, threads=1) as backend:
                feeds = backend.prepare(self.samples[0])
                timed_loop(backend, feeds, 3, 0.0)  # warm-up
                return latency_stats(timed_loop(backend, feeds, LATENCY_RUNS, LATENCY_MIN_S))["p50_ms"]
        finally:
            trial.unlink(missing_ok=True)

    def adopt(self, layers: tuple[str, ...], built: Path) -> Path | None:
        """What the artifact becomes with this plan: the build to ship (None: the artifact stays as
        the worker wrote it, e.g. when the plan is recorded for a build made elsewhere)."""
        return built

    def restore(self) -> Path | None:
        """Back to the plain int8 build after trials that did not help (None: the worker's artifact
        is still the plain build, nothing to do)."""
        return None

    def size(self, built: Path) -> int:
        return built.stat().st_size


def rescue(converter: Converter, report: dict, artifact: Path, calibration: list[dict], samples: list[dict],
           reference: list[dict]) -> tuple[Path | None, dict]:
    """Run the search for a finished int8 build (the worker's hook). Returns (the build to ship
    instead, or None to keep the artifact as it is; the record for accuracy.json and the manifest)."""
    job, log = converter.job, converter.log
    budget = Budget.parse(job.options.get("rescue_budget", DEFAULT_BUDGET))
    rescuer: Rescuer = converter.rescuer(calibration, samples, reference)
    before_report, before_build = rescuer.baseline(report, artifact)
    record: dict = {"mode": job.options.get("rescue"), "budget": str(budget)}
    if before_report["passed"]:
        record.update(needed=False, passed=True, result=f"rescue: int8 is within tolerance ({headline(before_report)}); nothing kept float")
        log(record["result"])
        return None, record
    log(f"rescue: int8 misses its tolerance ({'; '.join(before_report['failed'])}); ranking layers by the error int8 adds")
    ranking = rescuer.rank()
    ranked = ranking.ranked()
    if budget.max_mac_share is not None and not ranking.total_macs:
        # no MAC count for this graph (rk3588 from a .tflite source): the share cannot be held, so
        # the layer count bounds the search instead of nothing at all
        layers = budget.max_layers or Budget.parse(DEFAULT_BUDGET).max_layers
        log(f"rescue: the model's MACs are unknown here, so {budget} cannot be held; at most {layers} layer(s) instead")
        budget = Budget(layers, None)
        record["budget"] = str(budget)
    candidates = pick(ranking, budget)
    log(f"rescue: {len(ranked)} layers ranked ({ranking.method}); {len(candidates)} candidates within {budget}")
    baseline = Trial((), before_report, rescuer.size(before_build), before_build)
    latest: list[tuple[str, ...]] = []

    def build_and_judge(layers: tuple[str, ...]) -> Trial:
        latest[:] = [layers]
        try:
            built = rescuer.build(layers)
            return Trial(layers, rescuer.judge(built), rescuer.size(built), built)
        except Exception as error:  # a toolchain that refuses (or cannot run) one plan leaves the others to try
            line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            # the manifest records it: no temporary folder in it, or a rebuild would not give the same bytes
            line = _TEMPORARY_PATH.sub("<workdir>", line)
            failed = {"task": job.task["name"], "passed": False, "failed": [f"build failed: {line}"], "metrics": {}, "outputs": {},
                      "tolerances": rescuer.tolerances, "build_failed": True}
            return Trial(layers, failed, 0, before_build)

    chosen, trials = search(candidates, build_and_judge, baseline, log) if candidates else (baseline, [])
    by_name = {layer.name: layer for layer in ranked}
    shipped = None
    if chosen.layers:
        if latest[0] != chosen.layers:  # the toolchain's state (rk3588's simulator) must hold the build that ships
            chosen.artifact = rescuer.build(chosen.layers)
        shipped = rescuer.adopt(chosen.layers, chosen.artifact)
    elif latest:
        shipped = rescuer.restore()  # nothing helped: back to the plain build

    latency_before = rescuer.latency_ms(before_build) if chosen.layers else None
    latency_after = rescuer.latency_ms(chosen.artifact) if chosen.layers else None
    kept = [by_name[name] for name in chosen.layers]
    kept_macs = sum(layer.macs for layer in kept)
    plan = {"float_layers": [layer.record(ranking.total_macs) for layer in kept], "precision": ranking.precision,
            "mac_share": round(kept_macs / ranking.total_macs, 6) if ranking.total_macs else None}
    names = ", ".join(chosen.layers[:4]) + (f" and {len(chosen.layers) - 4} more" if len(chosen.layers) > 4 else "")
    share = f"{plan['mac_share']:.1%} of MACs" if plan["mac_share"] is not None else "MACs unknown"
    change = f"{headline(before_report)} -> {headline(chosen.report)}, {_megabytes(baseline.size)} -> {_megabytes(chosen.size)}"
    if latency_before and latency_after:
        # measured, so it differs run to run: in the log (convert.log, not shipped), never in the
        # manifest, whose bytes must be the same on a rebuild
        log(f"rescue: host latency (median, 1 thread) {latency_before:.3g} ms plain int8 -> {latency_after:.3g} ms rescued")
    if chosen.report["passed"]:
        result = f"rescued: {len(kept)} layer(s) kept {ranking.precision} ({names}; {share}): {change}"
    elif not candidates and any(layer.score > 0 for layer in ranked):
        result = (f"not rescued: every layer that adds error is larger than {budget} allows; int8 stays at {headline(before_report)}; "
                  f"raise rescue_budget")
    elif not candidates:
        result = f"not rescued: no layer adds error the analysis can see; int8 stays at {headline(before_report)}"
    elif chosen.layers:
        result = (f"not rescued within {budget}: best found keeps {len(kept)} layer(s) {ranking.precision} ({names}; {share}): {change}, "
                  f"still {'; '.join(chosen.report['failed'])}")
    else:
        result = (f"not rescued within {budget}: no plan tried did better than plain int8 ({headline(before_report)}); "
                  f"tried up to {len(candidates)} layer(s)")
    if rescuer.judged_on:
        result += f" (judged on {rescuer.judged_on})"
    log(result)
    record.update(
        needed=True, passed=chosen.report["passed"], result=result, method=ranking.method, plan=plan,
        candidates=[layer.name for layer in candidates],
        ranking=[layer.record(ranking.total_macs) for layer in ranked[:max(RANKING_SHOWN, len(candidates))]],
        trials=[{"layers": len(trial.layers), "passed": trial.report["passed"], "headline": headline(trial.report),
                 "failed": trial.report["failed"], "size": trial.size} for trial in trials],
        before=summary_of(before_report, baseline.size),
        after=summary_of(chosen.report, chosen.size),
    )
    return shipped, record


def rescue_summary(manifest: dict) -> list[str]:
    """The line `invoke convert` prints about a rescue (host side)."""
    record = manifest.get("rescue")
    return [record["result"]] if record and record.get("result") else []


def db(signal: float, noise: float, ceiling: float = 200.0) -> float:
    """10 log10(signal / noise), clipped to +-ceiling (a bit-exact layer has no noise at all)."""
    if noise <= 0:
        return ceiling
    if signal <= 0:
        return -ceiling
    return max(-ceiling, min(ceiling, 10 * math.log10(signal / noise)))


@dataclass
class MacCounter:
    """Multiply-accumulates of the layers that do them (convolutions, matrix products), from the
    shapes of a graph. Hand-written: none of the images carries a MAC counter, and these few op
    types are where a network's arithmetic is; other ops count 0."""

    per_layer: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.per_layer.values())


def onnx_macs(model) -> MacCounter:
    """MACs per node of an ONNX model with static shapes (shapes inferred here)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for value in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in value.type.tensor_type.shape.dim]
        shapes[value.name] = dims
    for init in inferred.graph.initializer:
        shapes[init.name] = list(init.dims)
    counter = MacCounter()
    for node in inferred.graph.node:
        output = shapes.get(node.output[0]) if node.output else None
        weight = shapes.get(node.input[1]) if len(node.input) > 1 else None
        if not output or not weight or 0 in output or 0 in weight:
            continue
        if node.op_type == "Conv":  # weight [M, C/group, k...]: every output element sums C/group * k... products
            counter.per_layer[node.name] = math.prod(output) * math.prod(weight[1:])
        elif node.op_type == "ConvTranspose":  # weight [C, M/group, k...]: every input element scatters M/group * k...
            source = shapes.get(node.input[0])
            if source and 0 not in source:
                counter.per_layer[node.name] = math.prod(source) * math.prod(weight[1:])
        elif node.op_type in ("MatMul", "Gemm"):
            left = shapes.get(node.input[0])
            if left and 0 not in left:
                transposed = node.op_type == "Gemm" and any(a.name == "transA" and a.i for a in node.attribute)
                counter.per_layer[node.name] = math.prod(output) * (left[-2] if transposed else left[-1])
    return counter


__all__ = ["Budget", "DEFAULT_BUDGET", "Layer", "MacCounter", "RESCUE_MODES", "Ranking", "Rescuer", "Trial", "db", "onnx_macs",
           "parse_budget", "pick", "rescue", "rescue_options", "rescue_summary", "search", "shortfall"]
