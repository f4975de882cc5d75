"""images.load refuses an archive it cannot trust before the engine sees it: none for this
recipe, a record that is not one, a tar that is not the one the record names (truncated by a
cache, or replaced). No Docker: every refusal comes before the engine is asked (client None)."""

from __future__ import annotations

import hashlib
import json

import pytest

from edgeship.errors import EdgeshipError
from edgeship.images.build import archive_name, load, recipe_sha256
from edgeship.images.locks import load_spec


@pytest.fixture
def spec():
    return load_spec("onnx")


def test_the_archive_is_named_by_the_recipe_a_checkout_computes(spec):
    assert archive_name(spec) == f"onnx-{recipe_sha256(spec)[:16]}"


def test_no_archive_for_this_recipe_is_one_line(spec, tmp_path):
    with pytest.raises(EdgeshipError, match=r"^no image archive of onnx's recipe in .* \(.*\.json: FileNotFoundError\); save it on a "
                                            r"machine that built it \(`invoke images.save --target onnx --out DIR`\) or build it here$"):
        load(None, spec, str(tmp_path))


def test_an_archive_that_is_not_the_recorded_one_is_refused_before_loading(spec, tmp_path):
    stem = tmp_path / archive_name(spec)
    (stem.parent / f"{stem.name}.base.tar").write_bytes(b"base")
    (stem.parent / f"{stem.name}.tar").write_bytes(b"truncated")
    record = {"tag": "edgeship/onnx:x", "key": "k", "base": "b", "base_sha256": hashlib.sha256(b"base").hexdigest(),
              "sha256": hashlib.sha256(b"whole").hexdigest()}
    (stem.parent / f"{stem.name}.json").write_text(json.dumps(record))
    with pytest.raises(EdgeshipError, match=r"onnx-[0-9a-f]{16}\.tar is missing or not the archive .*\.json records \(sha256\); "
                                            r"save the image again$"):
        load(None, spec, str(tmp_path))
    (stem.parent / f"{stem.name}.json").write_text("[]")
    with pytest.raises(EdgeshipError, match=r"\(.*\.json: TypeError\)"):
        load(None, spec, str(tmp_path))
