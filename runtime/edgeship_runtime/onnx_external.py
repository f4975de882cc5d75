"""The external-data file names an ONNX model refers to, read from its protobuf without loading it.

An ONNX tensor may keep its values in another file (`external_data` {"location": NAME}), which
ONNX Runtime and TensorRT's parser open relative to the model, wherever NAME points. Those names
are checked against the artifact before a session is created, so this reads just them: a small
walk over the protobuf wire format (the `onnx` package is not a board dependency), skipping every
weight it passes. A file that is not a well-formed protobuf is refused here, before a runtime
sees it.
"""

from __future__ import annotations

import mmap
from pathlib import Path

# message -> {field number: the message that field holds}, for the fields that can hold tensors
_MODEL, _GRAPH, _NODE, _ATTRIBUTE, _TENSOR, _SPARSE, _FUNCTION, _TRAINING = range(8)
_CHILDREN = {
    _MODEL: {7: _GRAPH, 20: _TRAINING, 25: _FUNCTION},  # graph, training_info, functions
    _GRAPH: {1: _NODE, 5: _TENSOR, 15: _SPARSE},  # node, initializer, sparse_initializer
    _NODE: {5: _ATTRIBUTE},
    _ATTRIBUTE: {5: _TENSOR, 6: _GRAPH, 10: _TENSOR, 11: _GRAPH, 22: _SPARSE, 23: _SPARSE},  # t, g, tensors, graphs, sparse_tensor(s)
    _TENSOR: {},  # its external_data entries are read in place
    _SPARSE: {1: _TENSOR, 2: _TENSOR},  # values, indices
    _FUNCTION: {7: _NODE},
    _TRAINING: {1: _GRAPH, 2: _GRAPH},  # initialization, algorithm
}
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
MAX_MESSAGES = 10_000_000


class NotOnnx(ValueError):
    """The file is not a well-formed ONNX protobuf (truncated, damaged, or another format)."""


def _varint(data, position: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= end or shift > 63:
            raise NotOnnx("a number runs past its message")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7


def _entry(data, position: int, end: int) -> tuple[bytes, bytes]:
    """A StringStringEntryProto's key and value."""
    parts = {1: b"", 2: b""}
    while position < end:
        key, position = _varint(data, position, end)
        if key & 7 != 2:
            raise NotOnnx("an external data entry holds a field that is not text")
        length, position = _varint(data, position, end)
        if position + length > end:
            raise NotOnnx("an external data entry runs past its message (a truncated file?)")
        parts[key >> 3] = bytes(data[position:position + length])
        position += length
    return parts[1], parts[2]


def _walk(data) -> list[str]:
    locations: list[str] = []
    pending = [(0, len(data), _MODEL)]
    seen = 0
    while pending:
        position, end, kind = pending.pop()
        seen += 1
        if seen > MAX_MESSAGES:
            raise NotOnnx(f"more than {MAX_MESSAGES} nested messages")
        stored_outside, location = False, b""
        named = False
        while position < end:
            key, position = _varint(data, position, end)
            number, wire = key >> 3, key & 7
            if wire == 0:
                value, position = _varint(data, position, end)
                stored_outside = stored_outside or (kind == _TENSOR and number == 14 and value == _EXTERNAL)
            elif wire in (1, 5):
                position += 8 if wire == 1 else 4
            elif wire == 2:
                length, position = _varint(data, position, end)
                if position + length > end:
                    raise NotOnnx("a field runs past the end of its message (a truncated file?)")
                if kind == _TENSOR and number == 13:
                    name, text = _entry(data, position, position + length)
                    if name == b"location":
                        location, named = text, True
                elif _CHILDREN[kind].get(number) is not None:
                    pending.append((position, position + length, _CHILDREN[kind][number]))
                position += length
            else:
                raise NotOnnx(f"wire type {wire} does not occur in ONNX")
            if position > end:
                raise NotOnnx("a value runs past the end of its message (a truncated file?)")
        if named:
            try:
                locations.append(location.decode("utf-8"))
            except UnicodeDecodeError:
                raise NotOnnx("an external data location is not UTF-8") from None
        elif stored_outside:
            raise NotOnnx("a tensor keeps its data outside the model but names no location")
    return locations


def external_data_locations(path: Path | str) -> list[str]:
    """Every external-data location the ONNX model at `path` names (as written, relative to its
    folder), in no particular order; NotOnnx when the file is not a well-formed protobuf."""
    with open(path, "rb") as handle:
        size = handle.seek(0, 2)
        if size == 0:
            raise NotOnnx("the file is empty")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                found = _walk(view)
            finally:
                view.release()
    return sorted(set(found))
