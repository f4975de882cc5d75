"""embed: cosine per sample and nearest-neighbour agreement against fp32, retrieval top-1 against labels,
on hand-made embeddings whose answers are known (points on a circle: angles say who is nearest)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeship_runtime.errors import ArtifactError
from edgeship_runtime.tasks import against_labels, check_labels, compare, default_tolerances, postprocess, validate

OUTPUTS = [{"name": "embedding", "shape": [1, 2]}]
# Unit vectors at these angles: each one's nearest other is the smallest angle away.
ANGLES = [0, 10, 30, 100, 115, 200]
NEAREST = [1, 0, 1, 4, 3, 4]  # 200 degrees is 85 from 115, 100 from 100, 160 from 0


def _record() -> dict:
    return validate({"name": "embed"}, OUTPUTS, None, "m")


def _samples(angles, scale: float = 1.0) -> list[dict]:
    radians = np.deg2rad(np.asarray(angles, np.float64))
    return [{"embedding": (scale * np.array([[np.cos(a), np.sin(a)]])).astype(np.float32)} for a in radians]


def test_the_circle_has_the_neighbours_it_is_said_to_have():
    from edgeship_runtime.tasks.embed import nearest_others

    vectors = np.concatenate([sample["embedding"] for sample in _samples(ANGLES)])
    assert nearest_others(vectors).tolist() == NEAREST


def test_the_same_embeddings_agree_on_every_neighbour():
    reference = _samples(ANGLES)
    report = compare(_record(), reference, _samples(ANGLES), default_tolerances("embed", "fp32"))
    metrics = report["metrics"]
    assert metrics["nn_agreement"] == 1.0 and metrics["nn_changed"] == 0
    assert metrics["cosine_min"] == pytest.approx(1.0) and metrics["samples"] == 6 and metrics["dimensions"] == 2
    assert report["passed"] and report["judged_by"] == ["nearest-neighbour agreement with fp32", "embedding cosine with fp32 (worst sample)"]
    assert report["outputs"]["embedding"]["nn_agreement"] == 1.0


def test_a_planted_swap_of_two_neighbours_costs_exactly_the_sample_that_pointed_at_one():
    # 100 and 115 degrees trade places: they still have each other as nearest, but 200 degrees, whose
    # nearest was the one at 115 (index 4), now finds 115 at index 3: one of six answers changes.
    swapped = [100 if angle == 115 else 115 if angle == 100 else angle for angle in ANGLES]
    report = compare(_record(), _samples(ANGLES), _samples(swapped), default_tolerances("embed", "fp16"))
    metrics = report["metrics"]
    assert metrics["nn_agreement"] == pytest.approx(5 / 6) and metrics["nn_changed"] == 1
    assert metrics["cosine_min"] == pytest.approx(np.cos(np.deg2rad(15)), abs=1e-6)
    assert metrics["cosine_mean"] == pytest.approx((4 + 2 * np.cos(np.deg2rad(15))) / 6, abs=1e-6)
    assert not report["passed"]
    assert report["failed"] == ["output 'embedding': nearest-neighbour agreement with fp32 0.833333 < 0.97 (min_nn_agreement)",
                                "output 'embedding': embedding cosine with fp32 (worst sample) 0.965926 < 0.999 (min_embedding_cosine)"]


def test_a_vector_moved_towards_another_neighbour_changes_only_its_own_answer():
    moved = [60 if angle == 30 else angle for angle in ANGLES]  # 30 -> 60: now 40 from 100, 50 from 10
    metrics = compare(_record(), _samples(ANGLES), _samples(moved), default_tolerances("embed", "int8"))["metrics"]
    assert metrics["nn_agreement"] == pytest.approx(5 / 6)
    assert metrics["cosine_min"] == pytest.approx(np.cos(np.deg2rad(30)), abs=1e-6)


def test_a_scale_changes_no_neighbour_and_no_cosine_so_normalised_or_not_is_judged_alike():
    report = compare(_record(), _samples(ANGLES), _samples(ANGLES, scale=3.0), default_tolerances("embed", "fp32"))
    assert report["metrics"]["nn_agreement"] == 1.0 and report["metrics"]["cosine_min"] == pytest.approx(1.0)
    assert report["passed"], report["failed"]  # the SNR of a tripled output is -6 dB, but SNR is not what judges an embedding


def test_fp16_rounding_of_real_looking_embeddings_passes_fp16():
    rng = np.random.default_rng(0)
    reference = [{"embedding": rng.normal(size=(1, 64)).astype(np.float32)} for _ in range(40)]
    converted = [{"embedding": s["embedding"].astype(np.float16).astype(np.float32)} for s in reference]
    report = compare(validate("embed", [{"name": "embedding", "shape": [1, 64]}], None, "m"), reference, converted,
                     default_tolerances("embed", "fp16"))
    assert report["metrics"]["nn_agreement"] == 1.0 and report["metrics"]["cosine_min"] > 0.9999
    assert report["passed"], report["failed"]


def test_zero_vectors_agree_only_with_zero():
    from edgeship_runtime.tasks.embed import row_cosines

    reference = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    converted = np.array([[0.0, 0.0], [0.5, 0.0], [2.0, 0.0]])
    assert row_cosines(reference, converted).tolist() == [1.0, 0.0, 1.0]


def test_one_sample_has_no_neighbour_so_agreement_is_not_measurable_and_the_tensors_judge():
    reference = _samples([0])
    report = compare(_record(), reference, _samples([0]), default_tolerances("embed", "fp16"))
    metrics = report["metrics"]
    assert metrics["nn_agreement"] is None and metrics["not_measurable"] == "1 eval sample has no other sample to be nearest to"
    assert metrics["cosine_min"] == pytest.approx(1.0)
    assert report["passed"]
    assert report["judged_by"][0] == ("every output's min_cosine, min_snr_db, max_range_error (instead: nearest-neighbour agreement "
                                      "with fp32 not measurable (1 eval sample has no other sample to be nearest to))")
    assert report["outputs"]["embedding"]["nn_agreement"] is None


def test_one_sample_never_passes_on_agreement_alone():
    report = compare(_record(), _samples([0]), _samples([0]), {"min_nn_agreement": 0.9, "min_embedding_cosine": 0.9})
    assert not report["passed"] and "not measurable" in report["failed"][0]


LABELS = np.array([0, 0, 1, 1, 1, 2])  # index 2 (label 1) finds index 1 (label 0): a miss; label 2 has no partner


def test_retrieval_top1_counts_the_samples_that_have_someone_to_find():
    record = _record()
    check_labels(record, LABELS, 6, "eval.npz")
    figures = against_labels(record, _samples(ANGLES), LABELS)
    # five queries (the lone label 2 asks nothing), four find their label
    assert figures == {"retrieval_top1": pytest.approx(4 / 5), "samples": 6, "queries": 5}


def test_retrieval_top1_is_perfect_when_every_neighbour_shares_the_label():
    figures = against_labels(_record(), _samples(ANGLES), np.array([0, 0, 0, 1, 1, 1]))
    assert figures["retrieval_top1"] == 1.0 and figures["queries"] == 6


def test_retrieval_with_no_shared_label_is_not_measurable():
    figures = against_labels(_record(), _samples(ANGLES), np.arange(6))
    assert figures["retrieval_top1"] is None and figures["not_measurable"] == "no two eval samples share a label"
    assert figures["queries"] == 0


@pytest.mark.parametrize(("labels", "message"), [
    (np.zeros(6, np.float32), r"labels are float32 \[6\]; task 'embed' takes integer identity or class ids \[N\]"),
    (np.zeros(5, np.int64), r"labels are int64 \[5\] for 6 samples; task 'embed' takes integer"),
    (np.zeros((6, 2), np.int64), r"labels are int64 \[6, 2\]; task 'embed' takes integer"),
])
def test_labels_in_another_format_are_refused_in_one_line(labels, message):
    with pytest.raises(ArtifactError, match=r"^eval\.npz: " + message):
        check_labels(_record(), labels, 6, "eval.npz")


@pytest.mark.parametrize("shape", [[1, 1], [1], [1, 3, 8, 8]])
def test_an_output_that_is_not_one_vector_per_sample_is_refused(shape):
    with pytest.raises(ArtifactError, match=rf"^task\.json: task 'embed' reads output 'embedding' of shape \[{', '.join(map(str, shape))}\], "
                                            r"which is not one vector per sample; embed needs \[N, D\] \(D >= 2\)"):
        validate("embed", [{"name": "embedding", "shape": shape}], None, "task.json")


def test_dynamic_and_squeezable_shapes_are_taken():
    validate("embed", [{"name": "embedding", "shape": ["batch", 1, 128]}], None, "m")
    validate("embed", [{"name": "embedding", "shape": [1, "dim"]}], None, "m")


def test_postprocess_reads_one_vector():
    result = postprocess(_record(), {"embedding": np.array([[3.0, 4.0]], np.float32)}, None)
    assert result["kind"] == "embed" and result["dimensions"] == 2 and result["norm"] == pytest.approx(5.0)
    assert result["label"] == "2-d embedding, norm 5" and result["confidence"] == 0.0 and result["output"] == "embedding"
    assert result["embedding"].tolist() == [3.0, 4.0]


def test_every_mode_has_its_gates_and_a_reason():
    from edgeship_runtime import tasks

    task = tasks.get("embed")
    assert task.headline.metric == "nn_agreement" and task.headline.label_metric == "retrieval_top1"
    for mode in ("fp32", "fp16", "dynamic", "int8"):
        assert set(default_tolerances("embed", mode)) >= {"min_nn_agreement", "min_embedding_cosine"} and task.tolerance_reasons[mode]
