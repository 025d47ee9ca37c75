"""Pure capture analysis over committed event fixtures (extracted from real loopback captures) and hand-made events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from probes.capture_analysis import MAX_LISTED, CaptureAnalyzer, analyse, parse_ms_diagnostics
from probes.capture_events import PacketEvent, TlsRecord
from probes.capture_names import certificate_request_names, dn_to_rfc4514

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "capture"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())


def _events(name: str) -> list[PacketEvent]:
    stem = name.split(".", maxsplit=1)[0]
    lines = (FIXTURES / f"{stem}.events.jsonl").read_text().splitlines()
    return [PacketEvent.from_json(json.loads(line)) for line in lines]


def _run(name: str, **kw: object) -> tuple[dict[str, int], dict[str, dict[str, object]], list[str]]:
    result, findings = analyse(_events(name), MANIFEST[name]["port"], **kw)  # type: ignore[arg-type]
    return result.outcomes, {f.code: dict(f.evidence) for f in findings}, [s.line() for s in result.summaries]


@pytest.mark.parametrize(("fixture", "outcomes", "codes"), [
    ("healthy12.pcapng", {"ok": 1}, {"CAPTURE_SUMMARY"}),
    ("healthy13.pcapng", {"ok": 1}, {"CAPTURE_SUMMARY"}),
    ("alert48.pcap", {"alert": 1}, {"CAPTURE_TLS_ALERT", "CAPTURE_TRUNCATED_CA_LIST", "CAPTURE_SUMMARY"}),
    ("empty_cert.pcapng", {"alert": 1}, {"CAPTURE_TLS_ALERT", "CAPTURE_EMPTY_CLIENT_CERT", "CAPTURE_SUMMARY"}),
    ("ca_list.pcapng", {"ok": 1}, {"CAPTURE_TRUNCATED_CA_LIST", "CAPTURE_SUMMARY"}),
    ("reset.pcapng", {"reset_after_client_cert": 1}, {"CAPTURE_RESET_AFTER_CLIENT_CERT", "CAPTURE_SUMMARY"}),
    ("silent.pcapng", {"no_server_hello": 1}, {"CAPTURE_NO_SERVER_RESPONSE", "CAPTURE_SUMMARY"}),
    ("refused.pcapng", {"refused": 1}, {"CAPTURE_NO_SERVER_RESPONSE", "CAPTURE_SUMMARY"}),
    ("sip403.pcapng", {"ok": 1}, {"SIP_NOT_TRUSTED", "CAPTURE_SUMMARY"}),
])
def test_fixture_outcomes_and_findings(fixture: str, outcomes: dict[str, int], codes: set[str]) -> None:
    # Given the events of a real capture, When analysed, Then the outcome and the finding codes match
    got_outcomes, found, lines = _run(fixture)
    assert got_outcomes == outcomes, lines
    assert set(found) == codes


def test_alert_evidence_and_direction() -> None:
    # Given the alert 48 capture
    _, found, lines = _run("alert48.pcap")
    # Then the evidence names alert, name, direction and connection
    alert = found["CAPTURE_TLS_ALERT"]
    assert (alert["alert"], alert["alert_name"], alert["direction"], alert["count"]) == (48, "unknown_ca", "from_fe", 1)
    assert str(alert["connection"]).endswith(f"-> 127.0.0.1:{MANIFEST['alert48.pcap']['port']}")
    assert "S:Alert(fatal,unknown_ca)" in lines[0]


def test_sip_status_and_ms_diagnostics() -> None:
    # Given the decrypted SIP capture
    _, found, _ = _run("sip403.pcapng")
    # Then the 403 and the parsed ms-diagnostics are evidence
    sip = found["SIP_NOT_TRUSTED"]
    assert sip["sip_status"] == 403
    assert sip["ms_diagnostics"] == [{"id": 1010, "sub": None, "source": "fe01.lab.example",
                                      "reason": "Certificate trust with next hop could not be established"}]


def _ev(ts: float, src: str, sport: int, dst: str, dport: int, **kw: object) -> PacketEvent:
    return PacketEvent(ts, src, sport, dst, dport, **kw)  # type: ignore[arg-type]


RMX, FE = "10.0.0.5", "10.0.0.9"


def _alert_flow(desc: int) -> list[PacketEvent]:
    return [
        _ev(0.0, RMX, 40000, FE, 5061, syn=True),
        _ev(0.001, FE, 5061, RMX, 40000, syn=True, ack=True),
        _ev(0.002, RMX, 40000, FE, 5061, ack=True, records=(TlsRecord(22, (1,)),), versions=(0x0303,)),
        _ev(0.003, FE, 5061, RMX, 40000, ack=True, records=(TlsRecord(21, (), 2, desc),)),
        _ev(0.004, FE, 5061, RMX, 40000, ack=True, fin=True),
    ]


def test_direction_follows_rmx_ip() -> None:
    # Given a server alert, When the RMX is the client (default) or declared to be the server
    _, default = analyse(_alert_flow(46), 5061)
    _, swapped = analyse(_alert_flow(46), 5061, rmx_ip=FE)
    # Then the same alert is attributed to the Front End, resp. to the RMX
    assert [f.evidence["direction"] for f in default if f.code == "CAPTURE_TLS_ALERT"] == ["from_fe"]
    assert [f.evidence["direction"] for f in swapped if f.code == "CAPTURE_TLS_ALERT"] == ["from_rmx"]


def test_unanswered_syn_needs_the_client_to_wait() -> None:
    # Given a SYN at the very end of a capture, and one the capture watched for 3 s more
    end_only = [_ev(10.0, RMX, 40001, FE, 5061, syn=True)]
    watched = [*end_only, _ev(13.5, RMX, 40002, FE, 5061, syn=True)]
    # Then only the watched SYN counts as never answered
    assert analyse(end_only, 5061)[0].outcomes == {"incomplete": 1}
    assert analyse(watched, 5061)[0].outcomes == {"no_syn_ack": 1, "incomplete": 1}


def test_memory_stays_flat_over_many_connections() -> None:
    # Given many short refused connections
    analyzer = CaptureAnalyzer(5061)
    for n in range(3000):
        port = 20000 + n
        analyzer.feed(_ev(n, RMX, port, FE, 5061, syn=True))
        analyzer.feed(_ev(n + 0.001, FE, 5061, RMX, port, rst=True, ack=True))
        assert len(analyzer._live) == 0  # closed connections leave no state behind
    result, findings = analyzer.finish()
    # Then counters cover all, the listing is bounded, and one aggregated finding carries the count
    assert result.connections == 3000 and result.outcomes == {"refused": 3000}
    assert len(result.summaries) == MAX_LISTED and result.omitted == 3000 - MAX_LISTED
    assert [f.evidence["count"] for f in findings if f.code == "CAPTURE_NO_SERVER_RESPONSE"] == [3000]


@pytest.mark.parametrize(("header", "expected"), [
    ('ms-diagnostics: 1010;reason="Certificate trust with next hop could not be established";source="fe.x"',
     [{"id": 1010, "sub": None, "reason": "Certificate trust with next hop could not be established",
       "source": "fe.x"}]),
    ('MS-Diagnostics: 1047.2;reason="TLS negotiation with peer failed"',
     [{"id": 1047, "sub": 2, "reason": "TLS negotiation with peer failed", "source": None}]),
    ("ms-diagnostics-public: garbage", [{"id": None, "sub": None, "reason": "garbage", "source": None}]),
    ("Via: SIP/2.0/TLS x", []),
])
def test_parse_ms_diagnostics(header: str, expected: list[dict[str, object]]) -> None:
    # Given a raw header block, Then every ms-diagnostics value is parsed (unknown forms kept raw)
    assert parse_ms_diagnostics(f"SIP/2.0 403 Forbidden\r\n{header}\r\nContent-Length: 0\r\n") == expected


@pytest.mark.parametrize("attrs", [
    [(NameOID.COMMON_NAME, "rmxdiag Lab Issuing CA"), (NameOID.ORGANIZATION_NAME, "rmxdiag lab")],
    [(NameOID.COUNTRY_NAME, "US"), (NameOID.ORGANIZATION_NAME, "Contoso, Ltd."),
     (NameOID.ORGANIZATIONAL_UNIT_NAME, "IT+Ops"), (NameOID.COMMON_NAME, "Contoso Root; 2")],
    [(NameOID.DOMAIN_COMPONENT, "com"), (NameOID.DOMAIN_COMPONENT, "contoso"), (NameOID.COMMON_NAME, "Émile CA")],
])
def test_dn_rendering_matches_cryptography(attrs: list[tuple[x509.ObjectIdentifier, str]]) -> None:
    # Given a DER Name, Then our RFC 4514 rendering equals the one cryptography prints for certificates
    name = x509.Name([x509.NameAttribute(oid, value) for oid, value in attrs])
    assert dn_to_rfc4514(name.public_bytes()) == name.rfc4514_string()


def test_certificate_request_scan_finds_names_among_other_records() -> None:
    # Given a ServerHelloDone-like prefix, a CertificateRequest with two CA names, and trailing bytes
    names = [x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]).public_bytes() for cn in ("A", "B CA")]
    dnames = b"".join(len(n).to_bytes(2, "big") + n for n in names)
    body = b"\x01\x01" + b"\x00\x02\x04\x01" + len(dnames).to_bytes(2, "big") + dnames
    record = b"\x0e\x00\x00\x00" + b"\x0d" + len(body).to_bytes(3, "big") + body + b"\x0e\x00\x00\x00"
    # Then exactly those names come back
    assert certificate_request_names(record) == names


@given(st.binary(max_size=400))
def test_certificate_request_scan_never_crashes(data: bytes) -> None:
    # Given arbitrary bytes, Then the scan returns None or a list of DER SEQUENCEs, never raises
    found = certificate_request_names(data)
    assert found is None or all(n[:1] == b"\x30" for n in found)


def test_event_json_round_trip() -> None:
    # Given every event of every fixture, Then to_json/from_json is lossless
    for name in MANIFEST:
        for event in _events(name):
            assert PacketEvent.from_json(json.loads(json.dumps(event.to_json()))) == event
