"""Comparing two runs of the results store: what got slower, bigger or less accurate.

`compare_runs` judges the NEW run against BASE row by row (the same board, model, target and
mode; the same conversion) and fails (exit code 1) on a regression beyond the thresholds:

- slower: the mean latency rose more than `latency_pct` AND lies outside both runs' p10-p90
  bands (above BASE's p90, and BASE's mean below NEW's p10), so run-to-run noise does not count,
  AND (with enough benchmarks to tell) beyond NOISE_SIGMAS of the fleet's run-to-run spread
  (`fleet_noise`): a band is a board's noise within one run, but a shared or throttling machine
  also drifts between runs. Measured on the simulated fleet (four boards on one 2-core VM, each
  benched alone on one thread): unchanged re-runs moved ppocr-det +14% on one board and -15% on
  another, with p10-p90 bands of about +-5%.
  bench.py records no p10 yet: it is estimated as p50 - (p90 - p50), never below the fastest run
  (latency's lower tail is the shorter one, so the estimate errs towards a wider band).
  Benchmarks of fewer than store.SAMPLE_RUNS runs (an emulated board's sample) have no band and
  are not judged; the controller's own short benchmark has only mean and p90, and is judged on those.
- not judged across clocks: a run whose clocks were held (`bench --lock-clocks`) against one whose
  were not, or other governors, is listed as "clocks differ" naming both, never as slower or faster.
- lower throughput: multi-instance throughput fell more than `throughput_pct`.
- more memory: peak RSS rose more than `rss_pct`.
- bigger: the artifact grew more than `size_pct`.
- less accurate: the task metric against fp32 or the accuracy against labels fell more than
  `accuracy_points` percentage points; a conversion no longer within its tolerances; a board's
  check that passed and now fails.

Rows that disappeared are listed (a board that brought nothing home) but do not fail the
comparison: the main job fails such a run on its own.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from edgeship.errors import EdgeshipError
from edgeship.report import store
from edgeship.report.clocks import clocks_differ
from edgeship.report.markdown import md_text
from edgeship_runtime.files import atomic_write_text

DEFAULT_THRESHOLDS = {"latency_pct": 5.0, "throughput_pct": 10.0, "rss_pct": 25.0, "size_pct": 1.0, "accuracy_points": 1.0}


@dataclass
class Finding:
    kind: str      # slower, faster, lower throughput, more memory, bigger, less accurate, check failed, missing
    key: str       # which row: board, model, target and mode (or the conversion)
    before: str
    now: str
    why: str


def parse_thresholds(values: list[str] | None) -> dict[str, float]:
    thresholds = dict(DEFAULT_THRESHOLDS)
    for value in values or []:
        key, _, number = value.partition("=")
        if key not in thresholds:
            raise EdgeshipError(f"--threshold {value}: unknown threshold {key!r}; use one of "
                                f"{', '.join(f'{k}={v:g}' for k, v in DEFAULT_THRESHOLDS.items())}")
        try:
            thresholds[key] = float(number)
        except ValueError:
            raise EdgeshipError(f"--threshold {value}: {number!r} is not a number; e.g. --threshold {key}={DEFAULT_THRESHOLDS[key]:g}") from None
        if not math.isfinite(thresholds[key]) or thresholds[key] < 0:
            raise EdgeshipError(f"--threshold {value}: a threshold is a finite number, not negative; "
                                f"e.g. --threshold {key}={DEFAULT_THRESHOLDS[key]:g}")
    return thresholds


def band(bench: dict) -> tuple[float, float]:
    """The run's p10-p90 latency band (p10 estimated where bench.py did not record it; see the module's note)."""
    mean = bench["mean_ms"]
    high = bench.get("p90_ms") or mean
    low = bench.get("p10_ms")
    if low is None and bench.get("p50_ms") is not None and bench.get("p90_ms") is not None:
        low = max(bench.get("min_ms") or 0.0, 2 * bench["p50_ms"] - bench["p90_ms"])
    return (mean if low is None else min(low, mean)), max(high, mean)


# The fleet's run-to-run spread counts once this many benchmarks are compared; a move must then
# exceed this many robust sigmas of it (about 1 in 700 unchanged rows by chance, one-sided).
MIN_NOISE_ROWS = 6
NOISE_SIGMAS = 3.0


def judged(base: dict, new: dict) -> bool:
    """Both benchmarks have a mean and a band (not an emulated board's few-run sample)."""
    if not base.get("mean_ms") or not new.get("mean_ms"):
        return False
    return not any(run.get("runs") is not None and run["runs"] < store.SAMPLE_RUNS for run in (base, new))


def kept(base: dict, new: dict) -> bool:
    """NEW reports BASE's very measurement (the main job keeps the host's figures of an unchanged
    artifact, runtime and machine): the same mean over the same number of runs, which no second
    measurement repeats to the last bit. It says nothing about noise or change."""
    return base.get("mean_ms") == new.get("mean_ms") and base.get("runs") == new.get("runs")


def measured_twice(base: dict, new: dict) -> bool:
    """A pair that tells the run-to-run spread: judged, and two measurements, not one kept."""
    return judged(base, new) and not kept(base, new)


def fleet_noise(pairs: list[tuple[dict, dict]]) -> float | None:
    """The run-to-run spread of mean latency over every benchmark compared: a robust sigma of
    log(new/base) (1.4826 x the median absolute deviation, which a few rows that really moved do
    not inflate), or None with fewer than MIN_NOISE_ROWS pairs (the stdlib's median is enough for
    a few dozen numbers)."""
    ratios = [math.log(new["mean_ms"] / base["mean_ms"]) for base, new in pairs if measured_twice(base, new)]
    if len(ratios) < MIN_NOISE_ROWS:
        return None
    centre = statistics.median(ratios)
    return 1.4826 * statistics.median(abs(ratio - centre) for ratio in ratios)


def latency_change(base: dict, new: dict, pct: float, noise: float | None = None) -> str | None:
    """'slower' or 'faster' when the mean moved beyond `pct`, outside both runs' p10-p90 bands and,
    given the fleet's run-to-run sigma `noise` (log scale), beyond NOISE_SIGMAS of it; else None."""
    if not judged(base, new):
        return None
    if noise is not None and abs(math.log(new["mean_ms"] / base["mean_ms"])) <= NOISE_SIGMAS * noise:
        return None
    (base_low, base_high), (new_low, new_high) = band(base), band(new)
    if new["mean_ms"] > base["mean_ms"] * (1 + pct / 100) and new["mean_ms"] > base_high and base["mean_ms"] < new_low:
        return "slower"
    if new["mean_ms"] < base["mean_ms"] * (1 - pct / 100) and new["mean_ms"] < base_low and base["mean_ms"] > new_high:
        return "faster"
    return None


def noise_line(noise: float | None, rows: int) -> str:
    if noise is None:
        return f"Too few benchmarks ({rows}) to measure the run-to-run spread; latency judged on the bands and latency_pct."
    return (f"Run-to-run spread of the fleet's latency: sigma {math.expm1(noise):.1%} over {rows} benchmarks; "
            f"a latency move counts beyond {NOISE_SIGMAS:g} sigma ({math.expm1(NOISE_SIGMAS * noise):.1%}).")


def _ms(value) -> str:
    return "-" if value is None else f"{value:.3g} ms"


def _bench_key(row: dict) -> str:
    """A board's model as it was meant to run (a board that fell back to a CPU artifact keeps its key)."""
    return f"{row['board']} {row['model']} {row.get('requested_target') or row['target']} {row.get('requested_quant') or row['quant']}"


def _ran(row: dict) -> str:
    return f"{row['target']} {row['quant']} on {row.get('backend') or '?'}" + (" (CPU fallback)" if row.get("fallback") else "")


def _conversion_key(row: dict) -> str:
    options = json.loads(row.get("options") or "{}")
    return f"{row['model']} {row['target']} {row['quant']}" + (f" {options}" if options else "")


def _same_run(before: dict, now: dict) -> bool:
    return (before["target"], before["quant"], bool(before.get("fallback"))) == (now["target"], now["quant"], bool(now.get("fallback")))


def _same_clocks(before: dict, now: dict) -> bool:
    return clocks_differ(before.get("record"), now.get("record")) is None


def bench_noise(base: dict[str, list[dict]], new: dict[str, list[dict]]) -> tuple[float | None, int]:
    """fleet_noise over the benchmarks both runs measured of the same artifact, and how many those are."""
    new_benches = {_bench_key(row): row for row in new["benches"]}
    pairs = [(row, new_benches[_bench_key(row)]) for row in base["benches"]
             if _bench_key(row) in new_benches and _same_run(row, new_benches[_bench_key(row)])
             and _same_clocks(row, new_benches[_bench_key(row)])]
    return fleet_noise(pairs), sum(measured_twice(*pair) for pair in pairs)


def compare_records(base: dict[str, list[dict]], new: dict[str, list[dict]], thresholds: dict[str, float],
                    noise: float | None) -> tuple[list[Finding], list[Finding]]:
    """(regressions, other findings: improvements and missing rows) between two runs' rows by
    table; `noise` is bench_noise's sigma of the same two runs."""
    regressions: list[Finding] = []
    others: list[Finding] = []
    base_benches = {_bench_key(row): row for row in base["benches"]}
    new_benches = {_bench_key(row): row for row in new["benches"]}
    for key, before in base_benches.items():
        now = new_benches.get(key)
        if now is None:
            others.append(Finding("missing", key, _ms(before["mean_ms"]), "-", "benchmarked in the base run, not in this one"))
            continue
        if not _same_run(before, now):
            # another artifact ran: its latency is not comparable; running on the CPU instead is itself a regression
            worse = bool(now.get("fallback")) and not before.get("fallback")
            (regressions if worse else others).append(Finding("CPU fallback" if worse else "ran otherwise", key, _ran(before), _ran(now),
                                                                (now.get("fallback_reason") or "")[:160] if worse else "another artifact ran"))
            continue
        clocks = clocks_differ(before.get("record"), now.get("record"))
        if clocks:
            # a move between a held and a floating clock (or other governors) is the clocks', not the artifact's
            others.append(Finding("clocks differ", key, f"{_ms(before['mean_ms'])}, {clocks[0]}", f"{_ms(now['mean_ms'])}, {clocks[1]}",
                                  f"latency not judged: the base run had {clocks[0]}, this one {clocks[1]}; "
                                  "hold the clocks in both (edgeship_bench_lock_clocks) or in neither"))
        change = None if clocks else latency_change(before, now, thresholds["latency_pct"], noise)
        if change:
            beyond = "" if noise is None else f" and beyond {NOISE_SIGMAS:g} sigma of the fleet's run-to-run spread"
            finding = Finding(change, key, f"{_ms(before['mean_ms'])} (p90 {_ms(before['p90_ms'])})",
                              f"{_ms(now['mean_ms'])} (p90 {_ms(now['p90_ms'])})",
                              f"mean {now['mean_ms'] / before['mean_ms'] - 1:+.1%}, outside both runs' p10-p90 bands{beyond}")
            (regressions if change == "slower" else others).append(finding)
        if before.get("throughput_fps") and now.get("throughput_fps") and \
                now["throughput_fps"] < before["throughput_fps"] * (1 - thresholds["throughput_pct"] / 100):
            regressions.append(Finding("lower throughput", key, f"{before['throughput_fps']:.1f} FPS", f"{now['throughput_fps']:.1f} FPS",
                                       f"{now['throughput_fps'] / before['throughput_fps'] - 1:+.1%} (threshold -{thresholds['throughput_pct']:g}%)"))
        if before.get("peak_rss_kb") and now.get("peak_rss_kb") and now["peak_rss_kb"] > before["peak_rss_kb"] * (1 + thresholds["rss_pct"] / 100):
            regressions.append(Finding("more memory", key, f"{before['peak_rss_kb'] / 1024:.0f} MB", f"{now['peak_rss_kb'] / 1024:.0f} MB",
                                       f"peak RSS {now['peak_rss_kb'] / before['peak_rss_kb'] - 1:+.1%} (threshold +{thresholds['rss_pct']:g}%)"))

    base_conversions = {_conversion_key(row): row for row in base["conversions"]}
    new_conversions = {_conversion_key(row): row for row in new["conversions"]}
    points = thresholds["accuracy_points"] / 100
    for key, before in base_conversions.items():
        now = new_conversions.get(key)
        if now is None:
            others.append(Finding("missing", key, "converted", "-", "converted in the base run, not in this one"))
            continue
        if before.get("size_bytes") and now.get("size_bytes") and now["size_bytes"] > before["size_bytes"] * (1 + thresholds["size_pct"] / 100):
            regressions.append(Finding("bigger", key, f"{before['size_bytes']:,} B", f"{now['size_bytes']:,} B",
                                       f"{now['size_bytes'] / before['size_bytes'] - 1:+.1%} (threshold +{thresholds['size_pct']:g}%)"))
        for column, name_column in (("metric_vs_fp32", "metric"), ("labelled_converted", "label_metric")):
            if before.get(column) is not None and now.get(column) is not None and now[column] < before[column] - points:
                regressions.append(Finding("less accurate", key, f"{before[name_column]} {before[column]:.2%}",
                                           f"{now[name_column]} {now[column]:.2%}",
                                           f"{(now[column] - before[column]) * 100:+.2f} points (threshold -{thresholds['accuracy_points']:g})"))
        if before.get("accuracy_passed") and now.get("accuracy_passed") == 0:
            regressions.append(Finding("less accurate", key, "within tolerance", "NOT within tolerance", "the conversion's accuracy check now fails"))

    new_checks = {(row["board"], row["model"]): row for row in new["checks"]}
    for before in base["checks"]:
        now = new_checks.get((before["board"], before["model"]))
        if now is not None and before["passed"] and not now["passed"]:
            regressions.append(Finding("check failed", f"{before['board']} {before['model']}", "pass", "FAIL",
                                       "; ".join(json.loads(now.get("failed") or "[]")) or "the board's accuracy check fails"))
    return regressions, others


def _records(results: Path, run_id: str) -> dict[str, list[dict]]:
    return {table: store.table_rows(results, table, run_id) for table in ("benches", "conversions", "checks")}


def _import_if_there(results: Path, name: str | None) -> None:
    if name and (results / name).is_dir():
        store.import_run(results, results / name)


def render(base: str, new: str, regressions: list[Finding], others: list[Finding], thresholds: dict[str, float], noise: str = "") -> str:
    lines = [f"# edgeship run {md_text(new)} against {md_text(base)}", "",
             f"{len(regressions)} regression(s) beyond the thresholds ({', '.join(f'{k}={v:g}' for k, v in thresholds.items())}).", ""]
    if noise:
        lines += [noise, ""]
    for title, findings in (("Regressions", regressions), ("Other changes", others)):
        if findings:
            lines += [f"## {title}", "", "| what | which | before | now | why it counts |", "|---|---|---|---|---|"]
            lines += [f"| {f.kind} | {md_text(f.key)} | {md_text(f.before)} | {md_text(f.now)} | {md_text(f.why)} |" for f in findings]
            lines.append("")
    return "\n".join(lines)


def compare_runs(results: Path, base: str | None, new: str | None, tag: str | None = None, thresholds: list[str] | None = None) -> int:
    """Compare run NEW (default: the newest) with BASE (a run id or tag; default: the run before
    NEW). Prints what got slower, bigger or less accurate, writes results/<new>/compare-<base>.md
    and .json, and returns 1 on a regression, else 0. With `tag`, names the run (NEW, else BASE,
    else the newest) as that tag instead of comparing."""
    results = Path(results)
    limits = parse_thresholds(thresholds)
    for name, what in ((base, "--base"), (new, "--new"), (tag, "--tag")):
        if name is not None:
            store.check_run_name(name, what)
    for name in (new, base):
        _import_if_there(results, name)
    if new is None:
        folders = store.run_folders(results)
        if folders:
            store.import_run(results, folders[-1])
    if tag:
        run_id = store.resolve_run(results, new or base)
        store.set_tag(results, tag, run_id)
        print(f"edgeship: run {run_id} is now tagged {tag!r}; compare against it with `invoke compare --base {tag}`")
        return 0
    new_id = store.resolve_run(results, new)
    if base is None:
        earlier = [folder for folder in store.run_folders(results) if folder.name < new_id]
        if earlier:
            store.import_run(results, earlier[-1])
        base_id = store.previous_run(results, new_id)
        if base_id is None:
            print(f"edgeship: run {new_id} is the first in {store.location(results)}; nothing to compare it with")
            return 0
    else:
        base_id = store.resolve_run(results, base)
    if base_id == new_id:
        raise EdgeshipError(f"BASE and NEW are the same run ({new_id}); name two runs, "
                            f"e.g. `invoke compare --base {base or 'baseline'} --new <newer run id>`")
    base_rows, new_rows = _records(results, base_id), _records(results, new_id)
    noise, judged_rows = bench_noise(base_rows, new_rows)
    regressions, others = compare_records(base_rows, new_rows, limits, noise)
    text = render(base_id, new_id, regressions, others, limits, noise_line(noise, judged_rows))
    folder = results / new_id
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / f"compare-{base_id}.md", text + "\n")
    atomic_write_text(folder / f"compare-{base_id}.json", json.dumps(
        {"base": base_id, "new": new_id, "thresholds": limits,
         "latency_noise": {"sigma": None if noise is None else math.expm1(noise), "benchmarks": judged_rows, "sigmas": NOISE_SIGMAS},
         "regressions": [asdict(f) for f in regressions],
         "improvements": [asdict(f) for f in others if f.kind == "faster"], "other": [asdict(f) for f in others]}, indent=2) + "\n")
    print(text)
    print(f"edgeship: {len(regressions)} regression(s); written to {folder / f'compare-{base_id}.md'}")
    return 1 if regressions else 0
