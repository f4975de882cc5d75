"""files.read_bounded and files.read_json_object: the one reader of a file someone else made
(a manifest, a container's report, a board's result file): a regular file only, never followed,
never waited on, bounded, UTF-8, whole JSON, an object; each refusal one line naming the file."""

from __future__ import annotations

import os
import threading

import pytest

from edgeship_runtime.files import UnreadableFile, UnsafePath, read_bounded, read_json_object


def test_a_regular_file_is_read_whole(tmp_path):
    (tmp_path / "a.json").write_text('{"a": [1, 2], "b": NaN}')
    assert read_bounded(tmp_path / "a.json", 100) == b'{"a": [1, 2], "b": NaN}'
    assert read_json_object(tmp_path / "a.json", 100)["a"] == [1, 2]


def test_a_link_is_refused_never_followed(tmp_path):
    (tmp_path / "secret").write_text('{"secret": 1}')
    (tmp_path / "a.json").symlink_to(tmp_path / "secret")
    with pytest.raises(UnsafePath, match=r"the manifest .*a\.json is a symbolic link; edgeship does not follow links") as refused:
        read_json_object(tmp_path / "a.json", 100, "the manifest")
    assert refused.value.problem == "unsafe"


def test_a_fifo_is_refused_and_not_waited_on(tmp_path):
    os.mkfifo(tmp_path / "a.json")
    outcome: list = []
    reader = threading.Thread(target=lambda: outcome.append(pytest.raises(UnsafePath, read_bounded, tmp_path / "a.json", 100)), daemon=True)
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), "read_bounded waited on a FIFO"
    assert "is a FIFO, not a regular file" in str(outcome[0].value)


@pytest.mark.parametrize(("content", "problem", "message"), [
    (b"x" * 101, "too big", r"is 101 bytes, over the 100 bytes it may have"),
    (b'{"a": "\xff"}', "not UTF-8", r"is not UTF-8 text \(byte 0xff at offset 7\)"),
    (b'{"a": ', "not JSON", r"is not whole JSON \(Expecting value"),
    (b"[" * 50 + b"]" * 50, "not an object", r"holds a list, not a JSON object"),
    (b'"text"', "not an object", r"holds a string, not a JSON object"),
])
def test_what_is_not_a_json_object_is_one_line_saying_why(tmp_path, content, problem, message):
    (tmp_path / "a.json").write_bytes(content)
    with pytest.raises(UnreadableFile, match=message) as refused:
        read_json_object(tmp_path / "a.json", 100, "result file")
    assert refused.value.problem == problem and str(tmp_path / "a.json") in str(refused.value) and "\n" not in str(refused.value)


def test_json_nested_past_the_parser_is_refused_not_a_recursion_error(tmp_path):
    (tmp_path / "a.json").write_bytes(b"[" * 200_000 + b"]" * 200_000)
    with pytest.raises(UnreadableFile, match=r"is JSON nested too deeply to read") as refused:
        read_json_object(tmp_path / "a.json", 1 << 20)
    assert refused.value.problem == "too deep"


def test_nan_is_refused_where_json_must_be_strict(tmp_path):
    (tmp_path / "a.json").write_text('{"min_cosine": NaN}')
    with pytest.raises(UnreadableFile, match=r"holds NaN, which is not a JSON number"):
        read_json_object(tmp_path / "a.json", 100, constants=False)


def test_a_missing_file_is_unreadable_with_its_cause(tmp_path):
    with pytest.raises(UnsafePath, match=r"cannot be read \(No such file or directory\)") as refused:
        read_bounded(tmp_path / "absent.json", 100)
    assert refused.value.problem == "unreadable" and isinstance(refused.value.cause, FileNotFoundError)
