"""`edgeship-runtime bench --scenario`: MLPerf's SingleStream, MultiStream and Offline on a board,
with what MLPerf reports for each, and the ways a board bench departs from MLPerf said in the JSON.

- SingleStream: one sample per query, the next issued when the last is answered; the 90th
  percentile latency with early stopping (edgeship_runtime.early_stopping), the query count and
  whether early stopping was met. The runs are the bench's steady phase, with at least 64 queries
  (the fewest for which early stopping can be met at the 90th percentile).
- MultiStream: 8 samples per query (MLPerf's), issued one after another at batch 1 (a board model
  is batch 1); the 99th percentile of the query latency with early stopping (at least 662 queries).
- Offline: the samples back to back; samples per second over the wall time of the whole phase
  (not 1 / mean latency: the time between calls counts, as in MLPerf).

MLPerf's minimum run of 600 s is scaled down to the bench's --min-s (a board bench is not an MLPerf
submission); --max-s can cut a run short, and then `met` says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from edgeship_runtime import early_stopping

SCENARIOS = ("single-stream", "multi-stream", "offline")
MLPERF_NAMES = {"single-stream": "SingleStream", "multi-stream": "MultiStream", "offline": "Offline"}
PERCENTILES = {"single-stream": 0.9, "multi-stream": 0.99}
MULTI_STREAM_SAMPLES = 8
MLPERF_MIN_DURATION_S = 600.0


def minimum_queries(scenario: str) -> int:
    """The fewest queries with which the scenario's early stopping can be met (1 for Offline)."""
    percentile = PERCENTILES.get(scenario)
    return early_stopping.minimum_queries(percentile) if percentile else 1


def query_loop(run_query: Callable[[], object], min_queries: int, min_s: float, max_s: float | None) -> tuple[list[float], float]:
    """Issue queries one after another until both `min_queries` and `min_s` are reached, or (with
    `max_s`) once max_s has passed, after one query; each query's seconds and the phase's wall time."""
    clock = time.perf_counter
    times: list[float] = []
    started = clock()
    while len(times) < min_queries or clock() - started < min_s:
        if max_s is not None and times and clock() - started >= max_s:
            break
        began = clock()
        run_query()
        times.append(clock() - began)
    return times, clock() - started


def _duration(elapsed_s: float, min_s: float) -> dict:
    return {"measured_s": elapsed_s, "minimum_s": min_s, "met": elapsed_s >= min_s, "mlperf_minimum_s": MLPERF_MIN_DURATION_S,
            "rule": f"MLPerf's {MLPERF_MIN_DURATION_S:.0f} s minimum duration is scaled down to --min-s ({min_s:g} s) for a board bench; "
                    "these are not MLPerf results"}


def latency_summary(scenario: str, query_seconds: list[float], elapsed_s: float, min_s: float) -> dict:
    """SingleStream or MultiStream: the early-stopping percentile of the query latencies."""
    percentile = PERCENTILES[scenario]
    found = early_stopping.estimate(query_seconds, percentile)
    key = f"p{round(percentile * 100)}_ms"
    return {
        "scenario": scenario, "mlperf_scenario": MLPERF_NAMES[scenario],
        "samples_per_query": MULTI_STREAM_SAMPLES if scenario == "multi-stream" else 1,
        "queries": found["queries"],
        key: None if found["estimate"] is None else found["estimate"] * 1000.0,
        "early_stopping": {"met": found["met"], "percentile": percentile, "confidence": found["confidence"],
                           "minimum_queries": found["minimum_queries"], "discarded": found["discarded"],
                           "plain_ms": None if found["plain"] is None else found["plain"] * 1000.0,
                           "method": "MLPerf inference rules' early stopping (LoadGen's), edgeship_runtime.early_stopping"},
        "duration": _duration(elapsed_s, min_s),
    }


def run(scenario: str, infer: Callable[[], object], min_runs: int, min_s: float, max_s: float | None = None) -> dict:
    """Measure `scenario` with `infer` (one sample, prepared input) as the system under test."""
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario {scenario!r} is not one of {', '.join(SCENARIOS)}")
    if scenario == "offline":
        times, elapsed = query_loop(infer, min_runs, min_s, max_s)
        return {"scenario": scenario, "mlperf_scenario": MLPERF_NAMES[scenario], "samples": len(times),
                "samples_per_s": len(times) / elapsed if elapsed > 0 else None, "duration": _duration(elapsed, min_s)}
    if scenario == "multi-stream":
        def run_query():
            for _ in range(MULTI_STREAM_SAMPLES):
                infer()
    else:
        run_query = infer
    times, elapsed = query_loop(run_query, max(min_runs, minimum_queries(scenario)), min_s, max_s)
    return latency_summary(scenario, times, elapsed, min_s)
