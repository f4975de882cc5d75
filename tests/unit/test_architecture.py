"""The house's rules, checked on the real import graph (grimp, the graph import-linter uses):
three worlds whose dependencies point one way (controller -> in-image code -> board runtime),
and no import circle anywhere."""

from __future__ import annotations

import subprocess
import sys

import grimp
import pytest

WORLDS = ("edgeship", "targets", "edgeship_runtime")  # controller, in-image code, board runtime


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph(*WORLDS)


@pytest.mark.parametrize("lower, higher", [("edgeship_runtime", "edgeship"), ("edgeship_runtime", "targets"), ("targets", "edgeship")])
def test_no_world_imports_the_one_above_it(graph, lower, higher):
    chains = graph.find_shortest_chains(importer=lower, imported=higher, as_packages=True)
    assert not chains, f"{lower} imports {higher}: " + "; ".join(" -> ".join(chain) for chain in sorted(chains))


def test_there_is_no_import_circle(graph):
    packages = sorted(module for module in graph.modules if graph.find_children(module))
    circles = {package: breakers for package in packages if (breakers := graph.nominate_cycle_breakers(package))}
    assert not circles, f"import circles (imports that would break them): {circles}"


def test_every_module_imports_on_its_own():
    """Each module imported alone in a fresh interpreter: no module works only because another was imported first."""
    modules = sorted(m for m in grimp.build_graph(*WORLDS).modules if not m.endswith("__main__"))
    script = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    failures = []
    for module in modules:
        result = subprocess.run([sys.executable, "-c", script, module], capture_output=True, text=True)
        if result.returncode != 0:
            failures.append(f"{module}: {result.stderr.strip().splitlines()[-1]}")
    assert not failures, "\n".join(failures)


def test_the_lint_contracts_hold():
    """import-linter's contracts in pyproject.toml (the same rules, as `lint-imports` reports them)."""
    from importlinter.cli import lint_imports

    assert lint_imports() == 0
