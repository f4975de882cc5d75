"""edgeship's own conversions.lock, committed beside edgeship.toml: it names every entry the file
expands into, each made from the model the file pins, and records nothing of the locking machine
in what `invoke verify` compares (so a fresh clone can verify against it). No Docker: the
conversions themselves are checked by `./dev verify` (README, "Verifying the committed lock")."""

from __future__ import annotations

import json

import pytest
import tomllib

from edgeship.convert.lockfile import LOCK_SCHEMA, read_lock
from edgeship.convert.project import load_project
from edgeship.convert.request import find_target, resolve_options
from tests.support import ROOT, stand_in_example_files

CONFIG = ROOT / "edgeship.toml"


@pytest.fixture(scope="module")
def lock():
    return read_lock(ROOT / tomllib.loads(CONFIG.read_text())["project"]["lock"])


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return load_project(stand_in_example_files(CONFIG, tmp_path_factory.mktemp("project")), check_sha=False)


def test_the_lock_names_every_entry_of_the_conversions_file_and_nothing_else(lock, project):
    assert lock["schema"] == LOCK_SCHEMA and lock["config"] == CONFIG.name
    missing, extra = sorted(set(project.entries) - set(lock["entries"])), sorted(set(lock["entries"]) - set(project.entries))
    assert not missing and not extra, (f"run `./dev build` and commit conversions.lock: {len(missing)} entries not locked "
                                       f"({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}), "
                                       f"{len(extra)} no longer in {CONFIG.name} ({', '.join(extra[:4])})")
    assert set(lock["made_on"]) == set(lock["entries"])


def test_each_entry_is_made_from_the_model_the_conversions_file_pins(lock, project):
    declared = tomllib.loads(CONFIG.read_text())["models"]
    for name, entry in project.entries.items():
        record = lock["entries"].get(name)
        if record is None:
            continue  # not locked: the test above names it
        table = declared[entry.model.key]
        assert (record["model"], record["target"], record["quant"]) == (entry.model.name or entry.model.key, entry.target, entry.quant), name
        assert record["inputs"]["source"] == {"path": table["path"], "sha256": table["sha256"]}, name
        for key in ("eval", "labels", "preprocess", "task"):
            if key in table:
                assert record["inputs"][key]["path"] == table[key], (name, key)
        needs_calibration = entry.quant in find_target(entry.target).needs_calibration
        assert ("calibration" in record["inputs"]) == needs_calibration, name
        if needs_calibration:
            assert record["inputs"]["calibration"]["path"] == table["calibration"] and record["inputs"]["calibration"]["samples"] > 0
        assert record["input_shapes"] == sorted(entry.model.input_shapes), name
        assert record["options"] == resolve_options(find_target(entry.target), entry.quant, entry.options), name


def test_what_verify_compares_names_nothing_of_the_locking_machine(lock):
    """Paths are relative to the project, images are named by their recipe (never by an image id
    or tag, which follow the base image each machine bootstraps), and the manifest is hashed
    without its image and cache key."""
    for name, entry in lock["entries"].items():
        compared = {key: value for key, value in entry.items() if key != "outputs"}
        text = json.dumps(compared)
        assert "/work/" not in text and "/tmp/" not in text and "/home/" not in text and "sha256:" not in text, name
        for record in entry["inputs"].values():
            assert "path" not in record or not record["path"].startswith("/"), name
        for image in entry["images"].values():
            assert set(image) == {"lock_sha256", "recipe_sha256", "base"}, name
        outputs = entry["outputs"]
        assert outputs["files"] and len(outputs["manifest_sha256"]) == 64, name
        # rk3588's compiler writes heap addresses into the .rknn: its outputs are checked by size, and the lock says why
        assert outputs["bytes_reproducible"] == (entry["target"] != "rk3588"), name
        assert outputs["bytes_reproducible"] or entry["note"], name
