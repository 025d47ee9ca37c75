"""`rmxdiag pcap` on captures recorded here: real openssl / Python TLS peers on loopback, dumpcap on lo.

Each capture's findings also go through the diagnosis (``_hints``): what the capture probe really
emits from a real recording must land on the hint a reader is told to expect.
"""

from __future__ import annotations

import socket
import ssl
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon.diagnosis.diagnose import diagnose
from daemon.lab import pki
from probes.capture import probe as capture
from probes.capture.analysis import CaptureResult
from probes.model import Finding, ProbeOutcome
from tests.support.capture import (
    no_orphans_after,  # noqa: F401 (fixture)
    openssl_client,
    openssl_server,
    python_client,
    recording,
    tcp_server,
    wait_for_port,
)
from tests.support.peers import free_port

pytestmark = [pytest.mark.peer("tshark"), pytest.mark.slow, pytest.mark.usefixtures("no_orphans_after")]


@dataclass
class Lab:
    dir: Path
    rmx: dict[str, Path]
    fe: dict[str, Path]
    trust: Path  # root + issuing CA (what the Front End trusts)
    other: Path  # an unrelated root
    issuer_cn: str


@pytest.fixture(scope="module")
def lab(lab_pki: object, tmp_path_factory: pytest.TempPathFactory) -> Lab:
    """Given the lab PKI written to files for openssl."""
    d = tmp_path_factory.mktemp("capture-lab")
    p = lab_pki
    trust = d / "trust.pem"
    trust.write_bytes(pki.pem(p.root.cert) + pki.pem(p.issuing.cert))  # type: ignore[attr-defined]
    other = d / "other.pem"
    other.write_bytes(pki.pem(p.other_root.cert))  # type: ignore[attr-defined]
    return Lab(d, p.rmx.write(d, "rmx"), p.fe.write(d, "fe"), trust, other,  # type: ignore[attr-defined]
               "rmxdiag Lab Issuing CA")


STRICT = ["-Verify", "2", "-verify_return_error"]  # s_server ignores verify errors without the latter


def _server_args(lab: Lab, *extra: str) -> list[str]:
    return ["-cert", str(lab.fe["cert"]), "-key", str(lab.fe["key"]), "-cert_chain", str(lab.fe["chain"]), *extra]


def _client_cert(lab: Lab) -> list[str]:
    return ["-cert", str(lab.rmx["cert"]), "-key", str(lab.rmx["key"]), "-cert_chain", str(lab.rmx["chain"]),
            "-CAfile", str(lab.trust)]


def _inspect(path: Path, port: int, **kw: object) -> tuple[ProbeOutcome, CaptureResult]:
    outcome = capture.inspect([path], port, deadline=time.monotonic() + 60, **kw)  # type: ignore[arg-type]
    assert isinstance(outcome.result, CaptureResult)
    return outcome, outcome.result


def _codes(outcome: ProbeOutcome) -> dict[str, Finding]:
    return {f.code: f for f in outcome.findings}


def _hints(outcome: ProbeOutcome) -> list[tuple[str, str]]:
    """(code, severity) of the hints the diagnosis makes of this capture alone."""
    return [(h.code, str(h.severity)) for h in diagnose([outcome])]


