"""Watching a running toolchain container: its progress lines shown as they come, its log kept
in bounded memory (the first and last megabytes), its last error line, a deadline that kills
it, and whether the engine stopped it at its memory limit."""

from __future__ import annotations

import io
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from edgeship.errors import EdgeshipError

PROGRESS, ERROR = "edgeship-worker: ", "edgeship-worker-error: "
LOG_CAP_BYTES = 16 << 20  # of a container's log, the first and last 8 MiB are kept
ERROR_LINE_CHARS = 2000
ENGINE_WAIT_S = 120  # for the engine to report an exit once the log stream ended


class Deadline:
    """Kills a container that runs past `seconds` (the log stream it is followed by would wait for
    it forever); `expired` says whether it did."""

    def __init__(self, container, seconds: float):
        import threading

        self.expired = False
        self.timer = threading.Timer(seconds, self._kill, [container])
        self.timer.daemon = True

    def _kill(self, container) -> None:
        self.expired = True
        try:
            container.kill()
        except Exception:  # already gone
            pass

    def __enter__(self) -> Deadline:
        self.timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.timer.cancel()

    @staticmethod
    def message(what: str, seconds: float) -> str:
        limit = f"{seconds / 60:.0f}-minute" if seconds >= 120 else f"{seconds:.0f}-second"
        return (f"{what} ran past its {limit} limit and was stopped; a toolchain that hangs on a model "
                f"(or a machine too loaded to finish it) ends here, not in a CI timeout")


class CappedLog:
    """A container's log as it comes, in bounded memory: the first half of `cap` bytes goes straight
    to `sink` (a file), the last half is held until the end; what falls between is left out, and
    a line in the log says how much."""

    def __init__(self, sink, cap: int = LOG_CAP_BYTES):
        self.sink, self.head_cap, self.tail_cap = sink, cap // 2, cap - cap // 2
        self.head_left = self.head_cap
        self.tail: deque[bytes] = deque()
        self.tail_bytes = self.left_out = 0

    def add(self, chunk: bytes) -> None:
        if self.head_left:
            head, chunk = chunk[:self.head_left], chunk[self.head_left:]
            self.sink.write(head)
            self.head_left -= len(head)
        if not chunk:
            return
        self.tail.append(chunk)
        self.tail_bytes += len(chunk)
        while self.tail_bytes - len(self.tail[0]) >= self.tail_cap:  # whole chunks first; the rest is cut in close()
            dropped = self.tail.popleft()
            self.tail_bytes -= len(dropped)
            self.left_out += len(dropped)

    def close(self) -> None:
        tail = b"".join(self.tail)
        cut = max(0, len(tail) - self.tail_cap)
        self.left_out += cut
        if self.left_out:
            self.sink.write(f"\n[edgeship: {self.left_out} bytes of this log left out here; its first {self.head_cap} "
                            f"and last {self.tail_cap} bytes are kept]\n".encode())
        self.sink.write(tail[cut:])
        self.tail.clear()


def shown(text: str) -> str:
    """A container's line as the controller shows it: no terminal escapes, bounded."""
    return "".join(c if c.isprintable() else "?" for c in text[:ERROR_LINE_CHARS])


@dataclass
class Followed:
    """What a followed toolchain container left: its exit status, its error line, and its log (in
    `log_path`, or held when the caller gave none), capped to its first and last megabytes."""

    status: dict
    error_line: str
    expired: bool
    log_path: Path | None = None
    held: bytes = b""
    out_of_memory: bool = False  # the engine killed it at its memory limit

    @property
    def log(self) -> bytes:
        return self.log_path.read_bytes() if self.log_path is not None else self.held


def follow(container, seconds: float, log_path: Path | None = None, show: bool = True, cap: int = LOG_CAP_BYTES) -> Followed:
    """Show the container's progress lines as they come (`show`), keep its log (capped) and its last
    error line, kill it past `seconds`; the container is removed in any case."""
    import requests

    error_line, held = "", b""
    try:
        with (open(log_path, "wb") if log_path is not None else io.BytesIO()) as sink, Deadline(container, seconds) as deadline:
            log = CappedLog(sink, cap)
            for chunk in container.logs(stream=True, follow=True):
                log.add(chunk)
                for line in chunk.decode(errors="replace").splitlines():
                    if line.startswith(PROGRESS) and show:
                        print("  " + shown(line[len(PROGRESS):]), flush=True)
                    elif line.startswith(ERROR):
                        error_line = shown(line[len(ERROR):])
            try:
                status = container.wait(timeout=ENGINE_WAIT_S)
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):  # the engine's socket went quiet
                raise EdgeshipError(f"the Docker engine did not report the exit of container {str(container.id)[:12]} within "
                                    f"{ENGINE_WAIT_S} s of its log's end; see `docker ps -a` and the engine's log") from None
            out_of_memory = _out_of_memory(container)
            log.close()
            held = sink.getvalue() if isinstance(sink, io.BytesIO) else b""
    finally:
        container.remove(force=True)
    return Followed(status, error_line, deadline.expired, log_path, held, out_of_memory)


def _out_of_memory(container) -> bool:
    import docker
    import requests

    try:
        container.reload()
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        return False
    return bool(container.attrs.get("State", {}).get("OOMKilled"))
