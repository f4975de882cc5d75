"""The viewer's HTTP server, built to hold up: no thread waits for a request to arrive, a bounded
number answer them, and every wait has a time-out.

One selector thread accepts connections and reads each request's line and headers without
blocking, each connection against a deadline; a complete request goes to a worker thread, at
most `Limits.max_clients` at once (a stream holds one while it is watched; streams take at most
`max_streams` of them, so the page, /stats.json and /frame.jpg always have the rest). When all
are busy, the request is answered 503 with Retry-After at once and closed. Connections still sending
their request are capped too: past `max_pending`, or when the process runs out of file
descriptors, the oldest is dropped; with nothing left to drop, accepting pauses (backing off)
instead of spinning on EMFILE. A worker never reads the socket (the selector already has the
request), and its writes are bounded in total by `write_timeout_s` (socket.sendall's time-out
covers the whole call), so a client that stops reading is dropped; a handler that writes only
now and then (a stream while no frame comes) asks `peer_gone` to notice a client that left.
"""

from __future__ import annotations

import errno
import io
import select
import selectors
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler


@dataclass(frozen=True)
class Limits:
    max_clients: int = 16  # requests answered at once, a thread each (a stream holds one while watched)
    max_streams: int = 12  # of those, streams (below max_clients: the rest stay for the page, stats and frames)
    max_pending: int = 256  # connections still sending their request (no thread each)
    header_timeout_s: float = 5.0  # the request line and headers must arrive within this
    idle_timeout_s: float = 15.0  # a kept-alive connection may wait this long for its next request
    write_timeout_s: float = 10.0  # a whole response, or one stream frame, must be taken within this
    max_header_bytes: int = 16384
    retry_after_s: int = 2

    def __post_init__(self):
        if not 1 <= self.max_streams < self.max_clients:
            raise ValueError(f"Limits: max_streams must be at least 1 and below max_clients ({self.max_clients}), not {self.max_streams}")


_OUT_OF_DESCRIPTORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_GONE_BEFORE_ACCEPT = {errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EINTR}
_BACKOFF_FIRST_S, _BACKOFF_MAX_S = 0.05, 1.0
_SCAN_EVERY_S = 0.25  # how often deadlines are looked at
_LISTENER, _WAKE = object(), object()


@dataclass(eq=False)
class _Waiting:
    """A connection whose next request has not fully arrived."""

    sock: socket.socket
    peer: tuple
    deadline: float
    idle: bool = False  # kept alive, no byte of its next request yet
    buffer: bytes = field(default=b"")


@dataclass
class Request:
    """What a worker's handler gets: the connected socket and the request's line and headers."""

    sock: socket.socket
    head: bytes


class _SocketWriter:
    """wfile: every write is one sendall, bounded by the socket's time-out."""

    def __init__(self, sock: socket.socket):
        self.sock = sock

    def write(self, data: bytes) -> int:
        self.sock.sendall(data)
        return len(data)

    def flush(self) -> None:
        pass


class OneRequest(BaseHTTPRequestHandler):
    """http.server's parsing and replies for one request the selector read in full; the server
    keeps the connection for the next request unless the handler set close_connection."""

    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        self.connection = self.request.sock
        self.rfile = io.BytesIO(self.request.head)
        self.wfile = _SocketWriter(self.connection)  # type: ignore[assignment]

    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()

    def finish(self) -> None:
        pass


def _head_end(buffer: bytes) -> int:
    """Where the request's blank line ends (-1 while it has not arrived); bare LF lines count, as http.server reads them."""
    ends = [index + len(mark) for mark in (b"\r\n\r\n", b"\n\n") if (index := buffer.find(mark)) >= 0]
    return min(ends) if ends else -1


