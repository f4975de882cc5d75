"""The main job's host check and timing of each artifact: measured once, kept beside the
artifacts with their fingerprint, reused (and said to be) while nothing changed, measured again
when the artifact's files change."""

from __future__ import annotations

import json
import shutil

import numpy as np


def test_host_figures_are_kept_and_reused_until_the_artifact_changes(conversions, tmp_path):
    from edgeship.main_job import HOST_RECORDS, conversion_row

    artifact = tmp_path / "artifacts" / conversions("digits", "int8").name
    shutil.copytree(conversions("digits", "int8"), artifact)
    first = conversion_row(artifact, 1.0)
    assert first["host_check_passed"] is True and first["host_mean_ms"] > 0 and "host_note" not in first
    record = artifact.parent / HOST_RECORDS / f"{artifact.name}.json"
    assert json.loads(record.read_text())["report"]["host_mean_ms"] == first["host_mean_ms"]

    again = conversion_row(artifact, 1.0)
    assert again["host_mean_ms"] == first["host_mean_ms"] and again["host_runs"] == first["host_runs"]
    assert again["host_note"].startswith("kept from ") and "same artifact, runtime and machine" in again["host_note"]

    with np.load(artifact / "reference" / "outputs.npz") as data:
        outputs = {name: data[name] for name in data.files}
    np.savez(artifact / "reference" / "outputs.npz", **{name: value[:, ::-1].copy() for name, value in outputs.items()})
    changed = conversion_row(artifact, 1.0)  # its files no longer match: checked and timed again, and it fails
    assert changed["host_check_passed"] is False and "host_note" not in changed
