"""Tasks by name, found by discovery: each module of this package that defines a task lists its
instance in `TASKS` (as backend modules list theirs in `BACKENDS`). Drivers and the controller ask
here (`get(name).headline`, `names()`, `extra_of(name)`), never branch on a task's name."""

from __future__ import annotations

import functools
import importlib
import pkgutil

import numpy as np

import edgeship_runtime.tasks as package
from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.tasks.base import Task


@functools.cache
def _registry() -> dict[str, Task]:
    found: dict[str, Task] = {}
    for module_info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package.__name__}.{module_info.name}")
        for task in getattr(module, "TASKS", ()):
            if task.name in found:
                raise RuntimeError(f"task {task.name!r} is defined twice (in {module.__name__} and before it)")
            found[task.name] = task
    return found


def all_tasks() -> list[Task]:
    return list(_registry().values())


def names() -> tuple[str, ...]:
    """Every task's name, in a stable order (the fallback last)."""
    return tuple(sorted(_registry(), key=lambda name: (_registry()[name].is_fallback, name)))


def get(name: str, where: str = "") -> Task:
    """The task called `name`, or ArtifactError listing the known ones (prefixed by `where`)."""
    registry = _registry()
    if name not in registry:
        raise ArtifactError(f"{where + ': ' if where else ''}unknown task {name!r}; the tasks are {', '.join(names())}")
    return registry[name]


def fallback() -> Task:
    """The task of a model nothing says the purpose of (judged by its raw outputs)."""
    return next(task for task in _registry().values() if task.is_fallback)


def implied(class_names: bool, labels: np.ndarray | None = None) -> str:
    """The task a model without a task record is taken for: the first that claims it given whether
    it names classes and its eval labels, else the fallback."""
    for task in _registry().values():
        if task.implied_by(class_names, labels):
            return task.name
    return fallback().name


def extra_of(name: str) -> str | None:
    """The runtime's pip extra a board needs to judge and read a task's outputs (None: numpy does);
    None too for a task this runtime does not know (a newer manifest fails later, with its own line)."""
    task = _registry().get(name)
    return task.extra if task else None
