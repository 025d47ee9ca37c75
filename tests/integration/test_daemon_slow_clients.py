"""Clients that hold connections without reading: slow readers, pipelining floods, the connection cap."""

from __future__ import annotations

import base64
import os
import resource
import socket
import struct
import time
from pathlib import Path

import requests

from daemon.config.model import BasicAuth, Config, ServerConfig
from probes.target import Registrar, SecretFile, Settings, Target
from tests.conftest import LabPKI
from tests.support.daemon import engine_runner, mtls_probe, running
from tests.support.peers import eventually, free_port
from tests.support.served import daemon_dir, serve

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


def _own_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_tls_handshakes_in_progress_count_against_the_cap(tmp_path: Path, lab_pki: LabPKI) -> None:
    """Given an HTTPS daemon with a cap of 8 connections and a 30 s handshake deadline,
    When 60 clients connect and never start their TLS handshake,
    Then the daemon holds at most 8 of their sockets (this process's descriptors grow by the 60
    client ends and at most 8 server ends, not 60), and a verified HTTPS scrape is answered."""
    files = lab_pki.fe.write(tmp_path / "web", "web")
    full = tmp_path / "web" / "full.pem"
    full.write_bytes(lab_pki.fe.cert_pem + lab_pki.fe.chain_pem)
    ca = lab_pki.ca_bundle(tmp_path)
    server = ServerConfig(tls_cert=full, tls_key=files["key"], header_timeout=30.0, max_connections=8)
    with running(_config(tmp_path, server), runner=engine_runner({"mtls": mtls_probe()})) as d:
        before = _own_fds()
        silent = [socket.create_connection(("127.0.0.1", d.port)) for _ in range(60)]
        try:
            # (accepts are asynchronous: wait until the daemon has seen every one)
            eventually("the daemon accepted the 60 connections",
                       lambda: d.call(lambda: d.daemon.http.listener.evicted + d.daemon.http.listener.refused) >= 52)
            # (an evicted handshake's socket is shut down at once and closed when its task sees the
            # end of the stream, a moment later; the 30 s handshake deadline plays no part here)
            eventually("the daemon holds at most 8 server ends", lambda: _own_fds() - before <= 60 + 8 + 2,
                       timeout=5)
            answer = requests.get(f"https://127.0.0.1:{d.port}/-/healthy", verify=str(ca), timeout=5)
            assert answer.status_code == 200
        finally:
            for s in silent:
                s.close()


def test_out_of_file_descriptors_is_one_log_line_not_a_traceback_per_accept(tmp_path: Path) -> None:
    """Given `rmxdiag serve` whose descriptor limit leaves room for 20 more,
    When 150 clients connect and stay idle,
    Then the log says so in at most a few lines (no traceback per failed accept),
    And once they leave, the daemon serves again."""
    config, port = daemon_dir(tmp_path, {"rmx-a": free_port()},
                              "server:\n  max_connections: 1000\n  header_timeout: 3\n")
    with serve(config, port) as d:
        used = len(os.listdir(f"/proc/{d.pid}/fd"))
        resource.prlimit(d.pid, resource.RLIMIT_NOFILE, (used + 20, used + 20))
        clients = []
        try:
            for _ in range(150):
                clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            eventually("the daemon at its descriptor limit", lambda: "accepting connections failed" in d.log())
            # a second interval's worth of failed accepts (each retried every 0.5 s)
            time.sleep(1.5)  # not an assertion: lets failures pile up to be counted below
        finally:
            for s in clients:
                s.close()
        eventually("served again", lambda: requests.get(d.url + "/-/healthy", timeout=5).status_code == 200,
                   timeout=20)
        log = d.log()
    failed = [ln for ln in log.splitlines() if "accepting connections failed" in ln]
    assert 1 <= len(failed) <= 3, failed
    assert "Traceback" not in log and "socket.accept() out of system resource" not in log
