""".npz files an artifact carries (reference inputs and outputs, TensorRT calibration data),
read as input from elsewhere: every array's .npy header is read from the archive first, and
its shape, dtype and size are checked against the manifest's tensors before one array is
unpacked. np.load would otherwise make each array whole as its header says, so a small
compressed file could claim gigabytes (the file's own size cap bounds only compressed bytes).
"""

from __future__ import annotations

import math
import zipfile
from typing import BinaryIO

import numpy as np

MAX_ARRAY_BYTES = 4 << 30  # the arrays of one file, unpacked: what a board with 8 GB can hold beside a model
MAX_MEMBERS = 4096


class BadNpz(ValueError):
    """An .npz that is not what the manifest says: damaged, another format, or arrays of the wrong shape or size."""


def _header(archive: zipfile.ZipFile, member: str) -> tuple[tuple[int, ...], np.dtype]:
    with archive.open(member) as stream:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
        else:  # 3.0 is only written for structured dtypes with non-Latin-1 field names
            raise BadNpz(f"{member} is .npy format {version[0]}.{version[1]}, which arrays of numbers are not written in")
    return tuple(shape), dtype


def _fits(shape: tuple[int, ...], spec: list | None) -> bool:
    """Whether an array stacked on axis 0 (samples) has the rank of the manifest's tensor and its
    fixed sizes on every other axis (a name, null, -1 or 0 is a dynamic size: anything fits)."""
    if not spec:
        return True
    if len(shape) != len(spec):
        return False
    return all(not (isinstance(want, int) and want > 0) or want == got for want, got in zip(spec[1:], shape[1:]))


def load(handle: BinaryIO, specs: dict[str, list | None], limit: int | None = None) -> dict[str, np.ndarray]:
    """The arrays named in `specs` (name -> the manifest's shape, or None: any shape) from the .npz
    open in `handle`, each of a numeric dtype and the manifest's shape, all of them together at
    most `limit` bytes unpacked; BadNpz (one line, without the file's name) otherwise. A name the
    file lacks is left out: the caller says which were wanted."""
    limit = MAX_ARRAY_BYTES if limit is None else limit
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise BadNpz(f"is not a readable .npz ({error})") from None
    with archive:
        members = archive.namelist()
        if len(members) > MAX_MEMBERS:
            raise BadNpz(f"holds {len(members)} members, over the {MAX_MEMBERS} an .npz of an artifact has")
        total, headers = 0, {}
        for name, spec in specs.items():
            if f"{name}.npy" not in members:
                continue
            try:
                shape, dtype = _header(archive, f"{name}.npy")
            except BadNpz:
                raise
            except Exception as error:  # zipfile, zlib and numpy's header parser each raise their own
                raise BadNpz(f"array {name!r} has no readable .npy header ({type(error).__name__}: {str(error)[:120]})") from None
            if dtype.hasobject or dtype.kind not in "biufc" or dtype.fields:
                raise BadNpz(f"array {name!r} is of dtype {dtype}, not numbers")
            if not _fits(shape, spec):
                raise BadNpz(f"array {name!r} has the shape {list(shape)}; the manifest's tensor is {spec} (samples stacked on axis 0)")
            total += math.prod(shape) * dtype.itemsize
            if total > limit:
                raise BadNpz(f"its arrays would take over {limit >> 20} MiB unpacked (array {name!r} is {list(shape)} of {dtype})")
            headers[name] = shape
        handle.seek(0)
        try:
            with np.load(handle, allow_pickle=False) as data:
                return {name: data[name] for name in headers}
        except Exception as error:  # a damaged member after its header: zipfile, zlib and numpy each raise their own
            first = str(error).splitlines()[0] if str(error) else ""
            raise BadNpz(f"is not a readable .npz ({type(error).__name__}: {first[:160]})") from None
