"""`rmxdiag pcap` on captures of a real Kamailio MTLS registrar (the Front End stand-in)."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

import pytest

from daemon.lab import pki
from probes.capture import probe as capture
from probes.capture.analysis import CaptureResult
from tests.support.capture import (
    no_orphans_after,  # noqa: F401 (fixture)
    recording,
)
from tests.support.kamailio import MS_DIAG_REASON, kamailio_registrar

pytestmark = [pytest.mark.peer("tshark", "kamailio"), pytest.mark.slow, pytest.mark.usefixtures("no_orphans_after")]

OPTIONS = (b"OPTIONS sip:pool.lab.example SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bK77\r\n"
           b"Max-Forwards: 70\r\nFrom: <sip:rmx.lab.example>;tag=7\r\nTo: <sip:pool.lab.example>\r\n"
           b"Call-ID: 77@rmx.lab.example\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")


def _client(lab_pki: object, tmp_path: Path, issued: pki.Issued, keylog: Path) -> ssl.SSLContext:
    files = issued.write(tmp_path, "client")
    ctx = ssl.create_default_context(cafile=str(lab_pki.ca_bundle(tmp_path)))  # type: ignore[attr-defined]
    ctx.check_hostname = False
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # alerts and the CA list stay visible on the wire
    ctx.load_cert_chain(files["cert"], files["key"])
    ctx.keylog_filename = str(keylog)
    return ctx


def _talk(port: int, ctx: ssl.SSLContext) -> bytes:
    answer = b""
    try:
        with socket.create_connection(("127.0.0.1", port), 5) as raw, ctx.wrap_socket(raw) as tls:
            tls.sendall(OPTIONS)
            answer = tls.recv(65536)
    except (OSError, ssl.SSLError):
        pass
    return answer


def test_kamailio_403_for_an_untrusted_peer_is_decoded(lab_pki: object, tmp_path: Path) -> None:
    # Given Kamailio trusting the lab CA but only the CN rmx.lab.example, and an RMX presenting another CN
    other = pki.issue(pki.name("other.lab.example"), lab_pki.issuing)  # type: ignore[attr-defined]
    keylog = tmp_path / "keys.log"
    ctx = _client(lab_pki, tmp_path, other, keylog)
    out = tmp_path / "kamailio-403.pcapng"
    with kamailio_registrar(tmp_path / "kam", lab_pki.fe, lab_pki.ca_bundle(tmp_path),  # type: ignore[attr-defined]
                            trusted_cn="rmx.lab.example", method="TLSv1.2") as fe, recording(fe.port, out):
        assert _talk(fe.port, ctx).startswith(b"SIP/2.0 403")
    # When the capture is inspected with the client's key log
    outcome = capture.inspect([out], fe.port, keylog=keylog, deadline=time.monotonic() + 60)
    # Then MTLS was fine and the 403 with its ms-diagnostics is the finding
    assert isinstance(outcome.result, CaptureResult)
    found = {f.code: f for f in outcome.findings}
    assert found["SIP_NOT_TRUSTED"].evidence["sip_status"] == 403
    assert found["SIP_NOT_TRUSTED"].evidence["ms_diagnostics"][0]["id"] == 1010
    assert found["SIP_NOT_TRUSTED"].evidence["ms_diagnostics"][0]["reason"] == MS_DIAG_REASON
    summary = outcome.result.summaries[0]
    assert summary.outcome == "ok" and summary.rmx_issuer_in_ca_list is True


def test_kamailio_alert_for_a_certificate_from_an_unknown_ca(lab_pki: object, tmp_path: Path) -> None:
    # Given an RMX certificate issued by a CA Kamailio does not trust
    stranger = pki.issue(pki.name("rmx.lab.example"), lab_pki.other_root)  # type: ignore[attr-defined]
    ctx = _client(lab_pki, tmp_path, stranger, tmp_path / "keys.log")
    out = tmp_path / "kamailio-alert.pcapng"
    with kamailio_registrar(tmp_path / "kam", lab_pki.fe, lab_pki.ca_bundle(tmp_path),  # type: ignore[attr-defined]
                            trusted_cn="rmx.lab.example", method="TLSv1.2") as fe, recording(fe.port, out):
        assert _talk(fe.port, ctx) == b""
    # When inspected without a key log
    outcome = capture.inspect([out], fe.port, deadline=time.monotonic() + 60)
    # Then the Front End's fatal alert and the CA list without the RMX issuer are reported
    found = {f.code: f for f in outcome.findings}
    alert = found["CAPTURE_TLS_ALERT"].evidence
    assert (alert["direction"], alert["alert"], alert["alert_name"]) == ("from_fe", 48, "unknown_ca")
    assert "CAPTURE_TRUNCATED_CA_LIST" in found