def _record_openssl(lab: Lab, tmp_path: Path, server_extra: list[str], client_extra: list[str],
                    pcap: bool = False) -> tuple[Path, int]:
    port = free_port()
    out = tmp_path / ("cap.pcap" if pcap else "cap.pcapng")
    with openssl_server(lab.dir, port, *_server_args(lab, *server_extra)) as srv:
        wait_for_port(port, proc=srv)  # its probe connection happens before the recording starts
        with recording(port, out, pcap=pcap):
            openssl_client(port, *client_extra)
    return out, port


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_healthy_mtls(lab: Lab, tmp_path: Path, version: str) -> None:
    # Given a Front End-like server requiring a client certificate and an RMX with a good one
    path, port = _record_openssl(lab, tmp_path, [*STRICT, "-CAfile", str(lab.trust), version],
                                 _client_cert(lab))
    # When the capture is inspected
    outcome, result = _inspect(path, port)
    # Then the handshake is healthy, with both chains and the version named
    handshakes = [s for s in result.summaries if s.outcome != "not_tls"]
    expected = "ok" if version == "-tls1_2" else "tls13_encrypted"  # 1.3: nothing visible after ServerHello
    assert [s.outcome for s in handshakes][-1] == expected, [s.line() for s in result.summaries]
    summary = handshakes[-1]
    assert summary.version == ("TLSv1.2" if version == "-tls1_2" else "TLSv1.3")
    assert set(_codes(outcome)) == {"CAPTURE_SUMMARY"}, [s.line() for s in result.summaries]
    assert _hints(outcome) == []
    if version == "-tls1_2":  # TLS 1.3 encrypts both certificates and the CertificateRequest
        assert summary.server_chain[0][0] == "CN=fe01.lab.example"
        assert summary.client_chain[0][0] == "CN=rmx.lab.example,O=rmxdiag lab"
        assert summary.ca_names is not None and any(lab.issuer_cn in n for n in summary.ca_names)
        assert summary.rmx_issuer_in_ca_list is True
        assert "C:Certificate" in summary.history and "S:CertificateRequest" in summary.history


def test_alert_48_from_server(lab: Lab, tmp_path: Path) -> None:
    # Given a server that trusts only an unrelated root (classic pcap format this time)
    path, port = _record_openssl(lab, tmp_path, [*STRICT, "-CAfile", str(lab.other), "-tls1_2"],
                                 _client_cert(lab), pcap=True)
    # When inspected
    outcome, result = _inspect(path, port)
    # Then a fatal unknown_ca alert sent by the Front End is reported, and the CA list lacks the issuer
    found = _codes(outcome)
    alert = found["CAPTURE_TLS_ALERT"].evidence
    assert (alert["alert"], alert["alert_name"], alert["direction"]) == (48, "unknown_ca", "from_fe")
    assert found["CAPTURE_TRUNCATED_CA_LIST"].evidence["ca_names"] [0].startswith("CN=Unrelated Root CA")
    assert result.alerts == {"unknown_ca from_fe": 1}
    # And the diagnosis names one root cause for both: the Front End does not trust the RMX issuer
    assert _hints(outcome) == [("CLIENT_CERT_UNKNOWN_CA", "critical")]


def test_empty_client_certificate(lab: Lab, tmp_path: Path) -> None:
    # Given a client without any certificate against a server that requires one
    path, port = _record_openssl(lab, tmp_path, ["-Verify", "2", "-CAfile", str(lab.trust), "-tls1_2"],
                                 ["-CAfile", str(lab.trust)])
    outcome, result = _inspect(path, port)
    # Then the empty Certificate is named, and the server's alert too
    found = _codes(outcome)
    assert found["CAPTURE_EMPTY_CLIENT_CERT"].evidence["direction"] == "from_rmx"
    assert found["CAPTURE_TLS_ALERT"].evidence["direction"] == "from_fe"
    assert any("C:Certificate(empty)" in s.history for s in result.summaries)
    assert _hints(outcome) == [("CAPTURE_EMPTY_CLIENT_CERT", "critical")], "the FE's alert is its consequence"


def test_ca_list_without_client_issuer(lab: Lab, tmp_path: Path) -> None:
    # Given a server advertising an unrelated CA but verifying against the real trust store
    path, port = _record_openssl(
        lab, tmp_path, [*STRICT, "-CAfile", str(lab.other), "-verifyCAfile", str(lab.trust), "-tls1_2"],
        _client_cert(lab))
    outcome, result = _inspect(path, port)
    # Then only the truncated-CA-list warning fires; the handshake itself succeeded
    found = _codes(outcome)
    assert set(found) == {"CAPTURE_TRUNCATED_CA_LIST", "CAPTURE_SUMMARY"}
    assert found["CAPTURE_TRUNCATED_CA_LIST"].evidence["rmx_issuer"] == "CN=rmxdiag Lab Issuing CA,O=rmxdiag lab"
    assert result.outcomes.get("ok") == 1
    assert _hints(outcome) == [("CAPTURE_TRUNCATED_CA_LIST", "warning")]


