"""``--rmx-ip`` picks the RMX's connections out of a real loopback capture holding other clients."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.capture import no_orphans_after, recording, tcp_server  # noqa: F401 (fixture)

pytestmark = [pytest.mark.peer("tshark"), pytest.mark.slow, pytest.mark.usefixtures("no_orphans_after")]

RMXDIAG = [sys.executable, "-m", "daemon.cli"]
RMX, OTHER = "127.0.0.2", "127.0.0.3"  # two clients of the same "Front End" on 127.0.0.1


def _client(port: int, source: str) -> None:
    """One TLS client from ``source`` (errors are the point for the failing one)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with contextlib.suppress(OSError), \
            socket.create_connection(("127.0.0.1", port), 3, source_address=(source, 0)) as raw, \
            ctx.wrap_socket(raw, server_hostname="pool.lab.example") as tls:
        tls.sendall(b"OPTIONS sip:pool.lab.example SIP/2.0\r\n\r\n")
        tls.recv(100)


@pytest.fixture(scope="module")
def two_clients(lab_pki: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Given a capture where the RMX (127.0.0.2) completes TLS and another host (127.0.0.3) is
    closed on right after its ClientHello (a TLS_HANDSHAKE_FAILURE of someone else)."""
    d = tmp_path_factory.mktemp("rmx-ip")
    fe = lab_pki.fe.write(d, "fe")  # type: ignore[attr-defined]
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(fe["cert"], fe["key"])

    def handler(conn: socket.socket) -> None:
        conn.settimeout(3)
        with conn:
            if conn.getpeername()[0] == RMX:
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(100)
                    tls.sendall(b"SIP/2.0 200 OK\r\n\r\n")
            else:
                conn.recv(65536)  # the ClientHello, then a close without a ServerHello

    out = d / "two-clients.pcapng"
    with tcp_server(handler) as port, recording(port, out):
        _client(port, RMX)
        _client(port, OTHER)
    (d / "port").write_text(str(port))
    yield out


def _pcap(capture: Path, *args: str) -> tuple[int, dict[str, object], str]:
    port = (capture.parent / "port").read_text()
    done = subprocess.run([*RMXDIAG, "pcap", str(capture), "--port", port, "--format", "json", *args],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "NO_COLOR": "1"})
    return done.returncode, json.loads(done.stdout), done.stderr


def _hint_codes(doc: dict[str, object]) -> list[str]:
    return [h["code"] for h in doc["targets"][0]["hints"]]  # type: ignore[index]


def test_without_rmx_ip_every_client_is_judged(two_clients: Path) -> None:
    # When the capture is read without --rmx-ip
    code, doc, _ = _pcap(two_clients)
    # Then the other host's failure is judged (every client counts as an RMX)
    assert code == 2
    assert "TLS_HANDSHAKE_FAILURE" in _hint_codes(doc)


def test_rmx_ip_leaves_other_hosts_out(two_clients: Path) -> None:
    # When the capture is read with --rmx-ip of the healthy client
    code, doc, stderr = _pcap(two_clients, "--rmx-ip", RMX)
    # Then only its connection is judged: OK, the other one counted as not judged
    assert code == 0, (doc, stderr)
    assert _hint_codes(doc) == []
    details = doc["targets"][0]["probes"][0]["result"]  # type: ignore[index]
    assert details["connections"] == 1
    assert details["other_connections"] == 1


def test_rmx_ip_absent_from_the_capture_is_nothing_to_judge(two_clients: Path) -> None:
    # When --rmx-ip names an address no packet involves
    code, doc, _ = _pcap(two_clients, "--rmx-ip", "10.0.0.5")
    # Then nothing is judged (exit 3) and the clients seen are named
    assert code == 3
    text = json.dumps(doc)
    assert "no connection of 10.0.0.5" in text and RMX in text and OTHER in text
    assert "TLS_HANDSHAKE_FAILURE" not in _hint_codes(doc)
