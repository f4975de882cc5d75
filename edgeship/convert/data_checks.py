"""Checks of the numbers a conversion reads, on the host before any container starts: calibration
and eval files that are empty or unreadable, samples holding NaN/Inf or one value throughout,
class names that do not fit the classifier's output, and input shapes whose reference data
would not fit in the conversion container's memory.

Arrays are read a bounded chunk at a time (an .npy is memory-mapped, an .npz member streamed out
of its archive), so checking a large file never holds it whole. Each failure is one
EdgeshipError line naming the file, the value and the fix.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import IO

import numpy as np

from edgeship.errors import EdgeshipError

CHUNK_VALUES = 1 << 22  # values read at once (16 MiB of float32)
MAX_MEMBERS = 4096  # arrays in one .npz; a sample file holds one per model input


def _header(stream: IO[bytes]) -> tuple[tuple[int, ...], np.dtype, bool]:
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    else:  # 3.0 is only written for structured dtypes with non-Latin-1 field names, never for numbers
        raise ValueError(f".npy format {version[0]}.{version[1]} holds no array of numbers")
    return tuple(shape), dtype, fortran


def _numbers(dtype: np.dtype) -> bool:
    return not dtype.hasobject and not dtype.fields and dtype.kind in "biuf"


class Arrays:
    """The arrays of one .npy (named by `npy_name`) or .npz file: their headers read once, their
    values streamed sample by sample (axis 0) in chunks of at most CHUNK_VALUES."""

    def __init__(self, path: Path, what: str, npy_name: str = "array"):
        self.path, self.what = path, what
        self.headers: dict[str, tuple[tuple[int, ...], np.dtype, bool]] = {}
        size = path.stat().st_size
        if size == 0:
            raise EdgeshipError(f"{what} {path} is empty (0 bytes); save it again with numpy.{'savez' if path.suffix == '.npz' else 'save'}")
        if path.suffix == ".npz":
            self._read_npz_headers()
        else:
            self._read_npy_header(size, npy_name)

    def _read_npy_header(self, size: int, name: str) -> None:
        with open(self.path, "rb") as handle:
            try:
                shape, dtype, fortran = _header(handle)
            except Exception as error:  # numpy's header parser raises ValueError, EOFError or SyntaxError
                raise EdgeshipError(f"{self.what} {self.path} is not a readable .npy file ({_detail(error)}); save it with numpy.save") from None
            data = size - handle.tell()
        need = math.prod(shape) * dtype.itemsize
        if _numbers(dtype) and data < need:
            raise EdgeshipError(f"{self.what} {self.path} is truncated: its header says {list(shape)} {dtype} ({need} bytes), the file holds "
                                f"{data} bytes of data; save it again with numpy.save")
        self.headers[name] = (shape, dtype, fortran)

    def _read_npz_headers(self) -> None:
        try:
            with zipfile.ZipFile(self.path) as archive:
                members = [m for m in archive.namelist() if m.endswith(".npy")]
                if len(members) > MAX_MEMBERS:
                    raise EdgeshipError(f"{self.what} {self.path} holds {len(members)} arrays, over {MAX_MEMBERS}; save one array per model input")
                for member in members:
                    with archive.open(member) as stream:
                        self.headers[member[:-4]] = _header(stream)
        except EdgeshipError:
            raise
        except Exception as error:  # zipfile, zlib and numpy's header parser each raise their own
            raise EdgeshipError(f"{self.what} {self.path} is not a readable .npz ({_detail(error)}); save it with numpy.savez") from None

    def dtype_of(self, name: str) -> np.dtype:
        return self.headers[name][1]

    def samples(self, name: str, whole: bool) -> Generator[Iterator[np.ndarray], None, None]:
        """Per sample of array `name` (its rows on axis 0; whole=True: the array is one sample), an
        iterator of flat chunks of its values."""
        shape, dtype, fortran = self.headers[name]
        rows = 1 if whole or not shape else shape[0]
        per_row = math.prod(shape) // rows if rows else 0
        if self.path.suffix != ".npz":
            array = np.load(self.path, mmap_mode="r", allow_pickle=False)
            flat = array.reshape(-1) if not fortran else None
            for row in range(rows):
                values = flat[row * per_row:(row + 1) * per_row] if flat is not None else np.asarray(array if whole else array[row]).reshape(-1)
                yield (values[start:start + CHUNK_VALUES] for start in range(0, per_row, CHUNK_VALUES))
            return
        try:
            with zipfile.ZipFile(self.path) as archive, archive.open(f"{name}.npy") as stream:
                _header(stream)
                if fortran:  # rare (np.save of a transposed array); one whole read keeps the sample order simple
                    with archive.open(f"{name}.npy") as whole_member:
                        array = np.lib.format.read_array(whole_member, allow_pickle=False)
                    for row in range(rows):
                        yield iter([np.asarray(array if whole else array[row]).reshape(-1)])
                    return
                for _ in range(rows):
                    yield self._unreadable_as_one_line(name, _stream_row(stream, dtype, per_row))
        except EdgeshipError:
            raise
        except Exception as error:
            raise self._unreadable(name, error) from None

    def _unreadable(self, name: str, error: BaseException) -> EdgeshipError:
        return EdgeshipError(f"{self.what} {self.path}: array {name!r} is not readable ({_detail(error)}); save it again with numpy.savez")

    def _unreadable_as_one_line(self, name: str, chunks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        """The chunks are read as the caller asks for them: a damaged member (zlib, a CRC mismatch at
        its end, a short read) fails there, outside `samples`."""
        try:
            yield from chunks
        except Exception as error:
            raise self._unreadable(name, error) from None


def _stream_row(stream: IO[bytes], dtype: np.dtype, count: int) -> Iterator[np.ndarray]:
    left = count
    while left:
        take = min(left, CHUNK_VALUES)
        data = stream.read(take * dtype.itemsize)
        if len(data) != take * dtype.itemsize:
            raise EOFError(f"the array ends {left - len(data) // dtype.itemsize} values early")
        left -= take
        yield np.frombuffer(data, dtype)


def _detail(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text[:160]}" if text else type(error).__name__


class Scan:
    """What one sample of one array holds: how many values are not finite, whether all are one value,
    and its smallest and largest value."""

    def __init__(self, chunks: Iterator[np.ndarray]):
        self.values = self.not_finite = 0
        self.first: float | None = None
        self.low: np.generic | None = None
        self.high: np.generic | None = None
        self.constant = True
        for chunk in chunks:
            if chunk.size == 0:
                continue
            low, high = chunk.min(), chunk.max()
            self.low = low if self.low is None else min(self.low, low)
            self.high = high if self.high is None else max(self.high, high)
            if chunk.dtype.kind == "f":
                self.not_finite += int(chunk.size - np.count_nonzero(np.isfinite(chunk)))
            if self.first is None:
                self.first = chunk[0].item()
            if self.constant and (chunk[0] != self.first or not bool(np.all(chunk == chunk[0]))):
                self.constant = False
            self.values += chunk.size

    @property
    def one_value(self) -> bool:
        """Every value the same, over more than one value (a single value is constant by nature:
        a scale, a sample rate) and none of them NaN."""
        return self.constant and self.values > 1 and self.not_finite == 0


def _not_finite(where: str, scan: Scan, fix: str) -> EdgeshipError:
    return EdgeshipError(f"{where} holds NaN or Inf ({scan.not_finite} of {scan.values} values); {fix}")


def check_calibration_values(files: list[Path]) -> None:
    """Each calibration file is one sample: every array in it finite, and not all of them one value
    (a quantizer learns its ranges from these: a NaN breaks the scales, a constant sample shows no range)."""
    for path in files:
        arrays = Arrays(path, "calibration sample")
        scans = {}
        for name in arrays.headers:
            if not _numbers(arrays.dtype_of(name)):
                raise EdgeshipError(f"calibration sample {path}: array {name!r} is of dtype {arrays.dtype_of(name)}, not numbers; "
                                    f"save the model inputs as numeric arrays")
            for chunks in arrays.samples(name, whole=True):
                scans[name] = scan = Scan(chunks)
                where = f"calibration sample {path}" + (f": array {name!r}" if path.suffix == ".npz" else "")
                if scan.not_finite:
                    raise _not_finite(where, scan, "replace it with a real input or delete the file")
        measured = [(name, scan) for name, scan in scans.items() if scan.values > 1]
        if measured and all(scan.one_value for _, scan in measured):
            values = (", ".join(f"{name!r} all {scan.first}" for name, scan in measured) if path.suffix == ".npz"
                      else f"every value {measured[0][1].first}")
            raise EdgeshipError(f"calibration sample {path} is constant ({values}): a quantizer learns no range from it; "
                                f"replace it with a real input (preprocessed as the model expects) or delete the file")


NOT_INPUTS = ("labels", "sequence_lengths")  # what an eval set holds beside the inputs (checked by the task and edgeship.convert.axes)


def check_eval_values(path: Path) -> None:
    """Every numeric array of the eval set but its labels finite, read index by index on axis 0 (the
    samples, where they are stacked there), and no sample whose arrays each hold one value throughout."""
    arrays = Arrays(path, "evaluation set")
    names = [name for name in arrays.headers if name not in NOT_INPUTS]
    per_sample: dict[int, list[tuple[str, Scan]]] = {}
    for name in names:
        if not _numbers(arrays.dtype_of(name)):
            raise EdgeshipError(f"evaluation set {path}: array {name!r} is of dtype {arrays.dtype_of(name)}, not numbers; "
                                f"save the model inputs as numeric arrays")
        for index, chunks in enumerate(arrays.samples(name, whole=False)):
            scan = Scan(chunks)
            if scan.not_finite:
                raise _not_finite(f"evaluation set {path}: array {name!r} at index {index} of axis 0", scan,
                                  "fix or drop that sample (and its label)")
            per_sample.setdefault(index, []).append((name, scan))
    counts = {len(arrays.headers[name][0]) and arrays.headers[name][0][0] for name in names}
    if len(counts) != 1 or "sequence_lengths" in arrays.headers:
        # arrays of different counts on axis 0 (a state stacked on another axis, or a mistake the shape
        # check names with the model's inputs at hand); or sequences, where a silent step is real data
        return
    for index, found in sorted(per_sample.items()):
        measured = [(name, scan) for name, scan in found if scan.values > 1]
        if measured and all(scan.one_value for _, scan in measured):
            values = ", ".join(f"{name!r} all {scan.first}" for name, scan in measured)
            raise EdgeshipError(f"evaluation set {path}: sample {index} (axis 0) is constant ({values}): it tests nothing the model does; "
                                f"replace it with a real input or drop it (and its label)")


def check_readable(calibration: list[Path], evaluation: Path | None) -> None:
    """Every calibration file and the eval set readable (not empty, not truncated, every .npy header
    whole): from the headers alone, before the model is read or any container asked."""
    for path in calibration:
        Arrays(path, "calibration sample")
    if evaluation is not None:
        Arrays(evaluation, "evaluation set")


def check_values(calibration: list[Path], evaluation: Path | None) -> None:
    """The calibration samples and the eval set hold real numbers (once their shapes were found
    to fit the model's inputs: a wrong shape is the first thing to fix)."""
    check_calibration_values(calibration)
    if evaluation is not None:
        check_eval_values(evaluation)


def check_label_count(path: Path, labels: list[str], task: dict, outputs: list[dict]) -> None:
    """--labels names one class per score of the output a classifier reads (its last axis, as
    edgeship_runtime.tasks.classify reads it); a name too many or too few shifts or drops names on
    the boards. Other tasks check what they read themselves (ocr-rec its character list)."""
    classes = _classes(task, outputs)
    if classes is not None and len(labels) != classes:
        shape = next(item["shape"] for item in outputs if item["name"] == task["output"])
        raise EdgeshipError(f"labels file {path} names {len(labels)} classes, but output {task['output']!r} of shape "
                            f"[{', '.join(map(str, shape))}] scores {classes} (its last axis); give one name per class, in the model's order")


def _classes(task: dict, outputs: list[dict]) -> int | None:
    """The classes the task's output scores, as its task module reads them (a classifier's last axis);
    None for a task without one class axis, or a size not known before the conversion."""
    from edgeship_runtime.tasks import get, names

    if task.get("name") not in names() or "output" not in task:
        return None
    return get(task["name"]).class_count(task, {item["name"]: item["shape"] for item in outputs})


def check_class_ids(path: Path | None, task: dict, outputs: list[dict]) -> None:
    """An eval set's class ids within the classifier's classes: an id past the last one can never
    be predicted, so the accuracy against the labels would be low for no fault of the conversion."""
    classes = _classes(task, outputs)
    if path is None or classes is None:
        return
    with np.load(path, allow_pickle=False) as data:
        labels = data["labels"]  # one id per sample (check_eval_labels): small
    if labels.size and labels.dtype.kind in "iu" and int(labels.max()) >= classes:
        index = int(np.argmax(labels))
        raise EdgeshipError(f"evaluation set {path}: labels hold class {int(labels.max())} (sample {index}), but output {task['output']!r} "
                            f"scores {classes} classes (ids 0-{classes - 1}); label each sample with its class id, in the model's order")


def _gb(size: float) -> str:
    return f"{size / 1e9:.3g} GB" if size >= 1e9 else f"{size / 1e6:.3g} MB"


def _tensor_bytes(spec: dict) -> int | None:
    """Bytes of one sample of a tensor, None when a dimension is not known before the conversion."""
    shape = spec["shape"]
    if not all(isinstance(d, int) and d > 0 for d in shape):
        return None
    return math.prod(shape) * np.dtype(spec.get("dtype", "float32")).itemsize


def reference_bytes(inputs: list[dict], outputs: list[dict], eval_samples: int, calibration_samples: int, labelled: bool,
                    first_sequence: int = 0) -> tuple[int, int, str]:
    """(bytes, samples run through the model, what they are) of what the conversion worker holds
    (targets/worker.py): every eval and calibration sample it loads (without either, seeded random
    samples), and the fp32 and converted outputs of the samples it runs (the whole eval set when
    it is labelled, else the reference samples it keeps). Outputs of unknown shape count nothing."""
    from targets.worker import DEFAULT_REFERENCE_SAMPLES, MAX_REFERENCE_BYTES, MAX_REFERENCE_SAMPLES

    per_input = sum(_tensor_bytes(spec) or 0 for spec in inputs)
    per_output = sum(_tensor_bytes(spec) or 0 for spec in outputs)
    if eval_samples:
        kept = min(eval_samples, max(1, min(MAX_REFERENCE_SAMPLES, MAX_REFERENCE_BYTES // max(per_input, 1))))
        kept = max(kept, min(first_sequence, eval_samples))  # whole sequences only: the first is kept whole, however long
        run, what = (eval_samples, "eval samples") if labelled else (kept, "eval samples kept as references")
    elif calibration_samples:
        run, what = min(DEFAULT_REFERENCE_SAMPLES, calibration_samples), "calibration samples kept as references"
    else:
        run, what = DEFAULT_REFERENCE_SAMPLES, "seeded random samples, as neither --eval nor --calib is given"
    loaded = eval_samples + calibration_samples or DEFAULT_REFERENCE_SAMPLES
    return per_input * loaded + 2 * per_output * run, run, what


def memory_limit() -> tuple[int, str]:
    """(bytes, setting) a conversion container may use (EDGESHIP_CONTAINER_MEMORY, docker's units)."""
    from edgeship.convert.limits import MEMORY_SETTING, limits

    text = limits()["mem_limit"]
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(text[-1], 1)
    return int(text.rstrip("kmg")) * scale, f"{MEMORY_SETTING}={text}"


def check_reference_memory(model: Path, inputs: list[dict], outputs: list[dict], eval_samples: int, calibration_samples: int,
                           labelled: bool, first_sequence: int = 0) -> None:
    """Refuse, with the figure, input shapes whose reference data alone would not fit in the
    conversion container's memory (it would end there in a MemoryError after the image started)."""
    total, run, what = reference_bytes(inputs, outputs, eval_samples, calibration_samples, labelled, first_sequence)
    limit, setting = memory_limit()
    if total <= limit:
        return
    largest = max(inputs, key=lambda spec: _tensor_bytes(spec) or 0)
    raise EdgeshipError(f"{model}: input {largest['name']!r} of shape [{', '.join(map(str, largest['shape']))}] is "
                        f"{_gb(_tensor_bytes(largest) or 0)} per sample; the reference data would take {_gb(total)} (inputs and outputs "
                        f"of {run} {what}), over the conversion container's memory limit {setting} ({_gb(limit)}); "
                        f"convert with a smaller --input-shape")
