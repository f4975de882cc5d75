"""How close a converted model must stay to its fp32 source, per task and quantization mode.

Each key is a gate `compare` applies. Why these values:
- generic: cosine and signal-to-noise ratio (SNR = reference energy / error energy). For errors that
  look like noise, cosine ~ 1 - 1 / (2 * SNR), so cosine 0.9999 is about 37 dB, 0.999 about 27 dB,
  0.99 about 17 dB and 0.98 about 14 dB. The SNR gates sit 2 dB below those, so they do not tighten
  the cosine gate for noise, but they catch what cosine cannot see: a wrong scale or offset (an
  output doubled by a bad requantization keeps cosine 1.0 and has an SNR of 0 dB).
- classify: today's gates, unchanged: worst-sample cosine and top-1 agreement with fp32.
- detect: F1 of the converted model's boxes matched to the fp32 model's at IoU 0.5. fp32 should find
  the same boxes (0.99 leaves one box in a hundred to ties at a threshold); fp16 moves scores by
  ~1e-3, which flips the odd box sitting on the conf threshold (0.97); int8 moves boxes by a pixel
  or two and scores by a few percent, and 0.90 is what a usable int8 detector keeps.
- segment: mean IoU of the converted model's masks against fp32's; flips happen only on boundary
  pixels, so the same ladder as detect.
- ocr-rec: 1 - (edit distance / length of the fp32 text); a quantized recognizer that changes more
  than one character in ten (int8) or one in twenty (dynamic) reads different words.
"""

from __future__ import annotations

from edgeship_runtime.errors import ArtifactError

QUANT_MODES = ("fp32", "fp16", "dynamic", "int8")

DEFAULT_TOLERANCES = {
    "generic": {
        "fp32": {"min_cosine": 0.9999, "min_snr_db": 35.0},
        "fp16": {"min_cosine": 0.999, "min_snr_db": 25.0},
        "dynamic": {"min_cosine": 0.99, "min_snr_db": 15.0},
        "int8": {"min_cosine": 0.98, "min_snr_db": 12.0},
    },
    "classify": {
        "fp32": {"min_cosine": 0.9999, "min_top1_agreement": 0.99},
        "fp16": {"min_cosine": 0.999, "min_top1_agreement": 0.98},
        "dynamic": {"min_cosine": 0.99, "min_top1_agreement": 0.95},
        "int8": {"min_cosine": 0.98, "min_top1_agreement": 0.90},
    },
    "detect": {"fp32": {"min_f1": 0.99}, "fp16": {"min_f1": 0.97}, "dynamic": {"min_f1": 0.90}, "int8": {"min_f1": 0.90}},
    "segment": {"fp32": {"min_iou": 0.99}, "fp16": {"min_iou": 0.97}, "dynamic": {"min_iou": 0.90}, "int8": {"min_iou": 0.90}},
    "ocr-rec": {
        "fp32": {"min_char_agreement": 0.99},
        "fp16": {"min_char_agreement": 0.98},
        "dynamic": {"min_char_agreement": 0.95},
        "int8": {"min_char_agreement": 0.90},
    },
}


def default_tolerances(task: str, quant: str) -> dict:
    """The gates for `task` at quantization mode `quant` (a fresh dict: callers may override keys)."""
    if task not in DEFAULT_TOLERANCES:
        raise ArtifactError(f"no tolerances for task {task!r}; the tasks are {', '.join(DEFAULT_TOLERANCES)}")
    if quant not in QUANT_MODES:
        raise ArtifactError(f"no tolerances for quantization mode {quant!r}; the modes are {', '.join(QUANT_MODES)}")
    return dict(DEFAULT_TOLERANCES[task][quant])