def peer_gone(sock: socket.socket) -> bool:
    """Whether the client has closed its end (end of stream or a reset is waiting to be read), looked
    at without waiting and without taking any byte it sent (poll: select() cannot watch fds past 1023)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    if not poller.poll(0):
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def _listening_socket(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class BoundedServer:
    """serve_forever() in one thread; shutdown() and server_close() from another, as socketserver's."""

    def __init__(self, address: tuple[str, int], handler_cls: type[OneRequest], limits: Limits | None = None):
        self.handler_cls, self.limits = handler_cls, limits or Limits()
        self.listener = _listening_socket(*address)
        self.server_address = self.listener.getsockname()
        self.stopping = False
        self.stream_slots = threading.Semaphore(self.limits.max_streams)  # a stream handler takes one without waiting
        self._waiting: OrderedDict[int, _Waiting] = OrderedDict()
        self._returned: list[tuple[socket.socket, tuple, bytes]] = []  # kept-alive connections handed back by workers
        self._lock = threading.Lock()
        self._busy = 0
        self._backoff_s = _BACKOFF_FIRST_S
        self._paused_until: float | None = None
        self._next_scan = 0.0
        self._loop_done = threading.Event()
        self._loop_started = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.listener, selectors.EVENT_READ, _LISTENER)
        self._selector.register(self._wake_r, selectors.EVENT_READ, _WAKE)

    @property
    def busy(self) -> int:
        with self._lock:
            return self._busy

    def serve_forever(self) -> None:
        self._loop_started = True
        try:
            while not self.stopping:
                now = time.monotonic()
                timeout = _SCAN_EVERY_S if self._paused_until is None else max(0.0, min(_SCAN_EVERY_S, self._paused_until - now))
                for key, _ in self._selector.select(timeout):
                    now = time.monotonic()
                    if key.data is _LISTENER:
                        self._accept(now)
                    elif key.data is _WAKE:
                        self._take_returned(now)
                    elif (waiting := self._waiting.get(key.fd)) is key.data and waiting is not None:  # not dropped earlier this round
                        try:
                            self._read(waiting, now)
                        except OSError:  # that connection ends; the loop, and every other client, go on
                            self._drop(waiting)
                now = time.monotonic()
                if now >= self._next_scan:
                    self._expire(now)
                if self._paused_until is not None and now >= self._paused_until:
                    self._paused_until = None
                    self._selector.register(self.listener, selectors.EVENT_READ, _LISTENER)
        finally:
            self._loop_done.set()

    def shutdown(self) -> None:
        self.stopping = True
        self._wake()
        if self._loop_started:
            self._loop_done.wait(5)

    def server_close(self) -> None:
        for waiting in list(self._waiting.values()):
            self._drop(waiting)
        with self._lock:
            returned, self._returned = self._returned, []
        for sock, _, _ in returned:
            _close(sock)
        self._selector.close()
        for sock in (self.listener, self._wake_r, self._wake_w):
            sock.close()

    # the selector thread's work
    def _accept(self, now: float) -> None:
        for _ in range(64):  # then the other sockets get a turn
            try:
                sock, peer = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                if error.errno in _OUT_OF_DESCRIPTORS and self._waiting:
                    self._drop(next(iter(self._waiting.values())))  # its descriptor goes to the newcomer
                    continue
                if error.errno in _GONE_BEFORE_ACCEPT:
                    continue
                self._pause(now)  # out of descriptors with none of ours to free, or worse: no busy loop
                return
            self._backoff_s = _BACKOFF_FIRST_S
            sock.setblocking(False)
            if len(self._waiting) >= self.limits.max_pending:
                self._drop(next(iter(self._waiting.values())))
            self._watch(_Waiting(sock, peer, now + self.limits.header_timeout_s))

    def _pause(self, now: float) -> None:
        if self._paused_until is None:
            self._selector.unregister(self.listener)
        self._paused_until = now + self._backoff_s
        self._backoff_s = min(self._backoff_s * 2, _BACKOFF_MAX_S)

    def _watch(self, waiting: _Waiting) -> None:
        self._waiting[waiting.sock.fileno()] = waiting
        self._selector.register(waiting.sock, selectors.EVENT_READ, waiting)
        if waiting.buffer:
            self._dispatch_if_complete(waiting)
        else:
            self._read(waiting, time.monotonic())  # a request often arrives with its connection

    def _read(self, waiting: _Waiting, now: float) -> None:
        try:
            data = waiting.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            return self._drop(waiting)
        if waiting.idle:  # the next request began: it has header_timeout_s from here
            waiting.idle, waiting.deadline = False, now + self.limits.header_timeout_s
        waiting.buffer += data
        self._dispatch_if_complete(waiting)

    def _dispatch_if_complete(self, waiting: _Waiting) -> None:
        waiting.buffer = waiting.buffer.lstrip(b"\r\n")  # blank lines between requests are ignored (RFC 9112 2.2)
        end = _head_end(waiting.buffer)
        if end < 0:
            if len(waiting.buffer) > self.limits.max_header_bytes:
                self._forget(waiting)
                self._refuse(waiting.sock, 431, "Request Header Fields Too Large")
            return
        self._forget(waiting)
        with self._lock:
            full = self._busy >= self.limits.max_clients
            self._busy += 0 if full else 1
        if full:
            return self._refuse(waiting.sock, 503, "Service Unavailable", f"Retry-After: {self.limits.retry_after_s}\r\n")
        head, rest = waiting.buffer[:end], waiting.buffer[end:]
        try:
            threading.Thread(target=self._work, args=(waiting.sock, waiting.peer, head, rest), name="demo-http-client", daemon=True).start()
        except RuntimeError:  # no thread to be had (a process limit): busy, as when every slot is taken
            with self._lock:
                self._busy -= 1
            self._refuse(waiting.sock, 503, "Service Unavailable", f"Retry-After: {self.limits.retry_after_s}\r\n")

    def _refuse(self, sock: socket.socket, status: int, reason: str, headers: str = "") -> None:
        body = f"{status} {reason}: the viewer is busy or the request too slow or too large\n".encode()
        response = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                    f"Connection: close\r\n{headers}\r\n").encode() + body
        try:
            sock.send(response)  # without waiting: a client that does not take this much at once gets nothing
        except OSError:
            pass
        _close(sock)

    def _expire(self, now: float) -> None:
        self._next_scan = now + _SCAN_EVERY_S
        for waiting in [w for w in self._waiting.values() if now >= w.deadline]:
            self._drop(waiting)

    def _forget(self, waiting: _Waiting) -> None:
        self._waiting.pop(waiting.sock.fileno(), None)
        self._selector.unregister(waiting.sock)

    def _drop(self, waiting: _Waiting) -> None:
        if self._waiting.get(waiting.sock.fileno()) is waiting:
            self._forget(waiting)
        _close(waiting.sock)

    def _take_returned(self, now: float) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        with self._lock:
            returned, self._returned = self._returned, []
        for sock, peer, rest in returned:
            if self.stopping:
                _close(sock)
                continue
            sock.setblocking(False)
            if len(self._waiting) >= self.limits.max_pending:
                self._drop(next(iter(self._waiting.values())))
            self._watch(_Waiting(sock, peer, now + self.limits.idle_timeout_s, idle=not rest, buffer=rest))

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:  # full already (a wake-up is pending) or closed
            pass

    # a worker thread's work: one request
    def _work(self, sock: socket.socket, peer: tuple, head: bytes, rest: bytes) -> None:
        keep = False
        try:
            sock.setblocking(True)
            sock.settimeout(self.limits.write_timeout_s)
            handler = self.handler_cls(Request(sock, head), peer, self)  # type: ignore[arg-type]
            keep = not handler.close_connection and not self.stopping
        except Exception:  # a client gone, a write timed out, or a bug: this connection ends, the server goes on
            keep = False
        finally:
            with self._lock:
                self._busy -= 1
                if keep:
                    self._returned.append((sock, peer, rest))
            if keep:
                self._wake()
            else:
                _close(sock)
