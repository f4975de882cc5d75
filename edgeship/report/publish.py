"""The run report: results/<run>/report.html (one self-contained file: plots embedded as SVG data,
opens from disk) and report.md (plots beside it in plots/), both rendered with Jinja2 from the
results store (templates in edgeship/report/templates/).

Contents: the run's identity (commit, controller, images), the comparison per model across
boards, targets and modes (latency mean/p90, FPS, multi-instance throughput, peak RSS, power,
size, accuracy fp32 vs converted, conversion time) with a latency plot each, accuracy against
size and latency, the camera demo's stage times, every conversion, the boards and their checks,
published reference figures (marked as such, beside a row only where the hardware matches),
and the comparison with an earlier run when `invoke compare` wrote one.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from edgeship.errors import EdgeshipError
from edgeship.report import store
from edgeship_runtime import names
from edgeship_runtime.files import atomic_write_text

TEMPLATES = Path(__file__).parent / "templates"
NOTES = (
    "Simulated boards are containers on the controller sharing its cores; a board of another architecture runs under "
    "qemu-user emulation, so its latencies measure qemu, not the board. No simulated board has its accelerator: each runs on "
    "its CPU (its model's CPU artifact, or the artifact's own model on a CPU runtime) and is labelled as a CPU fallback.",
    "MobileNetV2, YOLOv8n and YOLO11n have their published architectures with fixed-seed random weights: their latencies "
    "compare with published ones, their accuracy figures only show conversion drift.",
)


def _ms(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if value < 100 else f"{value:,.0f}"


def _pct(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def _score(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _mb(size_bytes) -> str:
    return "-" if not size_bytes else f"{size_bytes / 1e6:.2f} MB"


def _seconds(value) -> str:
    if not isinstance(value, (int, float)) or value != value:  # NaN: a phase that never ended (the run was cut short)
        return "-"
    return f"{value:,.1f} s"


def _accuracy(row: dict) -> str:
    if row.get("labelled_fp32") is None or row.get("labelled_converted") is None:
        return "-"
    return f"{row['label_metric']} {_pct(row['labelled_fp32'])} → {_pct(row['labelled_converted'])}"


def _metric(row: dict) -> str:
    if row.get("metric_vs_fp32") is None:  # a named metric without a value was not measurable (no boxes, no text), never a score
        return f"{row['metric']} not measurable" if row.get("metric") and row.get("accuracy_passed") is not None else "-"
    return f"{row['metric']} {_pct(row['metric_vs_fp32'])}"


def _verdict(value) -> str:
    return "-" if value is None else ("pass" if value else "FAIL")


def comparison_cells(row: dict) -> dict:
    """A comparison row as the report shows it (strings), for both templates."""
    throughput = "-"
    if row.get("throughput_fps"):
        throughput = f"{row['throughput_fps']:.1f} FPS ({row['throughput_instances']} inst.)"
    published = "; ".join(f"{_ms(p['latency_ms'])} ms, {p['published_model']} ({p['source'].split(',')[0]}; published, not measured here)"
                          for p in row.get("published") or [])
    return {
        "board": row["board"] or "-",
        "board_model": row.get("board_model") or "-",
        "arch": row.get("arch") or "-",
        "target": row["target"], "quant": row["quant"],
        "backend": f"{row['backend']} ({row['accelerator']})" if row.get("backend") else "-",
        "labels": row["labels"],
        "kind": "emulated" if row["emulated"] else "fallback" if row["fallback"] else "controller" if row["source"] == "controller" else
                "none" if row["board"] is None else "measured",
        "latency": "-" if row.get("mean_ms") is None else f"{_ms(row['mean_ms'])} / {_ms(row.get('p90_ms'))} ms"
                   + (f" ({row['speed_vs_fp32']:.2f}x fp32)" if row.get("speed_vs_fp32") else ""),
        "fps": "-" if not row.get("fps") else f"{row['fps']:.1f}",
        "throughput": throughput,
        "rss": "-" if not row.get("peak_rss_mb") else f"{row['peak_rss_mb']:.0f} MB",
        "power": "-" if row.get("power_w") is None else f"{row['power_w']:.2f} W",
        "size": _mb(row.get("size_bytes")),
        "accuracy": _accuracy(row),
        "metric": _metric(row),
        "check": _verdict(row.get("check_passed")),
        "convert": "-" if row.get("convert_s") is None else f"{row['convert_s']:.1f} s",
        "published": published,
    }


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _newest_compare(folder: Path | None) -> dict | None:
    if folder is None:
        return None
    found = sorted(folder.glob("compare-*.json"), key=lambda path: path.stat().st_mtime)
    if not found:
        return None
    try:
        document = json.loads(found[-1].read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    # written by `invoke compare`, but a run folder may come from anywhere: only its known shape is shown
    fields = ("kind", "key", "before", "now", "why")
    if not isinstance(document, dict) or not all(isinstance(document.get(key), list) for key in ("regressions", "improvements")):
        return None
    thresholds = document.get("thresholds")
    return {"base": str(document.get("base")),
            "thresholds": {str(k): v for k, v in thresholds.items() if isinstance(v, (int, float))} if isinstance(thresholds, dict) else {},
            **{key: [{field: str(item.get(field)) for field in fields} for item in document[key] if isinstance(item, dict)]
               for key in ("regressions", "improvements")}}


def _published_table(rows: list[dict]) -> list[dict]:
    from edgeship.report.reference_figures import alongside, for_models, why_not

    table = []
    for figure in for_models({row["model"] for row in rows}):
        candidates = [row for row in rows if row["model"] == figure.model]
        beside = [f"{row['board']} {row['target']} {row['quant']}" for row in candidates if why_not(figure, row) is None]
        reasons = sorted({why_not(figure, row) or "" for row in candidates if row.get("source") == "board"} - {""})
        # the same network on the same runtime, measured here on other hardware: listed with its figure and how it differs
        same_runtime = [f"{row['board'] or 'conversion'} {row['target']} {row['quant']} "
                        f"{'not benchmarked' if row['mean_ms'] is None else _ms(row['mean_ms']) + ' ms'} ({label})"
                        for row in candidates if (label := alongside(figure, row))]
        table.append({**figure.as_dict(), "input": "x".join(str(d) for d in figure.input_shape),
                      "latency": _ms(figure.latency_ms), "fps": "-" if figure.fps is None else f"{figure.fps:.1f}",
                      "beside": ", ".join(beside) if beside else
                      "no matching hardware in this run" + (f" ({'; '.join(reasons)})" if reasons else "")
                      + (f"; same network and runtime measured here: {'; '.join(same_runtime)}" if same_runtime else "")})
    return table


def _environments():
    """(HTML, Markdown) template environments. HTML: Jinja2's autoescape. Markdown: every value
    rendered as text by edgeship.report.markdown (board-provided strings carry no markup or links);
    `trusted` marks what edgeship itself wrote (the reference figures' URLs, the plots' paths)."""
    import jinja2
    from markupsafe import Markup

    from edgeship.report.markdown import finalize, md_code, md_text

    options = dict(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                   keep_trailing_newline=True)
    html = jinja2.Environment(autoescape=True, **options)  # type: ignore[arg-type]
    markdown = jinja2.Environment(autoescape=False, finalize=finalize, **options)  # type: ignore[arg-type]
    markdown.filters.update(md=md_text, code=md_code, trusted=Markup)
    return html, markdown


def _plot_name(kind: str, model: str) -> str:
    """A plot's file name under plots/: a model named by the one name rule keeps its name; any
    other (a board's result may name it anything) gets a safe one with a hash of the original."""
    if names.is_safe(model) and len(model) <= 48:
        return f"{kind}-{model}"
    return f"{kind}-{names.suggest(model)[:32]}-{hashlib.sha256(model.encode()).hexdigest()[:8]}"


def _run_folder(results: Path, run: str | None) -> tuple[str, Path | None]:
    """(run id, its folder if it still exists); imports the folder so the store is current."""
    if run is not None:
        store.check_run_name(run, "--run")
    if run is None:
        folders = store.run_folders(results)
        if folders:
            store.import_run(results, folders[-1])
            return folders[-1].name, folders[-1]
        return store.resolve_run(results, None), None
    folder = results / run
    if folder.is_dir():
        store.import_run(results, folder)
        return run, folder
    run_id = store.resolve_run(results, run)  # a tag, or a run whose folder was removed: the store still has it
    return run_id, results / run_id if (results / run_id).is_dir() else None


def _board_kind(boards: list[dict], name: str) -> str:
    """How a demo's board is labelled beside its figures: emulated (qemu: not a board's speed),
    simulated (a container on this machine), or '' for real hardware."""
    board = next((b for b in boards if b["board"] == name), None)
    if board is None:
        return ""
    return "emulated (qemu)" if board["emulated"] else "simulated" if board["simulated"] else ""


def write_report(results: Path, run: str | None = None) -> list[Path]:
    """Write results/<run>/report.html and report.md (run: a run id or tag; default the newest run)."""
    from edgeship.report import plots
    from edgeship.report.profiles import profile_sections

    results = Path(results)
    if not results.is_dir():
        raise EdgeshipError(f"{results} does not exist; run `./dev main` first, or pass --results DIR")
    run_id, folder = _run_folder(results, run)
    out = folder or results / run_id
    record = store.run_record(results, run_id)
    rows = store.comparison_rows(results, run_id)
    conversions = store.table_rows(results, "conversions", run_id)
    boards = store.table_rows(results, "boards", run_id)
    checks = store.table_rows(results, "checks", run_id)
    demos = store.table_rows(results, "demos", run_id)
    benches = store.table_rows(results, "benches", run_id)  # their records hold the boards' per-operator profiles

    models = sorted({row["model"] for row in rows})
    svgs: dict[str, tuple[str, str]] = {}  # plot name -> (alt text, svg)
    plot_of = {model: _plot_name("latency", model) for model in models}
    for model in models:
        measured = [row for row in rows if row["model"] == model and row.get("mean_ms")]
        if measured:
            svgs[plot_of[model]] = (f"{model}: latency per board and mode", plots.latency_plot(model, measured))
    controller_latency = {key: row["mean_ms"] for row in rows if row["source"] == "controller"
                          and (key := store.artifact_key(row["target"], row["quant"], row["model"], row["artifact_sha256"]))}
    if conversions:
        svgs["accuracy-size-latency"] = ("accuracy against size and latency", plots.accuracy_size_latency_plot(conversions, controller_latency))
    if demos:
        svgs["demo-stages"] = ("camera demo: time per pipeline stage", plots.demo_stages_plot(demos))

    plot_folder = out / "plots"
    plot_folder.mkdir(parents=True, exist_ok=True)
    for name, (_, svg) in svgs.items():
        atomic_write_text(plot_folder / f"{name}.svg", svg)
    viewer = out / "demo" / "viewer.png"
    context = {
        "run": record, "models": models,
        "sections": [{"model": model, "plot": plot_of[model] if plot_of[model] in svgs else None,
                      "rows": [{**comparison_cells(row), "model": model} for row in rows if row["model"] == model]} for model in models],
        "conversions": [{**row, "cells": comparison_cells(_conversion_view(row))} for row in conversions],
        "boards": [{**board, "compatible": json.loads(board["compatible"]), "available": json.loads(board["available"])} for board in boards],
        "checks": [{**check, "metrics": json.loads(check["metrics"]), "failed": json.loads(check["failed"])} for check in checks],
        "demos": [{**demo, "stages": json.loads(demo["stages"]), "kind": _board_kind(boards, demo["board"])} for demo in demos],
        "published": _published_table(rows),
        "profiles": profile_sections(benches),
        "compare": _newest_compare(folder),
        "notes": [*record["notes"], *NOTES],
        "timings": [{"phase": phase, **{key: _seconds(span.get(key)) for key in ("start_s", "end_s", "seconds")}}
                    for phase, span in sorted(record["timings"].items(), key=lambda item: item[1].get("start_s") or 0)],
        "viewer": viewer.is_file(),
        "fmt": {"ms": _ms, "pct": _pct, "mb": _mb, "score": _score},
    }
    html_environment, md_environment = _environments()
    html_plots = {name: {"alt": alt, "src": _data_uri("image/svg+xml", svg.encode())} for name, (alt, svg) in svgs.items()}
    html = html_environment.get_template("report.html.j2").render(
        **context, plots=html_plots, viewer_src=_data_uri("image/png", viewer.read_bytes()) if viewer.is_file() else None)
    md_plots = {name: {"alt": alt, "src": f"plots/{name}.svg"} for name, (alt, _) in svgs.items()}
    markdown = md_environment.get_template("report.md.j2").render(**context, plots=md_plots, viewer_src="demo/viewer.png")
    return [atomic_write_text(out / "report.html", html), atomic_write_text(out / "report.md", markdown)]


def _conversion_view(conversion: dict) -> dict:
    """A conversion row in the shape comparison_cells reads."""
    return {**conversion, "board": None, "emulated": False, "fallback": False, "source": None, "labels": [], "backend": None,
            "published": [], "check_passed": json.loads(conversion["record"]).get("host_check_passed")}
