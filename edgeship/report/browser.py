"""A real headless Chromium (Debian's chromium and chromium-driver), driven with Selenium, to
look at pages the way a person would: the demo's viewer and the HTML report.

Selenium is given Debian's chromedriver explicitly, so its driver manager never goes online.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from edgeship.errors import EdgeshipError
from edgeship.host import require
from edgeship_runtime.files import atomic_write_bytes

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# A closed network: no background requests, no component updates, no first-run work.
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=900,900"]
STREAM_READY = "const i = document.getElementById('stream'); return i && i.naturalWidth > 0 ? [i.naturalWidth, i.naturalHeight] : null;"
STATS_READY = "const s = document.getElementById('stats'); return s && /FPS/.test(s.textContent) ? s.textContent : null;"


class Browser:
    """`with Browser() as b: b.open(url); b.wait_for(script); b.screenshot(path)`."""

    def __init__(self, timeout_s: float = 60.0, window: tuple[int, int] = (900, 900)):
        self.timeout_s, self.window = timeout_s, window
        self.driver: Any = None  # selenium's WebDriver, while the browser runs
        self.profile = tempfile.TemporaryDirectory(prefix="edgeship-chromium-")

    def __enter__(self) -> Browser:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service

        require("headless chromium")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in [*CHROMIUM_ARGS, f"--window-size={self.window[0]},{self.window[1]}", f"--user-data-dir={self.profile.name}"]:
            options.add_argument(argument)
        options.page_load_strategy = "eager"  # an MJPEG <img> never finishes loading: do not wait for the load event
        try:
            self.driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        except WebDriverException as error:
            self.profile.cleanup()
            raise EdgeshipError(f"{CHROMEDRIVER} could not start {CHROMIUM} ({str(error.msg).splitlines()[0]}); run it by hand to see why") from None
        self.driver.set_page_load_timeout(self.timeout_s)
        self.driver.set_script_timeout(self.timeout_s)
        return self

    def open(self, url: str) -> None:
        self.driver.get(url)

    def run(self, script: str):
        return self.driver.execute_script(script)

    def wait_for(self, script: str, timeout_s: float = 30.0):
        """Poll a script until it returns something truthy; returns that."""
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            return WebDriverWait(self.driver, timeout_s, poll_frequency=0.2).until(lambda driver: driver.execute_script(script))
        except TimeoutException:
            raise EdgeshipError(f"the page never satisfied {script!r} within {timeout_s:.0f} s") from None

    def screenshot(self, path: Path, full_page: bool = False) -> Path:
        if full_page:  # grow the window to the page's height first (headless Chromium screenshots the viewport)
            height = self.run("return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight);")
            self.driver.set_window_size(self.window[0], max(self.window[1], int(height) + 40))
        atomic_write_bytes(path, self.driver.get_screenshot_as_png())
        return Path(path)

    def close(self) -> None:
        if self.driver is not None:
            self.driver.quit()
            self.driver = None
        self.profile.cleanup()

    def __exit__(self, *exc) -> None:
        self.close()


def screenshot_viewer(url: str, path: Path) -> dict:
    """Open the demo's viewer page, wait for a streamed frame and the stats line, screenshot it."""
    with Browser() as browser:
        browser.open(url)
        size = browser.wait_for(STREAM_READY)
        stats = browser.wait_for(STATS_READY)
        browser.screenshot(path)
        title = browser.run("return document.title;")
    return {"screenshot": str(path), "stream_size": size, "stats_text": stats, "title": title}
