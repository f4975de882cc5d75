"""The demo's viewer holds up: the real viewer (serve(), as the demo starts it, fed JPEGs of the
test pattern) on loopback, under idle and half-sent connections, full client slots, a client
that stops reading, and slow or idle connections."""

from __future__ import annotations

import http.client
import json
import resource
import selectors
import socket
import threading
import time
from contextlib import contextmanager

import pytest

from edgeship_runtime.demo.server import Limits
from edgeship_runtime.demo.viewer import Publisher, serve

IDLE, HALF_SENT = 500, 200


@contextmanager
def viewer(limits: Limits | None = None, size=(64, 48), fps: float = 30):
    """The viewer serving the test pattern's frames, on a free loopback port; yields the server."""
    cv2 = pytest.importorskip("cv2")
    from edgeship_runtime.demo import open_source

    publisher, source, stop = Publisher(), open_source("pattern", *size, fps=fps), threading.Event()
    shown = {"frames": 0}

    def feed():
        while not stop.is_set():
            image, _ = source.read()
            publisher.publish(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes())
            shown["frames"] += 1

    feeder = threading.Thread(target=feed, name="test-pattern", daemon=True)
    feeder.start()
    server = serve("127.0.0.1:0", publisher, lambda: dict(shown), "pattern", limits=limits)
    try:
        yield server
    finally:
        stop.set()
        publisher.close()
        server.shutdown()
        server.server_close()
        feeder.join(5)
        source.close()


def get(server, path: str = "/stats.json", timeout: float = 5.0) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=timeout)
    connection.request("GET", path)
    response = connection.getresponse()
    response.body = response.read()  # type: ignore[attr-defined]
    connection.close()
    return response


def open_stream(server) -> socket.socket:
    """A stream client that has its response headers: it holds one of the viewer's client slots."""
    sock = socket.create_connection(server.server_address[:2], timeout=5)
    sock.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert sock.recv(4096).split(b"\r\n")[0].endswith(b" 200 OK"), "the stream did not start"
    return sock


def closed_by_server(sockets: list[socket.socket], within_s: float) -> int:
    """How many of `sockets` the server closes within `within_s` (their read ends: EOF or reset)."""
    selector, closed = selectors.DefaultSelector(), 0
    for sock in sockets:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    deadline = time.monotonic() + within_s
    while selector.get_map() and time.monotonic() < deadline:
        for key, _ in selector.select(0.2):
            try:
                ended = key.fileobj.recv(4096) == b""  # type: ignore[union-attr]
            except ConnectionError:
                ended = True
            if ended:
                selector.unregister(key.fileobj)
                closed += 1
    selector.close()
    return closed


