"""A real headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by selenium, and
the lab daemon (``rmxdiag lab --serve``) it looks at.

Nothing is downloaded: selenium gets the system browser and driver paths, so Selenium Manager
never runs. The flags keep Chromium off the network on its own account (without
``--disable-background-networking`` and friends it keeps trying to reach Google services); each
browser gets a fresh profile. The browser's console and network events are logged so tests can
assert "no console error" and "no request left the page".
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from tests.support.peers import eventually, need

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1000")


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium WebDriver with browser and performance (network) logs; quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = need("chromium"), need("chromedriver")
    with tempfile.TemporaryDirectory(prefix="rmxdiag-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        service = Service(executable_path=driver_path, log_output=subprocess.DEVNULL)
        driver = webdriver.Chrome(service=service, options=options)
        try:
            driver.set_page_load_timeout(30)
            yield driver
        finally:
            driver.quit()


def console_errors(driver: Any) -> list[dict[str, Any]]:
    """The console entries at level SEVERE since the last call (the log is drained when read)."""
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def requests_made(driver: Any) -> list[str]:
    """The URLs the page asked for since the last call (network events of the performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def ladder_labels(driver: Any, source: str = "mtls") -> list[tuple[str, str, float]]:
    """(direction, label, y) of each step of the first ladder drawn from ``source`` (mtls or capture)."""
    from selenium.webdriver.common.by import By

    box = driver.find_elements(By.CSS_SELECTOR, f'.ladder-box[data-source="{source}"]')[0]
    steps = []
    for group in box.find_elements(By.CSS_SELECTOR, "g.step"):
        label = group.find_element(By.CSS_SELECTOR, "text.msg")
        steps.append((group.get_attribute("data-dir"), label.text, float(label.get_attribute("y"))))
    return steps


@dataclass
class LabDaemon:
    """A running ``rmxdiag lab --serve`` and the URLs it printed."""

    proc: subprocess.Popen[str]
    urls: dict[str, str]

    def report(self) -> dict[str, Any]:
        """The daemon's JSON report of the lab target."""
        doc: dict[str, Any] = requests.get(self.urls["report"], timeout=10).json()
        return doc


def read_urls(proc: subprocess.Popen[str], timeout: float, until: str = "probe") -> dict[str, str]:
    """The "name : URL" lines `rmxdiag lab --serve` prints before serving, up to the ``until`` one
    (a reader thread: pipes buffer whole chunks)."""
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or ()], daemon=True).start()
    found: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while until not in found and time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        key, sep, value = line.strip().partition(": ")
        if sep and value.startswith("http://"):
            found[key.strip()] = value.strip()
    return found


@contextlib.contextmanager
def lab_daemon(scenario: str, tmp: Path) -> Iterator[LabDaemon]:
    """``rmxdiag lab --scenario SCENARIO --serve`` until its first run is in the report; Ctrl-C at the end."""
    env = {**os.environ, "NO_COLOR": "1", "TMPDIR": str(tmp)}
    proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", "lab", "--scenario", scenario, "--serve"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                            start_new_session=True)
    try:
        urls = read_urls(proc, 60)
        assert {"page", "overview", "report"} <= set(urls), urls
        served = LabDaemon(proc, urls)
        eventually(f"the first run of {scenario}",
                   lambda: requests.get(urls["report"], timeout=10).status_code == 200, timeout=60, period=0.2)
        yield served
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


class HitCounter:
    """A loopback HTTP listener that counts every request (a payload that executes would call it)."""

    def __init__(self) -> None:
        hits: list[str] = []
        self.hits = hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                self.send_response(204)
                self.end_headers()

            do_POST = do_GET

            def log_message(self, *_args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HitCounter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
