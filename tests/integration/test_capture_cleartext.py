"""Clear text on the SIP TLS port is a finding, never OK: a real loopback capture of SIP over TCP to 5061."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.capture import no_orphans_after, recording  # noqa: F401 (fixture)

pytestmark = [pytest.mark.peer("tshark"), pytest.mark.slow, pytest.mark.usefixtures("no_orphans_after")]

RMXDIAG = [sys.executable, "-m", "daemon.cli"]
FE = "127.0.0.7"  # its own loopback address, so port 5061 is free whatever else listens on 127.0.0.1
OPTIONS = b"OPTIONS sip:pool.lab.example SIP/2.0\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"


@contextlib.contextmanager
def clear_sip_server(port: int) -> Iterator[None]:
    """A SIP-over-TCP server on FE:port answering one OPTIONS with 200 OK, in clear."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((FE, port))
    except OSError as exc:
        listener.close()
        pytest.skip(f"{FE}:{port} is taken on this machine ({exc.strerror})")
    listener.listen(1)

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(5)
                conn.recv(4096)
                conn.sendall(b"SIP/2.0 200 OK\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
                conn.recv(4096)  # until the client closes

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        listener.close()
        thread.join(10)


def test_clear_text_sip_on_5061_is_critical_not_ok(tmp_path: Path) -> None:
    """Given a real capture of an RMX-like client sending SIP OPTIONS in clear to port 5061 and the
    server answering 200 OK in clear
    When rmxdiag pcap reads it
    Then TLS_PORT_NOT_TLS (critical, exit 2) quoting the request line, never OK."""
    out = tmp_path / "clear-5061.pcapng"
    with clear_sip_server(5061), recording(5061, out):
        with socket.create_connection((FE, 5061), 5) as client:
            client.sendall(OPTIONS)
            client.recv(4096)
    done = subprocess.run([*RMXDIAG, "pcap", str(out), "--format", "json"], capture_output=True, text=True,
                          timeout=120, check=False, env={**os.environ, "NO_COLOR": "1"})
    doc = json.loads(done.stdout)
    hints = {h["code"]: h["severity"] for h in doc["targets"][0]["hints"]}
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert hints == {"TLS_PORT_NOT_TLS": "critical"}
    finding = next(f for p in doc["targets"][0]["probes"] for f in p["findings"] if f["code"] == "TLS_PORT_NOT_TLS")
    assert finding["evidence"]["first_line"] == "OPTIONS sip:pool.lab.example SIP/2.0"
    assert finding["evidence"]["direction"] == "from_rmx"
    text = subprocess.run([*RMXDIAG, "pcap", str(out)], capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "NO_COLOR": "1"})
    assert text.stdout.startswith(f"CRITICAL: {out}: Not TLS on the SIP TLS port [TLS_PORT_NOT_TLS]")
