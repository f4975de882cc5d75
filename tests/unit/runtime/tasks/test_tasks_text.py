"""CTC text recognizers: greedy decoding, agreement with fp32 and accuracy against labels (needs rapidfuzz)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.tasks import against_labels, compare, default_tolerances, postprocess, validate
from edgeship_runtime.tasks.text import ctc_greedy

CHARACTERS = ["blank", "h", "e", "l", "o", "w", "r", "d", " "]  # PP-OCR order: blank, characters, space
BLANK = 0


def ctc_steps(path: list[int], peak: float = 0.9, logits: bool = False) -> np.ndarray:
    """[T, K] per-step distributions whose best class follows `path`."""
    steps = np.full((len(path), len(CHARACTERS)), (1 - peak) / (len(CHARACTERS) - 1), np.float32)
    steps[np.arange(len(path)), path] = peak
    return np.log(steps) + 3.0 if logits else steps


def path_for(text: str) -> list[int]:
    """A CTC path that reads `text`: each character twice, a blank between (so double letters survive)."""
    path = []
    for character in text:
        path += [CHARACTERS.index(character)] * 2 + [BLANK]
    return path


OUTPUTS = [{"name": "softmax_0.tmp_0", "shape": ["?", 33, len(CHARACTERS)]}]
RECORD = validate("ocr-rec", OUTPUTS, CHARACTERS, "m")


def test_greedy_ctc_collapses_repeats_and_drops_blanks():
    ids, confidence = ctc_greedy(ctc_steps(path_for("hello")))
    assert "".join(CHARACTERS[i] for i in ids) == "hello" and confidence == pytest.approx(0.9)
    ids_from_logits, confidence_from_logits = ctc_greedy(ctc_steps(path_for("hello"), logits=True))
    assert ids_from_logits == ids and confidence_from_logits == pytest.approx(0.9, abs=1e-5)  # softmax of the logits
    assert ctc_greedy(ctc_steps([BLANK] * 5)) == ([], 0.0)


def test_postprocess_reads_the_text():
    steps = ctc_steps([*path_for("hello world"), BLANK])
    result = postprocess(RECORD, {"softmax_0.tmp_0": steps[None]}, CHARACTERS)
    assert result["kind"] == "text" and result["text"] == "hello world" and result["confidence"] == pytest.approx(0.9)


def test_ocr_agreement_drops_when_one_character_changes():
    pytest.importorskip("rapidfuzz")
    reference = [{"softmax_0.tmp_0": ctc_steps(path_for(text))[None]} for text in ("hello", "world")]
    same = compare(RECORD, reference, [{k: v.copy() for k, v in r.items()} for r in reference], default_tolerances("ocr-rec", "int8"))
    assert same["passed"] and same["metrics"]["char_agreement"] == 1.0 and same["metrics"]["exact_agreement"] == 1.0
    changed = [dict(r) for r in reference]
    changed[1] = {"softmax_0.tmp_0": ctc_steps(path_for("wordd"))[None]}  # "world" -> "wordd": one substitution
    report = compare(RECORD, reference, changed, default_tolerances("ocr-rec", "int8"))
    assert report["metrics"]["char_agreement"] == pytest.approx(1 - 1 / 10) and report["metrics"]["exact_agreement"] == 0.5
    assert report["passed"]  # 0.9 >= int8's 0.90
    strict = compare(RECORD, reference, changed, default_tolerances("ocr-rec", "fp16"))
    assert not strict["passed"] and "character agreement with fp32's text 0.9 < 0.98" in strict["failed"][0]
    assert "top1_agreement" not in strict["outputs"]["softmax_0.tmp_0"]


def test_character_accuracy_against_labels():
    pytest.importorskip("rapidfuzz")
    outputs = [{"softmax_0.tmp_0": ctc_steps(path_for(text))[None]} for text in ("hello", "word")]
    figures = against_labels(RECORD, outputs, np.array(["hello", "world"]), char_list=CHARACTERS)
    assert figures["char_accuracy"] == pytest.approx(1 - 1 / 10) and figures["exact_match"] == 0.5 and figures["samples"] == 2
    nothing = against_labels(RECORD, [{"softmax_0.tmp_0": ctc_steps([BLANK] * 3)[None]}], np.array(["hi"]), char_list=CHARACTERS)
    assert nothing["char_accuracy"] == 0.0  # 1 - CER floored at 0
    garbage = against_labels(RECORD, [{"softmax_0.tmp_0": ctc_steps(path_for("hello world"))[None]}], np.array(["he"]), char_list=CHARACTERS)
    assert garbage["char_accuracy"] == 0.0
    with pytest.raises(ArtifactError, match="needs the character list"):
        against_labels(RECORD, outputs, np.array(["hello", "world"]))
