"""How close a converted model must stay to its fp32 source, per task and quantization mode.

Each key is a gate `compare` applies. A task module declares its own gates' limits and the reason
for each mode (`Task.tolerances`, `Task.tolerance_reasons`); every task also carries the generic
per-output gates below, which its `compare` applies always (generic, classify) or only as the
fallback when one of its own metrics is not measurable (a detector with no reference boxes).

The generic gates, and why these values:
- min_cosine, min_snr_db (SNR = reference energy / error energy). For errors that look like noise,
  cosine ~ 1 - 1 / (2 * SNR), so cosine 0.9999 is about 37 dB, 0.999 about 27 dB, 0.99 about 17 dB
  and 0.98 about 14 dB. The SNR gates sit 2 dB below those, so they do not tighten the cosine gate
  for noise, but they catch what cosine cannot see: a wrong scale or offset (an output doubled by a
  bad requantization keeps cosine 1.0 and has an SNR of 0 dB).
- max_range_error, for outputs of at most SMALL_OUTPUT_VALUES values per sample (a presence score, a
  handedness flag), which cosine cannot judge (the cosine of one number is its sign; of a 0 it is 0):
  the largest abs error over the output's range on the eval set (its largest |value| when it never
  changes). fp32 differs only by the order of operations: 0.1 %. fp16 keeps 11 significant bits
  (steps of ~0.05 %), a few steps deep in a network: 1 % (MediaPipe's hand flag moves by 0.2 %).
  int8 writes an output in 256 steps of its range and each layer adds a few: 5 % (dynamic,
  weights only) and 10 % (int8), about what the cosine gates of those modes allow for noise.
"""

from __future__ import annotations

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.tasks.base import QUANT_MODES

SMALL_OUTPUT_VALUES = 4  # an output with at most this many values per sample is judged by max_range_error

GENERIC_TOLERANCES = {
    "fp32": {"min_cosine": 0.9999, "min_snr_db": 35.0, "max_range_error": 0.001},
    "fp16": {"min_cosine": 0.999, "min_snr_db": 25.0, "max_range_error": 0.01},
    "dynamic": {"min_cosine": 0.99, "min_snr_db": 15.0, "max_range_error": 0.05},
    "int8": {"min_cosine": 0.98, "min_snr_db": 12.0, "max_range_error": 0.1},
}
GENERIC_GATES = tuple(GENERIC_TOLERANCES["fp32"])


def generic_tolerances(quant: str) -> dict:
    """The generic per-output gates at quantization mode `quant` (a fresh dict)."""
    _check_mode(quant)
    return dict(GENERIC_TOLERANCES[quant])


def default_tolerances(task: str, quant: str) -> dict:
    """The gates for `task` at quantization mode `quant`: its own, then the generic ones it uses
    (a fresh dict: callers may override keys)."""
    from edgeship_runtime.tasks import registry

    declared = registry.get(task, f"no tolerances for task {task!r}")
    _check_mode(quant)
    generic = {key: value for key, value in GENERIC_TOLERANCES[quant].items() if key in declared.generic_gates}
    return {**generic, **declared.tolerances.get(quant, {})}


def _check_mode(quant: str) -> None:
    if quant not in QUANT_MODES:
        raise ArtifactError(f"no tolerances for quantization mode {quant!r}; the modes are {', '.join(QUANT_MODES)}")
