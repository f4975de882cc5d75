"""A cache folder shared by several jobs: two real processes publishing the same key at the same
instant (a barrier releases them together) leave one whole entry, one writer's files and nothing
else; the loser keeps the winner's copy. Repeated, so the race is really run, not just once."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from edgeship.convert import run
from edgeship.convert.cache import publish, publish_artifact

FILES = ("model.onnx", "manifest.json", "report.json")
SIZE = 1 << 20  # large enough that a copy takes a while to write
ROUNDS = 8


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() and (folder / name).stat().st_size == SIZE for name in FILES)


def _writer(cache: str, key: str, marker: int, barrier, results) -> None:
    """One job: fill its own staging folder, wait for the other, publish."""
    import tempfile

    final = Path(cache) / key
    staging = Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=".partial", dir=cache))
    for name in FILES:
        (staging / name).write_bytes(bytes([marker]) * SIZE)
    barrier.wait(timeout=60)
    results.put((marker, publish(staging, final, _complete)))


def _race(cache: Path, key: str) -> list[tuple[int, bool]]:
    context = multiprocessing.get_context("fork")  # two processes of their own, as two CI jobs are
    barrier, results = context.Barrier(2), context.Queue()
    jobs = [context.Process(target=_writer, args=(str(cache), key, marker, barrier, results)) for marker in (1, 2)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(timeout=120)
        assert job.exitcode == 0, f"a writer failed (exit {job.exitcode})"
    return sorted(results.get(timeout=5) for _ in jobs)


@pytest.mark.parametrize("stale", [False, True], ids=["empty cache", "incomplete entry there"])
def test_two_jobs_writing_one_key_leave_one_whole_entry(tmp_path, stale):
    for round_number in range(ROUNDS):
        key = f"graph-{round_number}"
        if stale:  # an older edgeship's or a crash's half-written folder under the key
            (tmp_path / key).mkdir()
            (tmp_path / key / "model.onnx").write_bytes(b"half")
        outcome = _race(tmp_path, key)
        assert sorted(won for _marker, won in outcome) == [False, True], outcome
        winner = next(marker for marker, won in outcome if won)
        final = tmp_path / key
        assert sorted(os.listdir(final)) == sorted(FILES)
        assert all((final / name).read_bytes() == bytes([winner]) * SIZE for name in FILES)  # one writer's files, whole
    assert sorted(os.listdir(tmp_path)) == [f"graph-{n}" for n in range(ROUNDS)]  # no staging or stale folder left


def test_a_complete_entry_is_kept_and_the_new_copy_discarded(tmp_path):
    final = tmp_path / "key"
    final.mkdir()
    for name in FILES:
        (final / name).write_bytes(b"\1" * SIZE)
    staging = tmp_path / ".key.x.partial"
    staging.mkdir()
    (staging / "model.onnx").write_bytes(b"new")
    assert publish(staging, final, _complete) is False
    assert not staging.exists() and (final / "model.onnx").read_bytes() == b"\1" * SIZE


def _artifact(folder: Path, key: str, data: bytes) -> None:
    folder.mkdir()
    (folder / "model.onnx").write_bytes(data)
    (folder / "manifest.json").write_text(json.dumps({"cache_key": key, "artifact": {"file": "model.onnx"}}))


def test_a_fresh_conversion_keeps_another_writers_whole_entry_of_its_key(tmp_path):
    """`convert(fresh=True)` publishes as every conversion does (run.py): the whole entry of the same
    key a runner sharing the cache published first stays where it is, the one a reader has open."""
    final = tmp_path / "model-onnx-fp32-abc"
    _artifact(final, "abc", b"winner")
    inode = final.stat().st_ino
    with open(final / "model.onnx", "rb") as reader:
        staging = tmp_path / ".staging-x"
        _artifact(staging, "abc", b"fresh")
        assert publish_artifact(staging, final, "abc") is False
        assert final.stat().st_ino == inode and (final / "model.onnx").read_bytes() == b"winner" and reader.read() == b"winner"
    assert sorted(os.listdir(tmp_path)) == [final.name]  # the fresh copy discarded, nothing moved aside
    assert "publish_artifact(staging, final, key)" in (Path(run.__file__)).read_text()  # fresh or not: one way to publish


def test_a_half_written_entry_is_replaced_by_the_conversion(tmp_path):
    final = tmp_path / "model-onnx-fp32-abc"
    final.mkdir()
    (final / "model.onnx").write_bytes(b"half")  # no manifest: a crash's
    staging = tmp_path / ".staging-x"
    _artifact(staging, "abc", b"new")
    assert publish_artifact(staging, final, "abc") is True
    assert (final / "model.onnx").read_bytes() == b"new" and sorted(os.listdir(tmp_path)) == [final.name]
