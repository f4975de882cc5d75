"""The bad-input corpus as a whole: at least 120 kinds across `invoke convert`, `edgeship-runtime
check|bench|demo|prepare`, the store import and `invoke report`, each family named in the README.

Every corpus module under tests/unit/badinput/ (and the convert checks in
tests/unit/edgeship/convert/test_bad_input.py) lists its cases as KINDS, (family, kind) pairs,
and runs each with tests.support.badinput.assert_one_clean_line."""

from __future__ import annotations

import importlib
import pkgutil

from tests.support import ROOT

MODULES = ["tests.unit.edgeship.convert.test_bad_input", "tests.unit.runtime.demo.test_viewer_access"] + [
    f"tests.unit.badinput.{info.name}" for info in pkgutil.iter_modules([str(ROOT / "tests" / "unit" / "badinput")])]


def _kinds() -> list[tuple[str, str]]:
    kinds = []
    for name in MODULES:
        kinds += list(getattr(importlib.import_module(name), "KINDS", []))
    return kinds


def test_the_corpus_has_120_distinct_kinds():
    kinds = _kinds()
    assert len(set(kinds)) == len(kinds), "a kind is listed twice"
    assert len(kinds) >= 120, f"{len(kinds)} kinds"


def test_every_family_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    families = sorted({family for family, _ in _kinds()})
    missing = [family for family in families if f"`{family}`" not in readme]
    assert not missing, f"README's bad-input section misses the families {missing}"