@pytest.fixture
def descriptors():
    """700 client sockets here and the viewer's own in the same process: raise the soft limit
    for open files to 4096 (within the hard limit) for this test."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    if wanted < 2 * (IDLE + HALF_SENT) + 200:
        pytest.skip(f"the hard limit of open files ({hard}) is below what {IDLE + HALF_SENT} connections need here")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_500_idle_and_200_half_sent_connections_leave_stats_served_within_a_second(descriptors):
    limits = Limits()
    baseline = threading.active_count()
    flood: list[socket.socket] = []
    try:
        with viewer() as server:
            address = server.server_address[:2]
            for _ in range(IDLE):
                flood.append(socket.create_connection(address, timeout=5))
            for _ in range(HALF_SENT):  # the request line and a header, never the blank line that ends them
                sock = socket.create_connection(address, timeout=5)
                sock.sendall(b"GET /stats.json HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                flood.append(sock)
            time.sleep(0.5)  # the viewer has taken them all in
            threads_under_flood = threading.active_count()
            began = time.monotonic()
            response = get(server, timeout=5)
            took = time.monotonic() - began
            assert response.status == 200 and "frames" in json.loads(response.body)
            assert took < 1.0, f"/stats.json took {took:.2f} s under the flood"
            # no thread per connection: the selector thread, the test pattern's feeder, and at most one per client slot
            assert threads_under_flood <= baseline + 2 + limits.max_clients, (threads_under_flood, baseline)
            assert threading.active_count() <= baseline + 2 + limits.max_clients
            # the half-sent requests (and the idle connections still held) are closed at the header time-out
            assert closed_by_server(flood, limits.header_timeout_s + 3) == len(flood)
            print(f"viewer under {IDLE} idle + {HALF_SENT} half-sent connections: /stats.json in {took * 1000:.0f} ms, "
                  f"{threads_under_flood - baseline} threads over the baseline")
    finally:
        for sock in flood:
            sock.close()


def test_a_full_viewer_answers_503_with_retry_after_at_once_and_frees_the_slot_of_a_client_that_left():
    """Two /frame.jpg requests before the first frame hold both slots (each waits up to 5 s for one)."""
    publisher = Publisher()
    server = serve("127.0.0.1:0", publisher, dict, "no frames yet", limits=Limits(max_clients=2, max_streams=1))
    try:
        waiting = [threading.Thread(target=get, args=(server, "/frame.jpg", 10), daemon=True) for _ in range(2)]
        for thread in waiting:
            thread.start()
        deadline = time.monotonic() + 5
        while server.busy < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        began = time.monotonic()
        response = get(server)
        assert response.status == 503 and response.getheader("Retry-After") == str(Limits().retry_after_s)
        assert time.monotonic() - began < 1.0
        publisher.publish(b"\xff\xd8 a frame")  # both answered: their slots are free again
        for thread in waiting:
            thread.join(5)
        assert get(server).status == 200
    finally:
        publisher.close()
        server.shutdown()
        server.server_close()


def test_a_stream_client_that_stops_reading_is_dropped_after_the_write_time_out():
    with viewer(Limits(max_clients=2, max_streams=1, write_timeout_s=1.0), size=(640, 480), fps=60) as server:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and never read: the viewer's writes stall
        sock.connect(server.server_address[:2])
        sock.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        time.sleep(0.5)
        assert get(server, "/stream.mjpg").status == 503  # the one stream slot is held by the stalled stream
        assert get(server).status == 200  # the slot kept for other requests is not
        deadline, status = time.monotonic() + 30, 503
        while status == 503 and time.monotonic() < deadline:
            time.sleep(0.2)
            status = _stream_status(server)
        assert status == 200, "the stalled stream still holds the viewer's only stream slot"
        sock.close()


def _stream_status(server) -> int:
    sock = socket.create_connection(server.server_address[:2], timeout=5)
    sock.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    status = int(sock.recv(4096).split(b"\r\n")[0].split()[1])
    sock.close()
    return status


def test_slow_request_headers_and_idle_kept_alive_connections_are_closed():
    with viewer(Limits(header_timeout_s=0.5, idle_timeout_s=0.5)) as server:
        address = server.server_address[:2]
        slow = socket.create_connection(address, timeout=5)
        for part in (b"GET /stats.json HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n"):  # slowloris: a trickle, never the end
            slow.sendall(part)
            time.sleep(0.2)
        kept = socket.create_connection(address, timeout=5)
        kept.sendall(b"GET /stats.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert kept.recv(4096).split(b"\r\n")[0].endswith(b" 200 OK")  # answered, and kept alive (HTTP/1.1)
        began = time.monotonic()
        assert closed_by_server([slow, kept], 3.0) == 2
        assert time.monotonic() - began < 2.0
        slow.close()
        kept.close()


def test_a_kept_alive_connection_is_served_again():
    with viewer() as server:
        connection = http.client.HTTPConnection(*server.server_address[:2], timeout=5)
        for _ in range(3):
            connection.request("GET", "/stats.json")
            response = connection.getresponse()
            assert response.status == 200 and json.loads(response.read())["frames"] >= 0
        connection.close()


def stream_answers(server, count: int) -> tuple[list[socket.socket], list[int]]:
    """`count` stream requests left open; each one's socket and status."""
    sockets, statuses = [], []
    for _ in range(count):
        sock = socket.create_connection(server.server_address[:2], timeout=5)
        sock.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        statuses.append(int(sock.recv(4096).split(b"\r\n")[0].split()[1]))
        sockets.append(sock)
    return sockets, statuses


def test_streams_never_lock_out_stats_or_frames():
    """Streams take at most max_streams slots: 16 viewer tabs leave /stats.json and /frame.jpg (the
    demo role's check) answered, and the tabs past the cap are told to retry."""
    limits = Limits()
    with viewer(limits) as server:
        sockets, statuses = stream_answers(server, limits.max_clients)
        try:
            assert statuses == [200] * limits.max_streams + [503] * (limits.max_clients - limits.max_streams)
            began = time.monotonic()
            assert get(server).status == 200 and get(server, "/frame.jpg").status == 200
            assert time.monotonic() - began < 1.0
        finally:
            for sock in sockets:
                sock.close()


def test_streams_whose_clients_left_while_no_frame_came_free_their_slots_within_seconds():
    """The camera stalls after one frame, so no stream writes; 16 stream clients leave at once. The
    viewer notices they left (it had held their slots for as long as the stall lasted)."""
    publisher = Publisher()
    publisher.publish(b"\xff\xd8 one frame, then the source stalls")
    server = serve("127.0.0.1:0", publisher, dict, "stalled", limits=Limits())
    try:
        sockets, statuses = stream_answers(server, 16)
        assert statuses.count(200) == Limits().max_streams
        for sock in sockets:
            sock.close()
        began = time.monotonic()
        assert get(server).status == 200
        deadline = time.monotonic() + 2.5
        while server.busy and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.busy == 0, f"{server.busy} slots still held {time.monotonic() - began:.1f} s after every client left"
        again, statuses = stream_answers(server, Limits().max_streams)
        assert statuses == [200] * Limits().max_streams
        for sock in again:
            sock.close()
    finally:
        publisher.close()
        server.shutdown()
        server.server_close()
