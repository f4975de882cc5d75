"""No code outside a task's own module names the task (issue 26): drivers, the controller, the report
and the demo ask the registry (`tasks.get(name).headline`, `tasks.names()`, `tasks.extra_of(name)`).

The check reads every Python module under runtime/edgeship_runtime, edgeship/ and targets/ with `ast`
and flags each string constant that IS a task name (a whole literal: `== "detect"`, `{"name": "generic"}`,
a table keyed by names). Prose is not flagged: docstrings and messages that mention a task inside a
longer string are text for people, not a branch. Allowed:
- the module that defines the task (the registry finds it there);
- the task files examples write for their own models (edgeship/examples/: a literal that is the value
  of a "name" key, exactly what a user's task.json holds);
- ALLOWED below: the same word meaning something else, each with the reason.
README and docs are not scanned.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from edgeship_runtime import tasks

REPO = Path(__file__).resolve().parents[2]
SCANNED = (REPO / "runtime" / "edgeship_runtime", REPO / "edgeship", REPO / "targets")
EXAMPLES = REPO / "edgeship" / "examples"

# (path relative to the repository, name) -> why that literal is not the task
ALLOWED = {
    ("runtime/edgeship_runtime/cli.py", "detect"): "`edgeship-runtime detect`, the board-detection command",
    ("edgeship/report/store.py", "detect"): "the board's detect document (edgeship-runtime detect's output) in a fleet result",
    ("edgeship/report/fleet_table.py", "detect"): "the board's detect document (edgeship-runtime detect's output) in a fleet result",
}


def _own_module(task) -> Path:
    return Path(sys.modules[type(task).__module__].__file__ or "").resolve()


def _task_file_values(tree: ast.AST) -> set[int]:
    """ids of the constants that are the value of a "name" key in a dict literal (a task record)."""
    return {id(value) for node in ast.walk(tree) if isinstance(node, ast.Dict)
            for key, value in zip(node.keys, node.values) if isinstance(key, ast.Constant) and key.value == "name"}


def literal_uses(roots=SCANNED, names=None, base: Path = REPO) -> list[str]:
    """'path:line: "name"' for every whole string literal naming a task outside the allowed places."""
    names = set(names or tasks.names())
    owners = {task.name: _own_module(task) for task in tasks.all_tasks()}
    found = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            task_files = _task_file_values(tree) if path.is_relative_to(EXAMPLES) else set()
            relative = path.relative_to(base).as_posix()
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names):
                    continue
                if path.resolve() == owners.get(node.value) or id(node) in task_files or (relative, node.value) in ALLOWED:
                    continue
                found.append(f"{relative}:{node.lineno}: {node.value!r}")
    return found


def test_no_task_is_named_outside_its_module_the_registry_and_the_examples_task_files():
    assert literal_uses() == [], "ask edgeship_runtime.tasks (get(name), names(), extra_of(name), fallback(), implied(...)) instead"


def test_the_check_finds_a_planted_name(tmp_path):
    """The scan can fail: a driver that branches on a name is flagged; prose naming a task is not."""
    (tmp_path / "driver.py").write_text('def judge(record):\n    """Mentions "detect" in prose: fine."""\n'
                                         '    return record["name"] == "segment"\n')
    assert literal_uses(roots=(tmp_path,), names=("segment", "detect"), base=tmp_path) == ["driver.py:3: 'segment'"]


@pytest.mark.parametrize("name", ["classify", "detect", "ocr-rec"])
def test_an_example_may_name_its_task_only_in_a_task_file(name):
    tree = ast.parse(f'TASK = {{"name": "{name}"}}\nif record["name"] == "{name}": pass\n')
    task_files = _task_file_values(tree)
    flagged = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Constant) and node.value == name and id(node) not in task_files]
    assert flagged == [2]
