"""The summary and report print a metric over nothing as "not measurable", never as a score."""

from __future__ import annotations

from edgeship.convert.summary import percent_or_reason
from edgeship.report.publish import _metric


def test_a_none_metric_reads_not_measurable_with_its_reason():
    assert percent_or_reason({"f1": 0.975}, "f1") == "97.50%"
    assert percent_or_reason({"f1": None, "not_measurable": "fp32 finds no box on any sample"}, "f1") == \
        "not measurable (fp32 finds no box on any sample)"


def test_the_report_cell_of_an_unmeasured_metric():
    assert _metric({"metric": "detection F1", "metric_vs_fp32": None, "accuracy_passed": True}) == "detection F1 not measurable"
    assert _metric({"metric": None, "metric_vs_fp32": None, "accuracy_passed": True}) == "-"  # generic: no task metric
    assert _metric({"metric": "detection F1", "metric_vs_fp32": None, "accuracy_passed": None}) == "-"  # no conversion verdict