def _silent(conn: socket.socket) -> None:
    conn.settimeout(5)
    try:
        conn.recv(65536)  # the ClientHello, never answered
        conn.recv(65536)  # wait until the client gives up
    finally:
        conn.close()


def test_client_hello_never_answered(tmp_path: Path) -> None:
    # Given a listener that accepts and stays silent
    out = tmp_path / "silent.pcapng"
    with tcp_server(_silent) as port, recording(port, out):
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        python_client(port, ctx, timeout=1.0)
    outcome, result = _inspect(out, port)
    # Then the unanswered ClientHello is reported
    finding = _codes(outcome)["CAPTURE_NO_SERVER_RESPONSE"]
    assert (finding.evidence["stage"], finding.evidence["reason"]) == ("tls", "no_server_hello")
    assert result.outcomes == {"no_server_hello": 1}
    assert _hints(outcome) == [("CAPTURE_NO_SERVER_RESPONSE", "critical")]


def test_rst_to_syn(tmp_path: Path) -> None:
    # Given a port where nothing listens
    port = free_port()
    out = tmp_path / "refused.pcapng"
    with recording(port, out):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), 2).close()
    outcome, _ = _inspect(out, port)
    # Then the refusal is named
    finding = _codes(outcome)["CAPTURE_NO_SERVER_RESPONSE"]
    assert (finding.evidence["stage"], finding.evidence["reason"]) == ("connect", "refused")
    assert _hints(outcome) == [("CAPTURE_NO_SERVER_RESPONSE", "critical")]


def _reset_after_client_flight(lab: Lab) -> object:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(lab.fe["cert"], lab.fe["key"])
    ctx.load_verify_locations(lab.trust)
    ctx.verify_mode = ssl.CERT_REQUIRED

    def handler(conn: socket.socket) -> None:
        # Play the server's first flight with a memory BIO, then drop the client's flight with a RST
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(incoming, outgoing, server_side=True)
        conn.settimeout(5)
        incoming.write(conn.recv(65536))
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            conn.sendall(outgoing.read())
        conn.recv(65536)  # the client's Certificate ... Finished flight
        time.sleep(0.1)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    return handler


def test_reset_after_client_certificate(lab: Lab, tmp_path: Path) -> None:
    # Given a server that resets the connection once the client certificate flight arrives
    out = tmp_path / "reset.pcapng"
    with tcp_server(_reset_after_client_flight(lab)) as port, recording(port, out):  # type: ignore[arg-type]
        openssl_client(port, *_client_cert(lab))
    outcome, result = _inspect(out, port)
    # Then the reset right after the client certificate is reported (no alert involved)
    found = _codes(outcome)
    assert found["CAPTURE_RESET_AFTER_CLIENT_CERT"].evidence["reason"] == "reset"
    assert "CAPTURE_TLS_ALERT" not in found
    assert result.outcomes == {"reset_after_client_cert": 1}
    assert _hints(outcome) == [("CAPTURE_RESET_AFTER_CLIENT_CERT", "critical")]


@pytest.mark.parametrize(("status", "code", "severity"), [(b"403 Forbidden", "SIP_NOT_TRUSTED", "critical"),
                                                         (b"504 Server Time-out", "SIP_ERROR_RESPONSE", "warning")])
