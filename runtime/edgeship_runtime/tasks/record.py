"""The task record in an artifact's manifest ("task"): what the model is for and how to read its output.

    {"name": "detect", "output": "output0", "decoder": "yolov8", "conf": 0.25, "iou": 0.45, "max_det": 300}

`validate` completes a record with its task's defaults and checks it against the model's output
shapes (the task module says how), so a record that cannot work fails at conversion time, on the
controller, not on the board.
"""

from __future__ import annotations

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.tasks import registry
from edgeship_runtime.tasks.base import REQUIRED, check_value, dims


def validate(record: dict | str | None, outputs: list[dict], labels: list[str] | None, where: str,
             inputs: list[dict] | None = None) -> dict:
    """The complete record (defaults filled in), or ArtifactError naming `where`, the value and the fix.
    `outputs` (and `inputs`, from which a task may read e.g. the image size) are the model's specs [{"name", "shape"}]."""
    record = {"name": registry.fallback().name} if record is None else {"name": record} if isinstance(record, str) else record
    if not isinstance(record, dict):
        raise ArtifactError(f"{where}: task must be a task name or an object such as {{\"name\": \"{registry.names()[0]}\"}}, not {record!r}")
    name = record.get("name")
    if not isinstance(name, str):
        raise ArtifactError(f"{where}: unknown task {name!r}; the tasks are {', '.join(registry.names())}")
    task = registry.get(name, where)
    output_names = [item["name"] for item in outputs]
    if not output_names:
        raise ArtifactError(f"{where}: the model has no outputs for task {name!r}")
    result = {"name": name, "output": record.get("output", output_names[0])}
    if result["output"] not in output_names:
        raise ArtifactError(f"{where}: task output {result['output']!r} is not an output of the model; the outputs are {output_names}")
    owner, allowed = task.parameters(record, where)
    if task.variant_key:
        result[task.variant_key] = owner
    unknown = sorted(set(record) - set(allowed) - {"name", "output", task.variant_key})
    if unknown:
        raise ArtifactError(f"{where}: unknown parameter(s) {unknown} for task {owner!r}; its parameters are {sorted(allowed) or 'none'}")
    for key, (default, kind) in allowed.items():
        if key in record and record[key] is not None:
            result[key] = check_value(key, record[key], kind, where)
        elif default is REQUIRED:
            raise ArtifactError(f"{where}: task {owner!r} needs the parameter {key!r}")
        else:
            result[key] = default
    task.check_shapes(result, {item["name"]: dims(item["shape"]) for item in outputs}, labels, where, inputs)
    return result
