"""`check` on manifests written before tasks existed: judged as their conversion judged them, the
gates they lack taken from their task's defaults (not refused with advice about a function)."""

from __future__ import annotations

import numpy as np

from edgeship_runtime.check import default_task, task_of, tolerances_of
from edgeship_runtime.tasks import compare, default_tolerances

OLD_GATES = {"min_cosine": 0.98, "min_top1_agreement": 0.9}  # what targets/base.py recorded then


def old_manifest(labels=None) -> dict:
    return {"outputs": [{"name": "y", "shape": [1, 4]}], "options": {"quant": "int8"}, "accuracy": {"tolerances": dict(OLD_GATES)},
            **({"labels": labels} if labels else {})}


def test_an_old_manifest_without_classes_is_generic_with_its_own_gates_and_the_missing_ones_filled():
    manifest = old_manifest()
    assert default_task(manifest) == {"name": "generic"}
    gates = tolerances_of(manifest, task_of(manifest))
    assert gates == {**default_tolerances("generic", "int8"), **OLD_GATES}
    sample = [{"y": np.array([[0.1, 0.7, 0.1, 0.1]], np.float32)}]
    assert compare(task_of(manifest), sample, sample, gates)["passed"]
    worse = [{"y": np.array([[0.7, 0.1, 0.1, 0.1]], np.float32)}]
    assert not compare(task_of(manifest), sample, worse, gates)["passed"]


def test_an_old_manifest_with_classes_is_a_classifier_and_a_new_one_keeps_exactly_its_gates():
    assert default_task(old_manifest(["a", "b", "c", "d"])) == {"name": "classify"}
    new = {**old_manifest(), "task": {"name": "generic"}, "accuracy": {"tolerances": {"min_cosine": 0.5}}}
    assert tolerances_of(new, task_of(new)) == {"min_cosine": 0.5}
