"""A real headless Chromium, driven over the W3C WebDriver protocol (Debian's chromium and
chromium-driver), to look at the demo's viewer page the way a person would."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from edgeship.apt import apt_install
from edgeship.errors import EdgeshipError

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# A closed network: no background requests, no component updates, no first-run work.
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=900,900"]


def ensure_chromium() -> None:
    """Install Debian's chromium and chromium-driver when they are missing (as root, with apt)."""
    if os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK):
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise EdgeshipError("headless Chromium is missing; install it with `sudo apt-get install chromium chromium-driver` and run again")
    print("edgeship: installing chromium and chromium-driver (Debian)", flush=True)
    apt_install("chromium", "chromium-driver")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Browser:
    """`with Browser() as b: b.open(url); b.wait_for(script); b.screenshot(path)`."""

    def __init__(self, timeout_s: float = 60.0):
        self.timeout_s = timeout_s
        self.profile = tempfile.mkdtemp(prefix="edgeship-chromium-")
        self.port = _free_port()
        self.driver = subprocess.Popen([CHROMEDRIVER, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        self.session = None

    def _call(self, method: str, path: str, body: dict | None = None):
        request = urllib.request.Request(self.base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read())["value"]
        except urllib.error.HTTPError as error:
            detail = json.loads(error.read() or b"{}").get("value", {})
            raise EdgeshipError(f"chromedriver {method} {path}: {detail.get('error')}: {str(detail.get('message', ''))[:300]}") from None

    def __enter__(self) -> Browser:
        deadline = time.monotonic() + 30
        while True:
            try:
                if self._call("GET", "/status").get("ready"):
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline or self.driver.poll() is not None:
                self.close()
                raise EdgeshipError(f"{CHROMEDRIVER} did not start; run it by hand to see why")
            time.sleep(0.2)
        # eager: an MJPEG <img> never finishes loading, so do not wait for the load event
        capabilities = {"browserName": "chrome", "pageLoadStrategy": "eager",
                        "goog:chromeOptions": {"binary": CHROMIUM, "args": [*CHROMIUM_ARGS, f"--user-data-dir={self.profile}"]}}
        self.session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}})["sessionId"]
        return self

    def open(self, url: str) -> None:
        self._call("POST", f"/session/{self.session}/url", {"url": url})

    def run(self, script: str):
        return self._call("POST", f"/session/{self.session}/execute/sync", {"script": script, "args": []})

    def wait_for(self, script: str, timeout_s: float = 30.0):
        """Poll a script until it returns something truthy; returns that."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.run(script)
            if value:
                return value
            if time.monotonic() > deadline:
                raise EdgeshipError(f"the page never satisfied {script!r} within {timeout_s:.0f} s")
            time.sleep(0.2)

    def screenshot(self, path: Path) -> Path:
        png = base64.b64decode(self._call("GET", f"/session/{self.session}/screenshot"))
        partial = Path(path).with_name(Path(path).name + ".partial")
        partial.write_bytes(png)
        os.replace(partial, path)
        return Path(path)

    def close(self) -> None:
        if self.session:
            try:
                self._call("DELETE", f"/session/{self.session}")
            except (EdgeshipError, OSError):
                pass
            self.session = None
        self.driver.terminate()
        try:
            self.driver.wait(10)
        except subprocess.TimeoutExpired:
            self.driver.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __exit__(self, *exc) -> None:
        self.close()


STREAM_READY = "const i = document.getElementById('stream'); return i && i.naturalWidth > 0 ? [i.naturalWidth, i.naturalHeight] : null;"
STATS_READY = "const s = document.getElementById('stats'); return s && /FPS/.test(s.textContent) ? s.textContent : null;"


def screenshot_viewer(url: str, path: Path) -> dict:
    """Open the demo's viewer page, wait for a streamed frame and the stats line, screenshot it."""
    ensure_chromium()
    with Browser() as browser:
        browser.open(url)
        size = browser.wait_for(STREAM_READY)
        stats = browser.wait_for(STATS_READY)
        browser.screenshot(path)
        title = browser.run("return document.title;")
    return {"screenshot": str(path), "stream_size": size, "stats_text": stats, "title": title}
