"""edgeship.convert.data_checks on hand-made arrays whose answers are known: the scan of a sample
(chunk by chunk), the files' headers, the calibration and eval values, the label count and the
reference-data estimate."""

from __future__ import annotations

import numpy as np
import pytest

from edgeship.convert import data_checks
from edgeship.convert.data_checks import (
    Arrays,
    Scan,
    check_calibration_values,
    check_class_ids,
    check_eval_values,
    check_label_count,
    check_readable,
    check_reference_memory,
    memory_limit,
    reference_bytes,
)
from edgeship.errors import EdgeshipError


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 5 values, so a sample of 64 spans 13 of them and the cross-chunk logic is exercised."""
    monkeypatch.setattr(data_checks, "CHUNK_VALUES", 5)


def _chunks(values, size=3):
    array = np.asarray(values)
    return iter([array[start:start + size] for start in range(0, len(array), size)])


def test_scan_counts_what_is_not_finite_and_finds_one_value():
    scan = Scan(_chunks(np.array([1.0, np.nan, 2.0, np.inf, -np.inf, 3.0], np.float32)))
    assert (scan.values, scan.not_finite, scan.one_value) == (6, 3, False)
    same = Scan(_chunks(np.full(7, 0.25, np.float32)))
    assert (same.values, same.not_finite, same.one_value, same.first) == (7, 0, True, 0.25)


def test_scan_sees_a_difference_between_chunks_and_inside_one():
    # each chunk constant on its own, the sample not: 4 4 4 | 5 5
    assert not Scan(_chunks([4, 4, 4, 5, 5])).one_value
    assert not Scan(_chunks([4, 4, 4, 4, 5])).one_value
    assert Scan(_chunks([4, 4, 4, 4, 4])).one_value


def test_a_single_value_or_nan_everywhere_is_not_called_constant():
    assert not Scan(_chunks([16000])).one_value  # a sample rate: one value by nature
    assert not Scan(_chunks(np.full(4, np.nan))).one_value  # NaN: reported as such, not as constant
    assert Scan(_chunks(np.array([True, True, True]))).one_value
    assert not Scan(_chunks(np.array([1, 2], np.int64))).one_value


def test_arrays_streams_npy_and_npz_samples_in_order(tmp_path, small_chunks):
    array = np.arange(3 * 64, dtype=np.float32).reshape(3, 1, 8, 8)
    np.save(tmp_path / "a.npy", array)
    np.savez_compressed(tmp_path / "a.npz", input=array, labels=np.arange(3))
    np.save(tmp_path / "f.npy", np.asfortranarray(array))
    np.savez(tmp_path / "f.npz", input=np.asfortranarray(array))
    for path, name in ((tmp_path / "a.npy", "array"), (tmp_path / "a.npz", "input"), (tmp_path / "f.npy", "array"), (tmp_path / "f.npz", "input")):
        arrays = Arrays(path, "test")
        rows = [np.concatenate(list(chunks)) for chunks in arrays.samples(name, whole=False)]
        assert len(rows) == 3 and all(np.array_equal(row, array[index].reshape(-1)) for index, row in enumerate(rows)), path
        (whole,) = [np.concatenate(list(chunks)) for chunks in arrays.samples(name, whole=True)]
        assert np.array_equal(np.sort(whole), np.arange(3 * 64)), path


def test_headers_refuse_empty_truncated_and_damaged_files(tmp_path):
    good = tmp_path / "good.npy"
    np.save(good, np.ones((4, 4), np.float32))
    blob = good.read_bytes()
    (tmp_path / "empty.npy").write_bytes(b"")
    (tmp_path / "short.npy").write_bytes(blob[:-8])
    (tmp_path / "magic.npy").write_bytes(b"not numpy at all")
    np.savez(tmp_path / "good.npz", input=np.ones((2, 3), np.float32))
    zipped = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(zipped[: len(zipped) // 2])
    check_readable([good], tmp_path / "good.npz")
    with pytest.raises(EdgeshipError, match=r"^calibration sample .*empty\.npy is empty \(0 bytes\); save it again with numpy\.save$"):
        check_readable([good, tmp_path / "empty.npy"], None)
    with pytest.raises(EdgeshipError, match=r"short\.npy is truncated: its header says \[4, 4\] float32 \(64 bytes\), the file holds 56 bytes"):
        check_readable([tmp_path / "short.npy"], None)
    with pytest.raises(EdgeshipError, match=r"magic\.npy is not a readable \.npy file \(ValueError: .*magic"):
        check_readable([tmp_path / "magic.npy"], None)
    with pytest.raises(EdgeshipError, match=r"^evaluation set .*cut\.npz is not a readable \.npz \(BadZipFile"):
        check_readable([], tmp_path / "cut.npz")


def test_a_damaged_npz_member_is_one_line(tmp_path):
    values = np.arange(1 << 20, dtype=np.float32)  # 4 MiB: the header is read long before the member's end, where its CRC is checked
    np.savez(tmp_path / "sample.npz", input=values)
    blob = bytearray((tmp_path / "sample.npz").read_bytes())
    at = blob.index(values[700000:700002].tobytes())
    blob[at:at + 4] = b"\xff\xff\xff\xff"  # the data changes under its CRC
    (tmp_path / "sample.npz").write_bytes(bytes(blob))
    with pytest.raises(EdgeshipError, match=r"sample\.npz: array 'input' is not readable \(BadZipFile: Bad CRC-32"):
        check_calibration_values([tmp_path / "sample.npz"])


def test_calibration_values_name_the_file_and_the_count(tmp_path, small_chunks):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "good.npy", rng.standard_normal((1, 8, 8)).astype(np.float32))
    bad = rng.standard_normal((1, 8, 8)).astype(np.float32)
    bad[0, 7, 5:8] = [np.nan, np.inf, -np.inf]  # in the last chunks
    np.save(tmp_path / "bad.npy", bad)
    check_calibration_values([tmp_path / "good.npy"])
    with pytest.raises(EdgeshipError, match=r"^calibration sample .*bad\.npy holds NaN or Inf \(3 of 64 values\); replace it"):
        check_calibration_values([tmp_path / "good.npy", tmp_path / "bad.npy"])


def test_a_calibration_sample_is_constant_only_when_every_input_is(tmp_path):
    image = np.random.default_rng(1).standard_normal((1, 3, 4, 4)).astype(np.float32)
    np.savez(tmp_path / "state_zero.npz", image=image, state=np.zeros((2, 1, 8), np.float32), rate=np.array([16000]))
    check_calibration_values([tmp_path / "state_zero.npz"])  # a zero state beside a real image is a real sample
    np.savez(tmp_path / "blank.npz", image=np.zeros_like(image), state=np.ones((2, 1, 8), np.float32), rate=np.array([16000]))
    with pytest.raises(EdgeshipError, match=r"blank\.npz is constant \('image' all 0\.0, 'state' all 1\.0\): a quantizer learns no range"):
        check_calibration_values([tmp_path / "blank.npz"])
    np.savez(tmp_path / "text.npz", image=np.array(["a", "b"]))
    with pytest.raises(EdgeshipError, match=r"text\.npz: array 'image' is of dtype <U1, not numbers"):
        check_calibration_values([tmp_path / "text.npz"])


def test_eval_values_name_the_index_and_leave_labels_alone(tmp_path, small_chunks):
    images = np.random.default_rng(2).standard_normal((5, 1, 4, 4)).astype(np.float32)
    np.savez(tmp_path / "good.npz", input=images, labels=np.array([0.5, np.nan, 1, 2, 3]))  # labels: the task's to check
    check_eval_values(tmp_path / "good.npz")
    images[3, 0, 3, 3] = np.nan
    np.savez(tmp_path / "nan.npz", input=images)
    with pytest.raises(EdgeshipError, match=r"nan\.npz: array 'input' at index 3 of axis 0 holds NaN or Inf \(1 of 16 values\); fix or drop"):
        check_eval_values(tmp_path / "nan.npz")
    images[3, 0, 3, 3] = 1.0
    images[4] = 7.0
    np.savez(tmp_path / "constant.npz", input=images, mask=np.ones((5, 6), bool))
    with pytest.raises(EdgeshipError, match=r"constant\.npz: sample 4 \(axis 0\) is constant \('input' all 7\.0, 'mask' all True\)"):
        check_eval_values(tmp_path / "constant.npz")
    images[4, 0, 0, 0] = 6.0
    np.savez(tmp_path / "one_input_constant.npz", input=images, mask=np.ones((5, 6), bool))
    check_eval_values(tmp_path / "one_input_constant.npz")


def test_eval_sequences_may_hold_a_silent_step(tmp_path):
    audio = np.random.default_rng(3).standard_normal((4, 1, 16)).astype(np.float32)
    audio[2] = 0.0  # silence between words
    np.savez(tmp_path / "seq.npz", audio=audio, state=np.zeros((4, 2, 8), np.float32), sequence_lengths=np.array([2, 2]))
    check_eval_values(tmp_path / "seq.npz")
    np.savez(tmp_path / "frames.npz", audio=audio, state=np.zeros((4, 2, 8), np.float32))
    with pytest.raises(EdgeshipError, match=r"sample 2 \(axis 0\) is constant"):
        check_eval_values(tmp_path / "frames.npz")


def test_a_constant_check_needs_one_sample_count(tmp_path):
    """A state stacked on another axis than the samples: the shape check, which knows the axes, speaks."""
    np.savez(tmp_path / "axes.npz", audio=np.zeros((3, 16), np.float32), state=np.zeros((2, 3, 8), np.float32))
    check_eval_values(tmp_path / "axes.npz")


def test_label_count_is_the_classifier_last_axis(tmp_path):
    labels_file = tmp_path / "labels.txt"
    outputs = [{"name": "boxes", "shape": [1, 100, 4]}, {"name": "scores", "shape": [1, 1, 1, 5]}]
    check_label_count(labels_file, list("abcde"), {"name": "classify", "output": "scores"}, outputs)
    with pytest.raises(EdgeshipError, match=r"labels\.txt names 4 classes, but output 'scores' of shape \[1, 1, 1, 5\] scores 5 \(its last axis\)"):
        check_label_count(labels_file, list("abcd"), {"name": "classify", "output": "scores"}, outputs)
    check_label_count(labels_file, list("abcd"), {"name": "classify", "output": "open"}, [{"name": "open", "shape": [1, "?"]}])  # unknown
    check_label_count(labels_file, list("ab"), {"name": "detect", "output": "boxes"}, outputs)  # its decoder reads its classes


def test_eval_class_ids_stay_within_the_classes(tmp_path):
    outputs = [{"name": "logits", "shape": [1, 3]}]
    classify = {"name": "classify", "output": "logits"}
    np.savez(tmp_path / "ok.npz", input=np.zeros((4, 2)), labels=np.array([0, 2, 1, 2]))
    np.savez(tmp_path / "past.npz", input=np.zeros((4, 2)), labels=np.array([0, 2, 3, 2]))
    check_class_ids(tmp_path / "ok.npz", classify, outputs)
    check_class_ids(None, classify, outputs)
    check_class_ids(tmp_path / "past.npz", {"name": "generic", "output": "logits"}, outputs)
    with pytest.raises(EdgeshipError, match=r"past\.npz: labels hold class 3 \(sample 2\), but output 'logits' scores 3 classes \(ids 0-2\)"):
        check_class_ids(tmp_path / "past.npz", classify, outputs)


def test_reference_bytes_follow_what_the_worker_keeps():
    inputs = [{"name": "x", "shape": [1, 3, 4, 4], "dtype": "float32"}, {"name": "ids", "shape": [1, 8], "dtype": "int64"}]
    outputs = [{"name": "y", "shape": [1, 10]}, {"name": "open", "shape": [1, "?"]}]
    per_input, per_output = 48 * 4 + 8 * 8, 10 * 4
    assert reference_bytes(inputs, outputs, 0, 0, False) == (8 * per_input + 2 * 8 * per_output, 8,
                                                             "seeded random samples, as neither --eval nor --calib is given")
    assert reference_bytes(inputs, outputs, 0, 20, False)[:2] == (20 * per_input + 2 * 8 * per_output, 8)
    assert reference_bytes(inputs, outputs, 100, 0, True)[:2] == (100 * per_input + 2 * 100 * per_output, 100)
    assert reference_bytes(inputs, outputs, 1000, 0, False)[:2] == (1000 * per_input + 2 * 512 * per_output, 512)  # MAX_REFERENCE_SAMPLES
    big = [{"name": "x", "shape": [1, 3, 1024, 1024]}]  # 12 MiB: one sample fits in the worker's 16 MiB of references
    assert reference_bytes(big, [], 10, 0, False)[1] == 1


def test_memory_limit_reads_the_container_setting(monkeypatch):
    monkeypatch.setenv("EDGESHIP_CONTAINER_MEMORY", "512m")
    assert memory_limit() == (512 << 20, "EDGESHIP_CONTAINER_MEMORY=512m")
    monkeypatch.setenv("EDGESHIP_CONTAINER_MEMORY", "2G")
    assert memory_limit() == (2 << 30, "EDGESHIP_CONTAINER_MEMORY=2g")


def test_reference_memory_refuses_with_the_figure(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGESHIP_CONTAINER_MEMORY", "1g")
    model = tmp_path / "m.onnx"
    fits = [{"name": "x", "shape": [1, 3, 1024, 1024]}]  # 12.6 MB x 8 + outputs
    check_reference_memory(model, fits, [{"name": "y", "shape": [1, 3, 1024, 1024]}], 0, 0, False)
    huge = [{"name": "small", "shape": [1, 4]}, {"name": "x", "shape": [1, 3, 4096, 4096]}]  # 201 MB per sample
    with pytest.raises(EdgeshipError, match=r"m\.onnx: input 'x' of shape \[1, 3, 4096, 4096\] is 201 MB per sample; the reference data would "
                                            r"take 4\.83 GB \(inputs and outputs of 8 seeded random samples, .*\), over the conversion "
                                            r"container's memory limit EDGESHIP_CONTAINER_MEMORY=1g \(1\.07 GB\)"):
        check_reference_memory(model, huge, [{"name": "y", "shape": [1, 3, 4096, 4096]}], 0, 0, False)


def test_a_conversions_file_entry_goes_through_the_same_checks(tmp_path):
    """`invoke build` converts each entry with edgeship.convert.run.convert, whose first step is plan()."""
    import hashlib

    from edgeship.convert.project import load_project
    from edgeship.convert.request import plan
    from tests.support import tiny_cnn

    model = tiny_cnn(tmp_path / "tiny.onnx")
    (tmp_path / "calib").mkdir()
    np.save(tmp_path / "calib" / "000.npy", np.full((1, 1, 8, 8), np.nan, np.float32))
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    (tmp_path / "edgeship.toml").write_text(f'[models.tiny]\npath = "tiny.onnx"\nsha256 = "{sha}"\ncalibration = "calib"\n'
                                            '[[matrix]]\nmodels = ["tiny"]\ntargets = ["tflite"]\nquants = ["int8"]\n')
    entry = load_project(tmp_path / "edgeship.toml").entries["tiny-tflite-int8"]
    with pytest.raises(EdgeshipError, match=r"calibration sample .*000\.npy holds NaN or Inf \(64 of 64 values\)"):
        plan(entry.request(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_a_large_sample_is_never_held_whole(tmp_path, monkeypatch):
    """16 MiB samples checked in chunks of 256 KiB: numpy's allocations (traced) stay far below one sample."""
    import tracemalloc

    monkeypatch.setattr(data_checks, "CHUNK_VALUES", 1 << 16)
    values = np.random.default_rng(4).standard_normal(1 << 22).astype(np.float32)
    np.save(tmp_path / "big.npy", values.reshape(1, 1, 2048, 2048))
    np.savez(tmp_path / "big.npz", input=values.reshape(1, 1, 2048, 2048))
    del values
    tracemalloc.start()
    try:
        check_calibration_values([tmp_path / "big.npy", tmp_path / "big.npz"])
        check_eval_values(tmp_path / "big.npz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"{peak} bytes traced at the peak"


def test_a_first_sequence_longer_than_the_reference_cap_is_counted_whole():
    """The worker keeps whole sequences, the first however long (sequence.whole_sequences): the
    memory estimate counts it, not the cap (found in review)."""
    from edgeship.convert.data_checks import reference_bytes
    from targets.worker import MAX_REFERENCE_SAMPLES

    inputs, outputs = [{"name": "x", "shape": [1, 576], "dtype": "float32"}], [{"name": "y", "shape": [1, 1]}]
    capped = reference_bytes(inputs, outputs, 5000, 0, False)
    whole = reference_bytes(inputs, outputs, 5000, 0, False, first_sequence=3000)
    assert capped[1] == MAX_REFERENCE_SAMPLES and whole[1] == 3000 and whole[0] > capped[0]
