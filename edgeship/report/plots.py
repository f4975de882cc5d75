"""The report's plots, made with matplotlib (Agg, no display) as SVG text: latency per board and
mode, accuracy against size and latency, and the camera demo's stage times.

Each function takes the store's rows and returns an SVG document (str). The SVGs are
deterministic (fixed hash salt, no date) so that an unchanged run renders the same report.
"""

from __future__ import annotations

import io
import json
import math

# Colours that stay apart in grey print too: measured on the accelerator or CPU as planned;
# CPU fallback; emulated (qemu) or simulated; the controller's own CPU.
COLOURS = {"measured": "#1f77b4", "fallback": "#ff7f0e", "emulated": "#8c8c8c", "controller": "#2ca02c", "published": "#d62728"}


def _pyplot():
    # imported here: matplotlib takes a second to import and only the report needs it
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams.update({"svg.hashsalt": "edgeship", "svg.fonttype": "path", "font.size": 9, "axes.titlesize": 10})
    import matplotlib.pyplot as plt

    return plt


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": "edgeship"}, bbox_inches="tight")
    _pyplot().close(figure)
    return buffer.getvalue()


def _kind(row: dict) -> str:
    if row.get("emulated"):
        return "emulated"
    if row.get("fallback"):
        return "fallback"
    if row.get("source") == "controller":
        return "controller"
    return "measured"


def _row_label(row: dict) -> str:
    marks = []
    if row.get("emulated"):
        marks.append("qemu")
    if row.get("fallback"):
        marks.append("CPU fallback")
    if row.get("runs") is not None and row["runs"] < 5:
        marks.append(f"{row['runs']} run sample")
    suffix = f" [{', '.join(marks)}]" if marks else ""
    return f"{row['board']} · {row['target']} {row['quant']}{suffix}"


def latency_plot(model: str, rows: list[dict]) -> str:
    """Mean latency per board and mode of one model (bar) with its p90 (whisker), log scale;
    published figures for the same hardware as red diamonds."""
    plt = _pyplot()
    measured = [row for row in rows if row.get("mean_ms")]
    figure, axes = plt.subplots(figsize=(7.5, 0.9 + 0.32 * max(1, len(measured))))
    for index, row in enumerate(measured):
        kind = _kind(row)
        axes.barh(index, row["mean_ms"], color=COLOURS[kind], hatch="//" if kind == "emulated" else None, edgecolor="white")
        if row.get("p90_ms") and row["p90_ms"] > row["mean_ms"]:
            axes.plot([row["mean_ms"], row["p90_ms"]], [index, index], color="black", linewidth=1)
            axes.plot([row["p90_ms"]], [index], marker="|", color="black", markersize=8)
        axes.text(max(row.get("p90_ms") or 0, row["mean_ms"]) * 1.08, index, f"{row['mean_ms']:.3g} ms", va="center", fontsize=7)
        for published in row.get("published") or []:
            axes.plot([published["latency_ms"]], [index], marker="D", color=COLOURS["published"], markersize=5)
    axes.set_yticks(range(len(measured)), [_row_label(row) for row in measured])
    axes.invert_yaxis()
    if measured:
        low = min(row["mean_ms"] for row in measured)
        high = max(max(row.get("p90_ms") or 0, row["mean_ms"]) for row in measured)
        axes.set_xscale("log")
        axes.set_xlim(10 ** math.floor(math.log10(low * 0.8)), 10 ** math.ceil(math.log10(high * 3)))
    else:
        axes.text(0.5, 0.5, "no benchmark of this model in this run", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel("latency per inference, ms (log scale): bar = mean, whisker = p90")
    axes.set_title(f"{model}: latency per board and mode")
    axes.grid(axis="x", which="both", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLOURS[k], hatch="//" if k == "emulated" else None)
               for k in ("measured", "controller", "fallback", "emulated")]
    labels = ["on the board as planned", "controller CPU (1 thread)", "CPU fallback", "emulated (qemu): not a board's speed"]
    if any(row.get("published") for row in measured):
        handles.append(plt.Line2D([], [], marker="D", color=COLOURS["published"], linestyle=""))
        labels.append("published, not measured here")
    axes.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), framealpha=0.9)
    return _svg(figure)