def test_sip_answer_decoded_with_key_log(lab: Lab, tmp_path: Path, status: bytes, code: str, severity: str) -> None:
    # Given a TLS server answering SIP OPTIONS with 403 (or 504) + ms-diagnostics, and a client writing a key log
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(lab.fe["cert"], lab.fe["key"])
    answer = (b"SIP/2.0 " + status + b"\r\nVia: SIP/2.0/TLS 127.0.0.1;branch=z9hG4bK1\r\nCall-ID: 1@rmx\r\n"
              b"CSeq: 1 OPTIONS\r\nFrom: <sip:rmx.lab.example>;tag=1\r\nTo: <sip:pool.lab.example>;tag=2\r\n"
              b'ms-diagnostics: 1010;reason="Certificate trust with next hop could not be established";'
              b'source="fe01.lab.example"\r\nContent-Length: 0\r\n\r\n')

    def handler(conn: socket.socket) -> None:
        conn.settimeout(5)
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            tls.recv(65536)
            tls.sendall(answer)
            time.sleep(0.2)

    keylog = tmp_path / "keys.log"
    client_ctx = ssl.create_default_context(cafile=str(lab.trust))
    client_ctx.keylog_filename = str(keylog)
    options = (b"OPTIONS sip:pool.lab.example SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1;branch=z9hG4bK1\r\n"
               b"Call-ID: 1@rmx\r\nCSeq: 1 OPTIONS\r\nFrom: <sip:rmx.lab.example>;tag=1\r\n"
               b"To: <sip:pool.lab.example>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    out = tmp_path / "sip.pcapng"
    with tcp_server(handler) as port, recording(port, out):
        assert python_client(port, client_ctx, options).startswith(b"SIP/2.0 " + status[:3])
    # When inspected with the key log
    outcome, result = _inspect(out, port, keylog=keylog)
    # Then the answer and its ms-diagnostics are reported (403: SIP_NOT_TRUSTED, else SIP_ERROR_RESPONSE)
    finding = _codes(outcome)[code]
    assert finding.evidence["sip_status"] == int(status[:3])
    assert finding.evidence["ms_diagnostics"] == [{
        "id": 1010, "sub": None, "reason": "Certificate trust with next hop could not be established",
        "source": "fe01.lab.example"}]
    # And without the key log the same capture shows no SIP at all
    assert _hints(outcome) == [(code, severity)]
    plain, _ = _inspect(out, port)
    assert code not in _codes(plain)
    assert result.summaries[0].sip


def test_small_segments_are_reassembled(lab: Lab, tmp_path: Path) -> None:
    # Given an MTLS handshake with openssl s_server where the client advertises MSS 536, so the
    # server's Certificate + CertificateRequest flight spans many small segments
    port = free_port()
    out = tmp_path / "small.pcapng"
    client = ssl.create_default_context(cafile=str(lab.trust))
    client.check_hostname = False
    client.load_cert_chain(lab.rmx["cert"], lab.rmx["key"])
    with openssl_server(lab.dir, port, *_server_args(lab, *STRICT, "-CAfile", str(lab.trust), "-tls1_2")) as srv:
        wait_for_port(port, proc=srv)
        with recording(port, out):
            raw = socket.socket()
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
            raw.settimeout(5)
            raw.connect(("127.0.0.1", port))
            with client.wrap_socket(raw) as tls:
                tls.sendall(b"x\n")
    outcome, result = _inspect(out, port)
    # Then the reassembled flights still give both chains and the CA names
    summary = result.summaries[0]
    assert summary.outcome == "ok", summary.line()
    assert summary.server_chain[0][0] == "CN=fe01.lab.example"
    assert summary.client_chain[0][0] == "CN=rmx.lab.example,O=rmxdiag lab"
    assert summary.ca_names is not None and len(summary.ca_names) == 2
    assert summary.rmx_issuer_in_ca_list is True
    assert set(_codes(outcome)) == {"CAPTURE_SUMMARY"} and _hints(outcome) == []


def test_syn_never_answered(tmp_path: Path) -> None:
    # Given a port whose SYNs the kernel drops (listener with a full accept backlog)
    from tests.support.mtls import syn_blackhole

    out = tmp_path / "blackhole.pcapng"
    with syn_blackhole() as port, recording(port, out):
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), 2.5).close()
    outcome, result = _inspect(out, port)
    # Then the unanswered SYN (retransmitted by the client's kernel) is reported
    finding = _codes(outcome)["CAPTURE_NO_SERVER_RESPONSE"]
    assert (finding.evidence["stage"], finding.evidence["reason"]) == ("connect", "no_syn_ack")
    assert result.outcomes.get("no_syn_ack", 0) >= 1
    assert any(s.retransmissions >= 1 for s in result.summaries if s.outcome == "no_syn_ack")
    assert _hints(outcome) == [("CAPTURE_NO_SERVER_RESPONSE", "critical")]
