"""generic: a model nothing says the purpose of, judged by every output's cosine and SNR (a small
output by its error relative to its range); the demo shows its output shapes."""

from __future__ import annotations

import numpy as np

from edgeship_runtime.tasks.base import Task


class Generic(Task):
    name = kind = "generic"
    generic_gates_always = True
    tolerances = {mode: {} for mode in ("fp32", "fp16", "dynamic", "int8")}
    tolerance_reasons = {mode: "the generic gates only (see tolerances.py)" for mode in tolerances}
    is_fallback = True

    def postprocess(self, record, outputs, labels, artifact_dir) -> dict:
        return {"kind": self.kind, "outputs": {key: list(np.shape(value)) for key, value in outputs.items()},
                "label": record["output"], "confidence": 0.0}


TASKS = (Generic(),)
