"""The lab registrar behaves like a Lync Front End towards real ssl clients (and openssl s_client)."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.lab.registrar import LabRegistrar, Transcript, running
from tests.support.lab import LabFiles, client_context, headers, lab_threads, make_files, open_fds, options_exchange
from tests.support.peers import need

TLS12, TLS13 = "1.2", "1.3"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> LabFiles:
    """Given the lab PKI of four scenarios on disk."""
    return make_files(tmp_path_factory.mktemp("lab"))


@pytest.fixture
def fe(files: LabFiles) -> Iterator[LabRegistrar]:
    """Given a Front End stand-in that trusts the enterprise CAs and the RMX as an application."""
    m = files.good
    with running(m.fe_cert, m.fe_key, m.fe_trust, ["rmx.lab.example"], connection_deadline=2.0) as registrar:
        yield registrar


@pytest.mark.parametrize("version", [TLS12, TLS13])
def test_trusted_rmx_gets_200_with_sip_framing(fe: LabRegistrar, files: LabFiles, version: str) -> None:
    # When the RMX with its enterprise certificate sends OPTIONS
    answer = options_exchange(fe.address, client_context(files.good, version, version))
    # Then the answer is a well-framed 200 echoing the dialog headers
    assert answer.startswith(b"SIP/2.0 200 OK\r\n")
    h = headers(answer)
    assert h["content-length"] == "0" and answer.endswith(b"\r\n\r\n")
    assert h["cseq"] == "7 OPTIONS" and h["call-id"] == "test-1" and ";tag=" in h["to"]


def test_untrusted_name_gets_403_with_ms_diagnostics(files: LabFiles) -> None:
    # Given a Front End whose only trusted application computer is the DMA
    m = files.good
    with running(m.fe_cert, m.fe_key, m.fe_trust, ["dma.lab.example"]) as fe:
        # When the (correctly certified) RMX sends OPTIONS
        answer = options_exchange(fe.address, client_context(m))
    # Then it is refused with a parseable ms-diagnostics header naming the peer
    assert answer.startswith(b"SIP/2.0 403 Forbidden\r\n")
    diag = headers(answer)["ms-diagnostics"]
    assert diag.startswith("1010;reason=\"") and 'source="fe01.lab.example"' in diag
    assert "rmx.lab.example" in diag


def test_name_mismatch_certificate_gets_403(fe: LabRegistrar, files: LabFiles) -> None:
    # When an RMX whose certificate carries an old CN connects (chain is trusted)
    answer = options_exchange(fe.address, client_context(files.wrong_cn))
    # Then MTLS succeeds but SIP is refused
    assert answer.startswith(b"SIP/2.0 403 Forbidden\r\n")
    assert "rmx-old.lab.example" in headers(answer)["ms-diagnostics"]


def test_untrusted_chain_is_reset_without_alert_tls12(fe: LabRegistrar, files: LabFiles) -> None:
    # When an RMX whose issuer the Front End does not trust connects with TLS 1.2
    # Then the handshake dies by a TCP reset (what Schannel does), not by a TLS alert
    with pytest.raises(ConnectionResetError):
        options_exchange(fe.address, client_context(files.foreign))
    assert _last_transcript(fe).end == "rst"
    assert not any(data[:1] == b"\x15" for d, data in _last_transcript(fe).events if d == "s2c")


def test_untrusted_chain_with_tls13_shows_on_first_read(fe: LabRegistrar, files: LabFiles) -> None:
    # When the same RMX speaks TLS 1.3, its handshake completes before the Front End judges it
    # Then the first read fails: measured with OpenSSL 3.0 as an unexpected EOF (the wire has an RST)
    with pytest.raises((ssl.SSLEOFError, ConnectionResetError)):
        options_exchange(fe.address, client_context(files.foreign, TLS13, TLS13))
    assert _last_transcript(fe).end == "rst"


def test_expired_client_certificate_gets_alert_45(fe: LabRegistrar, files: LabFiles) -> None:
    # When an RMX with an expired certificate connects
    # Then the Front End answers with the certificate_expired alert
    with pytest.raises(ssl.SSLError) as err:
        options_exchange(fe.address, client_context(files.expired))
    assert err.value.reason == "SSLV3_ALERT_CERTIFICATE_EXPIRED"


def test_certificate_without_client_auth_gets_alert_46(fe: LabRegistrar, files: LabFiles) -> None:
    # When an RMX whose certificate lacks the clientAuth EKU connects with TLS 1.2
    # Then the Front End answers certificate_unknown (46), not OpenSSL's unsupported_certificate (43)
    with pytest.raises(ssl.SSLError) as err:
        options_exchange(fe.address, client_context(files.server_eku_only))
    assert err.value.reason == "SSLV3_ALERT_CERTIFICATE_UNKNOWN"


def test_tls_window_refuses_old_versions_with_alert_70(files: LabFiles) -> None:
    # Given a Front End that requires TLS 1.2
    m = files.good
    with running(m.fe_cert, m.fe_key, m.fe_trust, ["rmx.lab.example"], tls_min="1.2") as fe:
        # When an RMX that speaks only TLS 1.0 connects
        with pytest.raises(ssl.SSLError) as err:
            options_exchange(fe.address, client_context(m, "1.0", "1.0"))
    # Then it gets protocol_version
    assert err.value.reason == "TLSV1_ALERT_PROTOCOL_VERSION"


def test_certificate_request_names_the_trusted_cas(fe: LabRegistrar, files: LabFiles, tmp_path: Path) -> None:
    # Given openssl s_client (a second, independent TLS stack)
    openssl = need("openssl")
    m = files.good
    # When it connects with TLS 1.2, where the CertificateRequest is visible
    out = subprocess.run([openssl, "s_client", "-connect", f"{fe.address[0]}:{fe.address[1]}", "-tls1_2",
                          "-cert", str(m.rmx_cert), "-key", str(m.rmx_key), "-CAfile", str(m.ca_bundle)],
                         input=b"", capture_output=True, timeout=20, check=False).stdout.decode()
    # Then the Front End's acceptable CA names are both enterprise CAs
    assert fe.ca_list_sent
    names = out.split("Acceptable client certificate CA names", 1)[1].split("Client Certificate Types", 1)[0]
    assert "Contoso Lab Root CA" in names and "Contoso Lab Issuing CA" in names
    assert "Fabrikam" not in names


def test_connection_cap_and_deadline_bound_idle_clients(files: LabFiles) -> None:
    # Given a Front End with room for two connections and a 0.5 s connection deadline
    m = files.good
    with running(m.fe_cert, m.fe_key, m.fe_trust, ["rmx.lab.example"], max_connections=2,
                 connection_deadline=0.5) as fe:
        idle = [socket.create_connection(fe.address, timeout=3) for _ in range(2)]
        time.sleep(0.1)
        # When a third client connects, it is closed at once
        with socket.create_connection(fe.address, timeout=3) as third:
            assert third.recv(1) == b""
        # And the idle ones are closed by the deadline, not left open
        start = time.monotonic()
        for sock in idle:
            assert sock.recv(1) == b""
            sock.close()
        assert time.monotonic() - start < 2.0


def test_stop_leaves_no_thread_and_no_fd(files: LabFiles) -> None:
    # Given the FD count before a registrar with a client stuck mid-handshake
    m = files.good
    before = open_fds()
    fe = LabRegistrar(m.fe_cert, m.fe_key, m.fe_trust, ["rmx.lab.example"], connection_deadline=30).start()
    stuck = socket.create_connection(fe.address, timeout=3)
    options_exchange(fe.address, client_context(m))
    time.sleep(0.1)
    # When it stops
    start = time.monotonic()
    fe.stop()
    stuck.close()
    # Then it stops promptly with every thread joined and every descriptor closed
    assert time.monotonic() - start < 2.0
    assert lab_threads() == []
    assert open_fds() == before


def _last_transcript(fe: LabRegistrar) -> Transcript:
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        if fe.transcripts:
            return fe.transcripts[-1]
        time.sleep(0.02)
    raise AssertionError("no connection recorded")

