"""ocr-rec: a CTC text recognizer [N, T, K] (PP-OCR rec); character agreement with fp32's reading and
character accuracy against the texts of an eval set (helpers in `text`)."""

from __future__ import annotations

import numpy as np

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.tasks.base import Gate, Headline, Task, not_measurable, shape_text
from edgeship_runtime.tasks.text import agreement, ctc_decode, ctc_greedy, to_text


class OcrRec(Task):
    name = "ocr-rec"
    kind = "text"
    headline = Headline("char_agreement", "character agreement", "char_accuracy", "character accuracy")
    extra = "vision"
    gates = {"min_char_agreement": Gate("char_agreement", "character agreement with fp32's text")}
    tolerances = {"fp32": {"min_char_agreement": 0.99}, "fp16": {"min_char_agreement": 0.98},
                  "dynamic": {"min_char_agreement": 0.95}, "int8": {"min_char_agreement": 0.90}}
    tolerance_reasons = {
        "fp32": "the same graph: a character in a hundred may flip between two tied classes",
        "fp16": "fp16 flips near-tied steps: two characters in a hundred",
        "dynamic": "a recognizer that changes more than one character in twenty reads different words",
        "int8": "a quantized recognizer that changes more than one character in ten reads different words",
    }
    label_format = "unicode strings [N] (one per sample)"
    reads_text = True

    def check_shapes(self, record, shapes, labels, where, inputs) -> None:
        shape = shapes[record["output"]]
        what = f"{where}: task {self.name!r} reads output {record['output']!r} of shape {shape_text(shape)}"
        if len(shape) != 3:
            raise ArtifactError(f"{what}; {self.name} needs a CTC output [N, T, K]")
        if not labels:
            raise ArtifactError(f"{where}: {self.name} needs the character list as the artifact's labels (index 0 the CTC blank); pass --labels")
        if shape[2] is not None and len(labels) != shape[2]:
            raise ArtifactError(f"{what}, but the character list has {len(labels)} entries; it needs {shape[2]} (the blank, the characters "
                                "and, for PP-OCR, a final ' ')")

    def metrics(self, record, reference, converted, artifact_dir) -> dict:
        output = record["output"]

        def read(samples: list[dict]) -> list[list[int]]:  # class ids: no character list is needed to compare two readings
            return [ids for sample in samples for ids, _ in ctc_decode(sample[output])]

        figures = agreement(read(reference), read(converted), f"{self.name}'s character agreement")
        if not figures["reference_chars"]:
            return not_measurable("fp32 reads no text on any sample", "char_agreement", "exact_agreement",
                                  **{k: v for k, v in figures.items() if k not in ("char_agreement", "exact_agreement")})
        return figures

    def check_labels(self, record, labels, samples, where) -> None:
        found = f"{where}: labels are {labels.dtype} {list(labels.shape)}"
        if labels.ndim == 0 or labels.shape[0] != samples:
            raise ArtifactError(f"{found} for {samples} samples; task {self.name!r} takes {self.label_format}")
        if labels.dtype.kind != "U" or labels.ndim != 1:
            raise ArtifactError(f"{found}; task {self.name!r} takes {self.label_format} (numpy dtype '<U...', not objects or bytes)")

    def against_labels(self, record, outputs, labels, char_list, artifact_dir) -> dict:
        if not char_list:
            raise ArtifactError(f"against_labels: {self.name} needs the character list (the artifact's labels) to read text")
        read = [to_text(ctc_greedy(row)[0], char_list) for sample in outputs for row in np.asarray(sample[record["output"]])]
        figures = agreement([str(text) for text in labels[:len(read)]], read, f"{self.name}'s character accuracy")
        result = {"char_accuracy": figures["char_agreement"], "exact_match": figures["exact_agreement"],
                  "edit_distance": figures["edit_distance"], "reference_chars": figures["reference_chars"], "samples": len(read)}
        if not figures["reference_chars"]:
            return not_measurable("the labels hold no text", "char_accuracy", "exact_match", **result)
        return result

    def postprocess(self, record, outputs, labels, artifact_dir) -> dict:
        ids, confidence = ctc_greedy(np.asarray(outputs[record["output"]])[0])
        text = to_text(ids, labels or [])
        return {"kind": self.kind, "text": text, "confidence": confidence, "label": text}


TASKS = (OcrRec(),)
