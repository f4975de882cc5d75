"""The task registry: every task module found by discovery, each complete, and the drivers' answers read off it."""

from __future__ import annotations

import numpy as np
import pytest

from edgeship_runtime import tasks
from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.tasks.base import QUANT_MODES
from edgeship_runtime.tasks.tolerances import GENERIC_GATES


def test_every_task_module_is_found_once_with_the_fallback_last():
    names = tasks.names()
    assert set(names) >= {"classify", "detect", "segment", "ocr-rec", "generic"} and len(set(names)) == len(names)
    assert names[-1] == tasks.fallback().name == "generic"
    assert [task.name for task in tasks.all_tasks() if task.is_fallback] == ["generic"]


@pytest.mark.parametrize("task", tasks.all_tasks(), ids=lambda task: task.name)
def test_each_task_declares_its_tolerances_with_a_reason_per_mode_and_a_headline_it_measures(task):
    assert set(task.tolerances) == set(task.tolerance_reasons) == set(QUANT_MODES)
    assert all(reason for reason in task.tolerance_reasons.values())
    for quant in QUANT_MODES:
        gates = tasks.default_tolerances(task.name, quant)
        assert set(task.gates) <= set(gates) and set(gates) - set(task.gates) <= set(GENERIC_GATES)
    if task.headline.metric:
        assert task.headline.metric in {gate.metric for gate in task.gates.values()}
    assert task.kind and (task.label_format is None) == (task.headline.label_metric is None)


def test_unknown_names_fail_in_one_line_listing_the_tasks():
    with pytest.raises(ArtifactError, match=r"^m.json: unknown task 'track'; the tasks are classify, .*generic$"):
        tasks.get("track", "m.json")
    assert tasks.extra_of("track") is None  # a newer manifest's task fails later, with its own line


def test_what_the_controller_asks():
    assert tasks.get("detect").headline == ("f1", "detection F1", "f1", "detection F1")
    assert tasks.extra_of("ocr-rec") == "vision" and tasks.extra_of("classify") is None
    assert tasks.implied(True) == "classify" and tasks.implied(False) == "generic"
    assert tasks.implied(False, np.array([0, 2, 1])) == "classify" and tasks.implied(False, np.zeros((2, 6))) == "generic"
    # the tables callers imported before, read off the registry
    assert tasks.HEADLINES["segment"] == tasks.get("segment").headline and tasks.TASK_EXTRAS == {"detect": "vision", "segment": "vision",
                                                                                                "ocr-rec": "vision"}
    assert tasks.DECODERS == ("db", "yolov8", "yolov5", "yolov8_dfl", "ssd")
