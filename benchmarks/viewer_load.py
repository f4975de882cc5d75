"""The demo's viewer under a flood: how fast a real client's /stats.json is served, and how many
threads the viewer holds, as idle and half-sent connections pile up.

    .venv/bin/python benchmarks/viewer_load.py   (after ./dev has made .venv)

The viewer runs in this process on loopback (serve(), as the demo starts it), fed the test
pattern's JPEGs. For each flood size, half the connections are idle and half have sent a
request line without the blank line that ends the headers; then 50 GETs of /stats.json are
timed one after another. Nothing here is bounded by a time-out of the viewer's (the run takes
less than its 5 s header time-out per flood size).
"""

from __future__ import annotations

import http.client
import resource
import socket
import statistics
import threading
import time

import cv2

from edgeship_runtime.demo import open_source
from edgeship_runtime.demo.viewer import Publisher, serve

FLOODS = (0, 200, 700, 1500)
REQUESTS = 50


def _flood(address: tuple[str, int], count: int) -> list[socket.socket]:
    sockets = []
    for index in range(count):
        sock = socket.create_connection(address, timeout=5)
        if index % 2:
            sock.sendall(b"GET /stats.json HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sockets.append(sock)
    return sockets


def _timed_gets(address: tuple[str, int]) -> list[float]:
    took = []
    for _ in range(REQUESTS):
        began = time.perf_counter()
        connection = http.client.HTTPConnection(*address, timeout=10)
        connection.request("GET", "/stats.json")
        response = connection.getresponse()
        response.read()
        connection.close()
        assert response.status == 200, response.status
        took.append((time.perf_counter() - began) * 1000)
    return took


def main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192, hard))
    publisher, source, stop = Publisher(), open_source("pattern", 320, 240, fps=30), threading.Event()

    def feed() -> None:
        while not stop.is_set():
            read = source.read()
            if read is not None:
                publisher.publish(cv2.imencode(".jpg", read[0])[1].tobytes())

    threading.Thread(target=feed, daemon=True).start()
    baseline = threading.active_count()
    server = serve("127.0.0.1:0", publisher, lambda: {"ok": True}, "benchmark")
    address = server.server_address[:2]
    print(f"{'flood':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'threads':>8}")
    try:
        for count in FLOODS:
            flood = _flood(address, count)
            time.sleep(0.3)
            took = sorted(_timed_gets(address))
            threads = threading.active_count() - baseline
            print(f"{count:>6} {statistics.median(took):>8.1f} {took[int(0.95 * len(took)) - 1]:>8.1f} {took[-1]:>8.1f} {threads:>8}")
            for sock in flood:
                sock.close()
    finally:
        stop.set()
        publisher.close()
        server.shutdown()
        server.server_close()
        source.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


if __name__ == "__main__":
    main()
