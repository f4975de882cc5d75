"""The example models hash the same on every build (conversions.lock records their sha256 as
inputs, and a fresh clone makes them again), and `invoke build`/`verify` of edgeship's own conversions
file make the missing ones first. Digits only: it is the one trained here (fixed seeds, one
thread), the others are pinned wheels or random weights from the same seeds."""

from __future__ import annotations

import pytest
import tomllib

from edgeship.examples import build_examples
from edgeship.examples.project import make_missing_examples
from edgeship_runtime.files import sha256_file
from tests.support import ROOT

DIGITS = tomllib.loads((ROOT / "edgeship.toml").read_text())["models"]["digits"]


def hashes(folder):
    return {path.relative_to(folder).as_posix(): sha256_file(path) for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A repository root whose edgeship.toml names the digits example, made by make_missing_examples."""
    import edgeship.paths

    root = tmp_path_factory.mktemp("repo")
    (root / "edgeship.toml").write_text(f'[models.digits]\npath = "{DIGITS["path"]}"\nsha256 = "{DIGITS["sha256"]}"\n'
                                        '[models.elsewhere]\npath = "models/elsewhere.onnx"\n')
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(edgeship.paths, "REPO_ROOT", root)
        make_missing_examples(root / "edgeship.toml")
    return root


def test_verify_makes_the_missing_example_with_the_pinned_bytes(made):
    root = made
    assert sorted(path.name for path in (root / "examples").iterdir()) == ["digits"]  # models/elsewhere is the user's to make
    assert sha256_file(root / DIGITS["path"]) == DIGITS["sha256"]


def test_a_made_example_is_not_made_again(made, capsys, monkeypatch):
    import edgeship.paths

    root = made
    before = (root / DIGITS["path"]).stat().st_mtime_ns
    monkeypatch.setattr(edgeship.paths, "REPO_ROOT", root)
    make_missing_examples(root / "edgeship.toml")
    assert capsys.readouterr().out == "" and (root / DIGITS["path"]).stat().st_mtime_ns == before


def test_a_users_conversions_file_never_makes_examples(tmp_path):
    config = tmp_path / "edgeship.toml"
    config.write_text(f'[models.digits]\npath = "{DIGITS["path"]}"\nsha256 = "{DIGITS["sha256"]}"\n')
    make_missing_examples(config)  # not edgeship's own file: its models are the user's
    assert sorted(path.name for path in tmp_path.iterdir()) == ["edgeship.toml"]


def test_the_digits_example_is_the_same_bytes_when_built_again(made, tmp_path):
    root = made
    (again,) = build_examples(tmp_path, names=("digits",))
    assert hashes(again) == hashes(root / "examples" / "digits")
