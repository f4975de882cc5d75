"""The early-stopping estimate on hand-made latency lists with known answers, checked against the
definition with exact binomial sums, and against LoadGen itself where its wheel is installed."""

from __future__ import annotations

import math
import re
import threading
import time
from fractions import Fraction

import pytest

from edgeship_runtime.early_stopping import estimate, minimum_queries


def _binomial_cdf(t: int, queries: int, over: Fraction) -> Fraction:
    return sum((math.comb(queries, x) * over**x * (1 - over) ** (queries - x) for x in range(t + 1)), Fraction(0))


def test_minimum_query_counts_are_mlperfs():
    # the counts LoadGen prints ("Processed at least 64 queries", "would need ... 662") for p90 and p99
    assert minimum_queries(0.9) == 64
    assert minimum_queries(0.99) == 662


def test_too_few_queries_is_not_met():
    result = estimate([5.0] * 63, 0.9)
    assert result["met"] is False and result["estimate"] is None
    assert result["queries"] == 63 and result["minimum_queries"] == 64


def test_at_the_minimum_the_estimate_is_the_largest_latency():
    result = estimate(list(range(1, 65)), 0.9)
    assert result["met"] is True and result["estimate"] == 64 and result["discarded"] == 0


@pytest.mark.parametrize(("count", "expected", "discarded"), [(100, 98, 2), (1024, 945, 79)])
def test_known_answers(count, expected, discarded):
    latencies = list(range(count, 0, -1))  # unordered input: the estimate sorts
    result = estimate(latencies, 0.9)
    assert (result["estimate"], result["discarded"]) == (expected, discarded)
    assert result["plain"] == int(count * 0.9) + 1  # LoadGen's plain p90: sorted[floor(N * 0.9)]
    # the definition, exactly: t = discarded + 1 overlatency queries pass at 99 %, t + 1 do not
    t = discarded + 1
    assert _binomial_cdf(t, count, Fraction(1, 10)) < Fraction(1, 100) <= _binomial_cdf(t + 1, count, Fraction(1, 10))


def test_multi_stream_percentile_known_answer():
    # p99 over 1000 queries (MultiStream's percentile): t = 2 passes at 99 %, t = 3 does not
    result = estimate(list(range(1, 1001)), 0.99)
    assert (result["estimate"], result["discarded"], result["plain"]) == (999, 1, 991)
    assert _binomial_cdf(2, 1000, Fraction(1, 100)) < Fraction(1, 100) <= _binomial_cdf(3, 1000, Fraction(1, 100))


def test_the_estimate_is_conservative():
    latencies = [float(value) for value in range(1, 501)]
    result = estimate(latencies, 0.9)
    assert result["estimate"] > result["plain"]


def test_a_long_run_does_not_underflow():
    result = estimate(range(1, 200_001), 0.9)
    assert result["met"] and 180_000 < result["estimate"] < 181_000


@pytest.mark.parametrize("percentile", [0.0, 1.0, 1.5, -0.1])
def test_a_percentile_outside_zero_to_one_is_refused(percentile):
    with pytest.raises(ValueError, match="must each be between 0 and 1"):
        estimate([1.0] * 100, percentile)


def test_agrees_with_loadgen_for_the_same_latencies(tmp_path):
    """LoadGen's SingleStream run over a system whose k-th query takes the k-th given latency (a
    sleep): its early-stopping p90 and ours over the same list agree within 2 % (the sleep's
    overshoot is LoadGen's only extra)."""
    lg = pytest.importorskip("mlperf_loadgen")
    latencies_s = [0.020 + 0.0002 * ((k * 37) % 100) for k in range(100)]  # 20..39.8 ms, shuffled
    answered = []

    def issue(samples):
        for sample in samples:
            time.sleep(latencies_s[len(answered)])
            answered.append(sample.id)
            lg.QuerySamplesComplete([lg.QuerySampleResponse(sample.id, 0, 0)])

    sut = lg.ConstructSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(len(latencies_s), len(latencies_s), lambda indices: None, lambda indices: None)
    settings = lg.TestSettings()
    settings.scenario, settings.mode = lg.TestScenario.SingleStream, lg.TestMode.PerformanceOnly
    settings.min_query_count = settings.max_query_count = len(latencies_s)
    settings.min_duration_ms = 0
    settings.single_stream_expected_latency_ns = 20_000_000
    log = lg.LogSettings()
    log.log_output.outdir = str(tmp_path)
    # bounded: 100 queries of at most 40 ms is 4 s; a LoadGen that hangs fails the test instead of CI
    runner = threading.Thread(target=lg.StartTestWithLogSettings, args=(sut, qsl, settings, log), daemon=True)
    runner.start()
    runner.join(timeout=60)
    assert not runner.is_alive(), "LoadGen did not finish 100 queries within 60 s"
    lg.DestroyQSL(qsl)
    lg.DestroySUT(sut)
    summary = (tmp_path / "mlperf_log_summary.txt").read_text()
    assert "Early stopping satisfied: Yes" in summary
    found = re.search(r"Early stopping 90(?:\.0)?th percentile estimate: (\d+)", summary)
    assert found, summary
    theirs_s = int(found.group(1)) / 1e9
    ours = estimate(latencies_s, 0.9)
    assert ours["met"] and ours["queries"] == len(answered) == 100
    assert abs(ours["estimate"] - theirs_s) / theirs_s < 0.02, (ours["estimate"], theirs_s)
