"""MLPerf's early-stopping percentile estimate, in pure Python (the board has no LoadGen: its
aarch64 release is an sdist only).

Where it comes from: the MLPerf Inference rules ("Early stopping") and LoadGen's
loadgen/early_stopping.cc (MinPassingQueriesFinder) and loadgen/results.cc
(PerformanceSummary::EarlyStopping), github.com/mlcommons/inference. Re-derived here, not copied.

The idea: a run of N queries is a sample of N independent draws; "the p-th percentile is at most
L" passes with confidence c when, had the true share of queries over L been 1 - p, seeing no more
than t overlatency queries among N would have had a probability below 1 - c. LoadGen walks t up
from 1 and keeps the largest t for which N queries are enough (the smallest passing query count
for t, plus t, is at most N), then reports the t-th largest latency. The smallest passing count
h(t) grows with t, so "h(t) + t <= N" is the same as "P[Binomial(N, 1 - p) <= t] < 1 - c", and the
binomial CDF is summed term by term until it reaches 1 - c: O(t) work, no search.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

CONFIDENCE = 0.99  # LoadGen's: results.cc, EarlyStopping (tolerance 0)


def _overlatency_allowance(queries: int, percentile: float, confidence: float) -> int:
    """The largest t >= 0 with P[Binomial(queries, 1 - percentile) <= t] < 1 - confidence
    (-1 when even t = 0 fails)."""
    over = 1.0 - percentile  # a query's chance to be over the percentile
    log_over, log_under = math.log(over), math.log(percentile)
    total, t = 0.0, -1
    while t + 1 <= queries:
        x = t + 1
        # the binomial term in log space: p**N underflows for long runs, its log does not
        term = math.exp(math.lgamma(queries + 1) - math.lgamma(x + 1) - math.lgamma(queries - x + 1)
                        + x * log_over + (queries - x) * log_under)
        if total + term >= 1.0 - confidence:
            break
        total, t = total + term, x
    return t


def minimum_queries(percentile: float, confidence: float = CONFIDENCE) -> int:
    """The fewest queries for which early stopping is met (LoadGen: h_min + 1, with t = 1)."""
    _check(percentile, confidence)
    queries = 2
    while _overlatency_allowance(queries, percentile, confidence) < 1:
        queries += 1
    return queries


def estimate(latencies: Sequence[float], percentile: float, confidence: float = CONFIDENCE) -> dict:
    """The early-stopping estimate of the `percentile` (0.9 for SingleStream, 0.99 for MultiStream)
    of `latencies` (any unit; the estimate is one of them). `met` is False when there are too few
    queries; then `estimate` is None and `minimum_queries` says how many are needed."""
    _check(percentile, confidence)
    ordered = sorted(latencies)
    count = len(ordered)
    needed = minimum_queries(percentile, confidence)
    result = {"percentile": percentile, "confidence": confidence, "queries": count, "minimum_queries": needed,
              # LoadGen's plain percentile: the sorted sample at index floor(N * p)
              "plain": ordered[int(count * percentile)] if count else None}
    if count < needed:
        return {**result, "met": False, "estimate": None, "discarded": None}
    allowed = _overlatency_allowance(count, percentile, confidence)
    # t overlatency queries allowed: the estimate is the t-th largest latency, t - 1 are discarded
    return {**result, "met": True, "estimate": ordered[count - allowed], "discarded": allowed - 1}


def _check(percentile: float, confidence: float) -> None:
    if not 0.0 < percentile < 1.0 or not 0.0 < confidence < 1.0:
        raise ValueError(f"percentile {percentile} and confidence {confidence} must each be between 0 and 1 (exclusive)")