def accuracy_size_latency_plot(conversions: list[dict], latency_by_artifact: dict[tuple, float]) -> str:
    """Every conversion: size (x, log) against accuracy (y: the task metric against fp32, else the
    worst output cosine), coloured by latency on the controller's CPU (grey: not run there)."""
    plt = _pyplot()
    from matplotlib.colors import LogNorm

    figure, axes = plt.subplots(figsize=(7.5, 4.2))
    # one marker shape per target, in the order the targets are listed (no target is named here)
    shapes = ("o", "s", "^", "v", "P", "D", "X", "*", "<", ">")
    markers = {name: shapes[index % len(shapes)] for index, name in enumerate(sorted({row["target"] for row in conversions}))}
    points = []
    for row in conversions:
        accuracy = row.get("metric_vs_fp32")
        if accuracy is None:
            accuracy = row.get("cosine_min")
        if accuracy is None or not row.get("size_bytes"):
            continue
        # keyed like store.artifact_key: two targets' byte-identical files keep their own latency
        latency = latency_by_artifact.get((row["target"], row["quant"], row["model"], row.get("artifact_sha256")))
        points.append((row, row["size_bytes"] / 1e6, accuracy, latency))
    timed = [latency for *_, latency in points if latency]
    norm = LogNorm(vmin=min(timed), vmax=max(max(timed), min(timed) * 1.01)) if timed else None
    scatter = None
    for row, size_mb, accuracy, latency in points:
        style = {"marker": markers.get(row["target"], "X"), "s": 46, "edgecolors": "black", "linewidths": 0.5}
        if latency and norm:
            scatter = axes.scatter([size_mb], [accuracy], c=[latency], cmap="viridis", norm=norm, **style)
        else:
            axes.scatter([size_mb], [accuracy], color="#bbbbbb", **style)
        axes.annotate(f"{row['model']} {row['target']} {row['quant']}", (size_mb, accuracy), textcoords="offset points", xytext=(5, 3), fontsize=6)
    if points:
        axes.set_xscale("log")
    else:
        axes.text(0.5, 0.5, "no conversion in this run", ha="center", va="center", transform=axes.transAxes)
    if scatter is not None:
        figure.colorbar(scatter, ax=axes, label="latency on the controller CPU, ms (log)")
    axes.set_xlabel("artifact size, MB (log scale)")
    axes.set_ylabel("task metric vs fp32 (else worst output cosine)")
    axes.set_title("accuracy against size and latency (marker: target)")
    axes.grid(alpha=0.3)
    handles = [plt.Line2D([], [], marker=marker, linestyle="", color="#555555") for target, marker in markers.items()
               if any(row["target"] == target for row, *_ in points)]
    names = [target for target in markers if any(row["target"] == target for row, *_ in points)]
    if handles:
        axes.legend(handles, names, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=len(names), framealpha=0.9)
    return _svg(figure)


def demo_stages_plot(demos: list[dict]) -> str:
    """The camera demo on each board: mean time of each pipeline stage, stacked, with the
    end-to-end p50 (a frame's age when shown) as a black tick."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7.5, 0.9 + 0.45 * max(1, len(demos))))
    palette = plt.get_cmap("tab10")
    stage_names: list[str] = []
    for demo in demos:
        for stage in json.loads(demo["stages"]) if isinstance(demo["stages"], str) else demo["stages"]:
            if stage not in stage_names:
                stage_names.append(stage)
    widest = 0.0
    for index, demo in enumerate(demos):
        stages = json.loads(demo["stages"]) if isinstance(demo["stages"], str) else demo["stages"]
        left = 0.0
        for number, stage in enumerate(stage_names):
            mean = (stages.get(stage) or {}).get("mean_ms")
            if mean:
                axes.barh(index, mean, left=left, color=palette(number % 10))
                left += mean
        if demo.get("e2e_p50_ms"):
            axes.plot([demo["e2e_p50_ms"]], [index], marker="|", color="black", markersize=14, markeredgewidth=2)
        axes.text(left * 1.01 + 0.1, index, f"{(demo.get('fps') or 0):.1f} FPS", va="center", fontsize=7)
        widest = max(widest, left, demo.get("e2e_p50_ms") or 0)
    if widest:
        axes.set_xlim(0, widest * 1.18)  # room for the FPS text
    labels = [f"{d['board']} · {d.get('model') or '?'}{' [CPU fallback]' if d.get('fallback') else ''}" for d in demos]
    axes.set_yticks(range(len(demos)), labels)
    axes.invert_yaxis()
    axes.set_xlabel("ms per frame: stage means stacked; black tick = end-to-end p50")
    axes.set_title("camera demo: time per pipeline stage")
    handles = [plt.Rectangle((0, 0), 1, 1, color=palette(n % 10)) for n in range(len(stage_names))]
    if handles:
        axes.legend(handles, stage_names, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), framealpha=0.9)
    if not demos:
        axes.text(0.5, 0.5, "no demo in this run", ha="center", va="center", transform=axes.transAxes)
    axes.grid(axis="x", alpha=0.3)
    return _svg(figure)
