"""How a followed container's log is kept: in bounded memory, its head and tail, the cut said in
the log. The container is a stand-in (below): only the log-keeping is under test here; what a
real container leaves is checked in tests/container/convert/test_untrusted_output.py."""

from __future__ import annotations

import io

from edgeship.convert.following import CappedLog, follow


class ChattyContainerStandIn:
    """Stands in for a docker container that prints `chunks` and exits 0, to test how follow()
    keeps its log; nothing of the trust checks is tested with it."""

    id = "stand-in-container"

    def __init__(self, chunks: list[bytes]):
        self.chunks, self.removed, self.attrs = chunks, False, {"State": {"OOMKilled": False}}

    def logs(self, stream: bool, follow: bool):
        yield from self.chunks

    def wait(self, timeout=None) -> dict:
        return {"StatusCode": 0}

    def reload(self) -> None:
        pass

    def kill(self) -> None:
        pass

    def remove(self, force: bool = False) -> None:
        self.removed = True


def numbered_lines(count: int) -> list[bytes]:
    return [f"line {index:06d}\n".encode() for index in range(count)]


def test_a_log_over_the_cap_keeps_its_head_and_tail_and_says_what_was_left_out(tmp_path):
    chunks = numbered_lines(20_000)  # 240 000 bytes
    whole = b"".join(chunks)
    container = ChattyContainerStandIn(chunks)
    run = follow(container, 60, tmp_path / "convert.log", cap=20_000)
    kept = (tmp_path / "convert.log").read_bytes()
    assert kept.startswith(whole[:10_000]) and kept.endswith(whole[-10_000:])
    assert f"[edgeship: {len(whole) - 20_000} bytes of this log left out here; its first 10000 and last 10000 bytes are kept]".encode() in kept
    assert len(kept) < 20_200 and run.log == kept and container.removed


def test_the_memory_held_stays_at_the_tail_cap_plus_one_chunk():
    log, sink = CappedLog(io.BytesIO(), cap=1000), io.BytesIO()
    log.sink = sink
    held = []
    for chunk in numbered_lines(5000):
        log.add(chunk)
        held.append(log.tail_bytes)
    assert max(held) <= 500 + len(b"line 000000\n")
    assert len(sink.getvalue()) == 500  # the head went to the file as it came, not into memory


def test_a_log_under_the_cap_is_kept_whole_with_no_note(tmp_path):
    chunks = numbered_lines(100)
    run = follow(ChattyContainerStandIn(chunks), 60, tmp_path / "convert.log")
    assert run.log == b"".join(chunks) and not run.expired and run.status == {"StatusCode": 0}


def test_without_a_file_the_capped_log_is_held():
    run = follow(ChattyContainerStandIn(numbered_lines(1000)), 60, cap=2000)
    assert len(run.log) < 2100 and run.log.startswith(b"line 000000\n") and run.log.endswith(b"line 000999\n")


def test_a_containers_lines_reach_the_terminal_without_escapes(capsys):
    chunks = [b"edgeship-worker: step \x1b[2J one\n", b"edgeship-worker-error: RuntimeError: bad \x1b]0;title\x07 thing\n"]
    run = follow(ChattyContainerStandIn(chunks), 60)
    assert capsys.readouterr().out == "  step ?[2J one\n"
    assert run.error_line == "RuntimeError: bad ?]0;title? thing"
