"""The demo's viewer: a page with the annotated MJPEG stream and live stats, served on loopback by default.

The page is package data (viewer.html); `__TITLE__` in it becomes the artifact's name. Who may
watch is guard.py's rule; how many at once, and for how long, server.py's.
"""

from __future__ import annotations

import html
import json
import threading
from importlib import resources

from edgeship_runtime.demo.guard import Access, access_for, parse_listen
from edgeship_runtime.demo.server import BoundedServer, Limits, OneRequest, peer_gone
from edgeship_runtime.errors import ArtifactError

__all__ = ["Access", "Limits", "Publisher", "access_for", "parse_listen", "serve", "viewer_page"]


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


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(address: str, publisher: Publisher, stats, title: str, access: Access | None = None, limits: Limits | None = None):
    """Start the viewer on HOST:PORT in a daemon thread; returns the server (its URL in .url).

    Every request must name the viewer in `Host` and carry the token, if there is one
    (guard.Access); server.BoundedServer bounds the clients and every wait."""
    host, port = parse_listen(address)
    who = access or access_for(address)
    page = viewer_page(title).encode()

    class Handler(OneRequest):
        server_version, sys_version = "edgeship-demo", ""
        server: BoundedServer  # type: ignore[assignment]

        def log_message(self, format, *args):  # no per-request lines on the board's journal
            pass

        def _headers(self, status: int, content_type: str, extra: tuple = ()) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Cache-Control", "no-store")
            self.send_header("Referrer-Policy", "no-referrer")  # the page's URL may carry the token
            self.send_header("X-Content-Type-Options", "nosniff")
            for name, value in extra:
                self.send_header(name, value)

        def _send(self, body: bytes, content_type: str, status: int = 200, extra: tuple = ()) -> None:
            self._headers(status, content_type, (("Content-Length", str(len(body))), *extra))
            self.end_headers()
            self.wfile.write(body)

        def _refused(self) -> bool:
            """Answer a request for another host, or without the token, with no frame data."""
            hosts = self.headers.get_all("Host") or []
            if len(hosts) != 1 or not who.host_ok(hosts[0]):
                self.close_connection = True
                shown = hosts[0][:80] if hosts else "(none)"
                self._send(f"421: this viewer is not reached as Host {shown!r}; if that name is right, start the demo with "
                           f"--allow-host NAME\n".encode("utf-8", "replace"), "text/plain; charset=utf-8", 421)
                return True
            if not who.token_ok(self.path.partition("?")[2], self.headers.get("Authorization")):
                self._send(b"401: this viewer asks for its token: open it as /?token=TOKEN (the token given with --token-file or "
                           b"EDGESHIP_DEMO_TOKEN), or send Authorization: Bearer TOKEN\n", "text/plain; charset=utf-8", 401,
                           (("WWW-Authenticate", 'Bearer realm="edgeship demo"'),))
                return True
            return False

        def do_GET(self):  # http.server's name
            if self._refused():
                return
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
            self._stream()

        def _stream(self) -> None:
            """Frames until the client leaves, or the demo or the server stops. A client that stops
            reading is dropped when a frame's write passes the server's write time-out; one that
            closed its end is noticed within a second even while no frame comes (its slot would
            otherwise be held for as long as the camera stalls). At most max_streams at once."""
            self.close_connection = True
            if not self.server.stream_slots.acquire(blocking=False):
                return self._send(b"503: every stream slot is taken; close another viewer tab, or try again\n",
                                  "text/plain; charset=utf-8", 503, (("Retry-After", str(self.server.limits.retry_after_s)),))
            try:
                self._headers(200, "multipart/x-mixed-replace; boundary=frame", (("Connection", "close"),))
                self.end_headers()
                sequence = 0
                while not publisher.closed and not self.server.stopping and not peer_gone(self.connection):
                    jpeg, latest = publisher.wait(sequence)  # at most a second
                    if jpeg is None or latest == sequence:
                        continue
                    sequence = latest
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg) + jpeg + b"\r\n")
            finally:
                self.server.stream_slots.release()

    try:
        server = BoundedServer((host, port), Handler, limits)
    except OSError as error:
        raise ArtifactError(f"--listen {address}: cannot listen there ({error.strerror}); pick another port or address") from None
    bound_host, bound_port = server.server_address[:2]
    server.url = _url(bound_host, bound_port)  # type: ignore[attr-defined]
    server.access = who  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, name="demo-http", daemon=True).start()
    return server
