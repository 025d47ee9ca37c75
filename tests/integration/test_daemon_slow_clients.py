"""Clients that hold connections without reading: slow readers, pipelining floods, the connection cap."""

from __future__ import annotations

import base64
import socket
import struct
import time
from pathlib import Path

import requests

from daemon.config.model import BasicAuth, Config, ServerConfig
from probes.target import Registrar, SecretFile, Settings, Target
from tests.support.daemon import engine_runner, mtls_probe, running
from tests.support.peers import eventually

_TCP_ESTABLISHED = 1


def _config(tmp_path: Path, server: ServerConfig) -> Config:
    targets = (Target("rmx-ok", registrars=(Registrar("fe"),), deadline=1.0, interval=60),)
    return Config(tmp_path / "rmxdiag.yaml", Settings(state_dir=tmp_path / "state", concurrency=2),
                  targets, server=server)


def _tcp_state(sock: socket.socket) -> int:
    """The kernel's TCP state of ``sock`` (tcpi_state, the first byte of TCP_INFO): read without reading data."""
    return int(struct.unpack("B", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1))[0])


def _slow_reader(port: int, requests_count: int, seconds: float) -> socket.socket:
    """A connection with a 1 KiB receive buffer that pipelines ``requests_count`` unauthenticated
    requests (for at most ``seconds``) and never reads an answer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    data = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * requests_count
    sent, start = 0, time.monotonic()
    while sent < len(data) and time.monotonic() - start < seconds:
        try:
            sent += sock.send(data[sent:])
        except BlockingIOError:
            time.sleep(0.01)
    return sock


def test_pipelining_slow_readers_are_closed_and_never_lock_out_a_scrape(tmp_path: Path) -> None:
    """Given a daemon with basic auth, a cap of 8 connections and a 2 s write deadline,
    When 10 clients pipeline 30,000 unauthenticated requests each and never read the answers,
    Then an authorised scrape is answered while they hold their connections,
    And every attacking connection is closed by the daemon within a bounded time."""
    password = tmp_path / "web.pass"
    password.write_text("s3cret-canary\n")
    password.chmod(0o600)
    server = ServerConfig(basic_auth=(BasicAuth("prom", SecretFile(password)),), max_connections=8,
                          header_timeout=2.0, write_timeout=2.0)
    auth = {"Authorization": "Basic " + base64.b64encode(b"prom:s3cret-canary").decode()}
    with running(_config(tmp_path, server), runner=engine_runner({"mtls": mtls_probe()})) as d:
        # Reference: one authorised scrape on an idle daemon.
        start = time.monotonic()
        assert requests.get(d.url + "/metrics", headers=auth, timeout=5).status_code == 200
        reference = time.monotonic() - start
        attack_start = time.monotonic()
        attackers = [_slow_reader(d.port, 30_000, 3.0) for _ in range(10)]
        try:
            # The attack holds the cap: the daemon's write buffers are full (the clients read nothing).
            still_open = [s for s in attackers if _tcp_state(s) == _TCP_ESTABLISHED]
            assert len(still_open) >= 8, "the attack did not hold the connection cap"
            # When Prometheus scrapes during the attack
            start = time.monotonic()
            scrape = requests.get(d.url + "/metrics", headers=auth, timeout=10)
            # Then it is answered, in a time comparable to the idle reference
            assert scrape.status_code == 200 and "rmxdiag_build_info" in scrape.text
            assert time.monotonic() - start < max(2.0, 20 * reference)
            # And every attacking connection is closed by the daemon (write deadline 2 s; generous bound)
            eventually("every slow reader closed by the daemon",
                       lambda: all(_tcp_state(s) != _TCP_ESTABLISHED for s in attackers), timeout=20)
            assert time.monotonic() - attack_start < 30
            # And the daemon serves normally afterwards
            assert requests.get(d.url + "/-/healthy", headers=auth, timeout=5).status_code == 200
        finally:
            for s in attackers:
                s.close()
