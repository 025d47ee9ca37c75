"""Hostile clients of the daemon's endpoints, measured: slowloris on /metrics AND the webhook at
once, a body that starts and stops, an oversized body that is already streaming.

(The token, allow-list/counting-listener and 100-identical-alerts rows are in
tests/integration/test_daemon_webhook.py; this file adds the mixed and streaming cases.)
"""

from __future__ import annotations

import selectors
import socket
import time
from pathlib import Path

import requests

from daemon.config.model import Config, ServerConfig, WebhookConfig
from probes.target import Registrar, SecretFile, Settings, Target
from tests.support.daemon import engine_runner, mtls_probe, running

TOKEN = "slow-client-token"  # noqa: S105 (a test token)
AUTH = f"Authorization: Bearer {TOKEN}\r\n".encode()


def _config(tmp_path: Path) -> Config:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    return Config(tmp_path / "c.yaml", Settings(state_dir=tmp_path / "state"),
                  (Target("rmx-a", registrars=(Registrar("127.0.0.1", 9),), deadline=1.0, interval=60),),
                  server=ServerConfig(header_timeout=1.0, body_timeout=1.0, max_connections=400),
                  webhook=WebhookConfig(token=SecretFile(token), cooldown=300))


def _open(port: int, data: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(data)
    s.setblocking(False)
    return s


def _status(answer: bytes) -> bytes:
    return answer.split(b"\r\n", 1)[0]


def _wait_all_closed(socks: list[socket.socket], limit: float) -> tuple[int, float]:
    """How many of ``socks`` the server closed within ``limit`` seconds, and when the last one closed."""
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    start, closed, last = time.monotonic(), 0, 0.0
    while closed < len(socks) and time.monotonic() - start < limit:
        for key, _ in sel.select(0.1):
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            try:
                data = sock.recv(4096)
            except ConnectionResetError:
                data = b""
            if not data:
                sel.unregister(sock)
                closed += 1
                last = time.monotonic() - start
    sel.close()
    return closed, last


def test_slowloris_on_metrics_and_webhook_together(tmp_path: Path) -> None:
    """Given 150 unfinished header blocks on /metrics and 150 on the webhook, Then a scrape, a /probe and
    an alert POST still answer in under 1 s, and all 300 slow connections are closed by the 1 s header
    deadline (within 3 s)."""
    with running(_config(tmp_path), runner=engine_runner({"mtls": mtls_probe()})) as d:
        slow = [_open(d.port, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ") for _ in range(150)]
        slow += [_open(d.port, b"POST /api/v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\n" + AUTH + b"X-Slow: ")
                 for _ in range(150)]
        try:
            timings = {}
            for name, call in {
                "scrape": lambda: requests.get(d.url + "/metrics", timeout=5),
                "probe": lambda: requests.get(d.url + "/probe", params={"target": "rmx-a"}, timeout=5),
                "alert": lambda: requests.post(d.url + "/api/v1/alerts", json={"version": "4", "alerts": []},
                                               headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5),
            }.items():
                start = time.monotonic()
                status = call().status_code
                timings[name] = (status, time.monotonic() - start)
            closed, last = _wait_all_closed(slow, 5.0)
        finally:
            for s in slow:
                s.close()
    print(f"with 300 slow clients: {timings}; slow connections closed: {closed}/300, last at {last:.2f} s")
    assert all(status < 300 for status, _ in timings.values()), timings
    assert all(seconds < 1.0 for _, seconds in timings.values()), timings
    assert closed == 300 and last < 3.0


def test_body_that_stops_halfway_is_closed_at_the_body_deadline(tmp_path: Path) -> None:
    """Given an authorised alert POST that sends half its announced body and stalls, Then 408 and closed
    at the 1 s body deadline."""
    with running(_config(tmp_path), runner=engine_runner({"mtls": mtls_probe()})) as d:
        start = time.monotonic()
        sock = socket.create_connection(("127.0.0.1", d.port), timeout=5)
        with sock:
            sock.sendall(b"POST /api/v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\n" + AUTH + b"Content-Length: 2000\r\n\r\n"
                         + b'{"version": "4", "alerts": [' + b" " * 970)
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        elapsed = time.monotonic() - start
    print(f"half body: {_status(answer)!r} after {elapsed:.2f} s")
    assert answer.startswith(b"HTTP/1.1 408") and 0.9 < elapsed < 3.0


def test_oversized_body_already_streaming_is_refused_early(tmp_path: Path) -> None:
    """Given an authorised alert POST announcing 1 MiB + 1 that sends its first 64 KiB and pauses, Then 413
    arrives within 1 s: the server never waits for (or reads) the remaining ~960 KiB."""
    with running(_config(tmp_path), runner=engine_runner({"mtls": mtls_probe()})) as d:
        sock = socket.create_connection(("127.0.0.1", d.port), timeout=5)
        with sock:
            sock.sendall(b"POST /api/v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\n" + AUTH
                         + f"Content-Length: {1024 * 1024 + 1}\r\n\r\n".encode() + b"x" * 65536)
            start = time.monotonic()
            sock.settimeout(1.0)
            try:
                answer = sock.recv(4096)
            except TimeoutError:
                answer = b""
            elapsed = time.monotonic() - start
    print(f"413 after 64 KiB of 1 MiB + 1: {_status(answer)!r} in {elapsed:.3f} s")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
