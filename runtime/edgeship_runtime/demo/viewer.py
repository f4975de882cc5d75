"""The demo's viewer: a page with the annotated MJPEG stream and live stats, served on loopback by default.

The page is package data (viewer.html); `__TITLE__` in it becomes the artifact's name.
"""

from __future__ import annotations

import html
import json
import threading
from importlib import resources

from edgeship_runtime.errors import ArtifactError


def viewer_page(title: str) -> str:
    template = resources.files("edgeship_runtime.demo").joinpath("viewer.html").read_text(encoding="utf-8")
    return template.replace("__TITLE__", html.escape(title))


class Publisher:
    """The newest annotated JPEG, handed to every stream client as it arrives."""

    def __init__(self):
        self.condition = threading.Condition()
        self.jpeg, self.sequence, self.closed = None, 0, False

    def publish(self, jpeg: bytes) -> None:
        with self.condition:
            self.jpeg, self.sequence = jpeg, self.sequence + 1
            self.condition.notify_all()

    def wait(self, after: int, timeout: float = 1.0):
        with self.condition:
            self.condition.wait_for(lambda: self.sequence != after or self.closed, timeout)
            return self.jpeg, self.sequence

    def close(self) -> None:
        with self.condition:
            self.closed = True
            self.condition.notify_all()


def parse_listen(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise ArtifactError(f"--listen {address!r} is not HOST:PORT; e.g. 127.0.0.1:8080 (0.0.0.0:8080 to let other machines watch)")
    return host.strip("[]"), int(port)


def serve(address: str, publisher: Publisher, stats, title: str):
    """Start the viewer on HOST:PORT in a daemon thread; returns the server (its URL in .url)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    host, port = parse_listen(address)
    page = viewer_page(title).encode()

    class Handler(BaseHTTPRequestHandler):
        server_version = "edgeship-demo"

        def log_message(self, *args):  # no per-request lines on the board's journal
            pass

        def _send(self, body: bytes, content_type: str, status: int = 200):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                return self._send(page, "text/html; charset=utf-8")
            if path == "/stats.json":
                return self._send(json.dumps(stats(), sort_keys=True).encode(), "application/json")
            if path == "/frame.jpg":
                jpeg, _ = publisher.wait(0, 5.0)
                return self._send(jpeg, "image/jpeg") if jpeg else self._send(b"no frame yet\n", "text/plain", 503)
            if path != "/stream.mjpg":
                return self._send(b"not found\n", "text/plain", 404)
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            sequence = 0
            try:
                while not publisher.closed:
                    jpeg, latest = publisher.wait(sequence)
                    if jpeg is None or latest == sequence:
                        continue
                    sequence = latest
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg) + jpeg + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True
        url = ""

    try:
        server = Server((host, port), Handler)
    except OSError as error:
        raise ArtifactError(f"--listen {address}: cannot listen there ({error.strerror}); pick another port or address") from None
    bound_host, bound_port = server.server_address[:2]
    server.url = f"http://{bound_host!s}:{bound_port}/"
    threading.Thread(target=server.serve_forever, name="demo-http", daemon=True).start()
    return server
