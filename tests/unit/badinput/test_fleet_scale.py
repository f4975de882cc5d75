"""Bad-input corpus, family `fleet scale`: `invoke sim.up --light N` (light simulated boards) and
`invoke collection` (the Ansible collection). Each is refused in one line naming the value and the
fix, before a container starts or a file is written."""

from __future__ import annotations

import pytest

from tests.support.badinput import assert_one_clean_line, invoke_cli

PREFIX = "edgeship: error: "
CASES = [
    ("light count too large", ["--light", "100"], r"--light '100' is out of range; give a whole number from 0 to 99"),
    ("light count not a number", ["--light", "two"], r"--light 'two' is not a number"),
    ("light count negative", ["--light", "-3"], r"--light '-3' is out of range"),
    ("light prefix unsafe", ["--light", "2", "--light-prefix", "x/../y"], r"--light-prefix .*x/\.\./y"),
    ("light ports past 65535", ["--light", "24", "--light-port", "65520"], r"--light-port 65520: the boards take ports 65521-65544"),
    ("light port base not a number", ["--light", "2", "--light-port", "high"], r"--light-port 'high' is not a number"),
]
KINDS = [("fleet scale", kind) for kind, _, _ in CASES] + [("fleet scale", "collection out is a file")]


@pytest.mark.parametrize(("kind", "args", "pattern"), CASES, ids=[kind for kind, _, _ in CASES])
def test_bad_light_boards_are_refused_in_one_line_before_any_container(tmp_path, kind, args, pattern):
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[sim]\n")
    result = invoke_cli("sim.up", "--inventory", str(inventory), *args)
    assert_one_clean_line(result, PREFIX, pattern)
    assert not (tmp_path / ".sim").exists()


def test_a_collection_out_that_is_a_file_is_refused_in_one_line(tmp_path):
    out = tmp_path / "collection"
    out.write_text("not a folder")
    result = invoke_cli("collection", "--out", str(out))
    assert_one_clean_line(result, PREFIX, r"--out .*collection is not a folder \(it is a file now\); check the path")
    assert out.read_text() == "not a folder"
