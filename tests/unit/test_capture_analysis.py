"""Pure capture analysis over committed event fixtures (extracted from real loopback captures) and hand-made events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from probes.capture.analysis import MAX_LISTED, CaptureAnalyzer, analyse, parse_ms_diagnostics
from probes.capture.events import PacketEvent, TlsRecord
from probes.capture.records import segment_records, segment_records_prefix, split_messages
from probes.tlswire import certificate_list, certificate_request_cas, dn_to_rfc4514, hello_body_facts

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
    ("healthy13.pcapng", {"tls13_encrypted": 1}, {"CAPTURE_SUMMARY"}),
    ("alert48.pcap", {"alert": 1}, {"CAPTURE_TLS_ALERT", "CAPTURE_TRUNCATED_CA_LIST", "CAPTURE_SUMMARY"}),
    ("empty_cert.pcapng", {"alert": 1}, {"CAPTURE_TLS_ALERT", "CAPTURE_EMPTY_CLIENT_CERT", "CAPTURE_SUMMARY"}),
    ("ca_list.pcapng", {"ok": 1}, {"CAPTURE_TRUNCATED_CA_LIST", "CAPTURE_SUMMARY"}),
    ("reset.pcapng", {"reset_after_client_cert": 1}, {"CAPTURE_RESET_AFTER_CLIENT_CERT", "CAPTURE_SUMMARY"}),
    ("silent.pcapng", {"no_server_hello": 1}, {"CAPTURE_NO_SERVER_RESPONSE", "CAPTURE_SUMMARY"}),
    ("refused.pcapng", {"refused": 1}, {"CAPTURE_NO_SERVER_RESPONSE", "CAPTURE_SUMMARY"}),
    ("sip403.pcapng", {"ok": 1}, {"SIP_NOT_TRUSTED", "CAPTURE_SUMMARY"}),
    ("retrans.pcap", {"alert": 1}, {"CAPTURE_TLS_ALERT", "CAPTURE_TRUNCATED_CA_LIST", "CAPTURE_SUMMARY"}),
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


def test_retransmission_is_counted_once() -> None:
    # Given the alert capture with its ClientHello segment sent twice
    result, _ = analyse(_events("retrans.pcap"), MANIFEST["retrans.pcap"]["port"])
    # Then the connection shows one retransmission and the history the ClientHello once
    summary = result.summaries[0]
    assert summary.retransmissions == 1 and summary.history.count("C:ClientHello") == 1
    assert "1 retransmissions" in summary.line()


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


def test_trailing_reset_of_a_closed_connection_opens_no_phantom() -> None:
    # Given a connection closed by both FINs, then a late RST from the client on the same 4-tuple
    flow = [*_alert_flow(48), _ev(0.005, RMX, 40000, FE, 5061, ack=True, fin=True),
            _ev(0.006, RMX, 40000, FE, 5061, rst=True)]
    # Then one connection is counted, not two
    assert analyse(flow, 5061)[0].connections == 1


def test_listing_prefers_problems() -> None:
    # Given 300 healthy TLS 1.2 connections followed by one refused connection
    events: list[PacketEvent] = []
    for n in range(300):
        port = 30000 + n
        events += [_ev(n, RMX, port, FE, 5061, records=(TlsRecord(22, (1,)),)),
                   _ev(n + 0.1, FE, 5061, RMX, port, records=(TlsRecord(22, (2, 11, 14)), TlsRecord(20))),
                   _ev(n + 0.2, FE, 5061, RMX, port, rst=True)]
    events += [_ev(400, RMX, 50000, FE, 5061, syn=True), _ev(400.1, FE, 5061, RMX, 50000, rst=True, ack=True)]
    result, _ = analyse(events, 5061)
    # Then the listing is bounded but still shows the refused connection
    assert result.outcomes == {"ok": 300, "refused": 1}
    assert len(result.summaries) == 51 and result.summaries[-1].outcome == "refused"


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


def _records(*messages: tuple[int, bytes]) -> bytes:
    stream = b"".join(bytes([t]) + len(b).to_bytes(3, "big") + b for t, b in messages)
    return b"\x16\x03\x03" + len(stream).to_bytes(2, "big") + stream


def test_handshake_messages_from_a_segment_starting_mid_record() -> None:
    # Given the tail of an earlier record, then a record with a CertificateRequest (two CA names),
    # a ServerHelloDone, then a ChangeCipherSpec and an encrypted handshake record
    names = [x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]).public_bytes() for cn in ("A", "B CA")]
    dnames = b"".join(len(n).to_bytes(2, "big") + n for n in names)
    request = b"\x01\x01" + b"\x00\x02\x04\x01" + len(dnames).to_bytes(2, "big") + dnames
    segment = (b"\x99tail-of-earlier-record" + _records((13, request), (14, b"")) + b"\x14\x03\x03\x00\x01\x01"
               + b"\x16\x03\x03\x00\x04\xde\xad\xbe\xef")
    # When split into records, and the first record into handshake messages
    records = segment_records(segment)
    messages, rest = split_messages(records[0][1])
    # Then every record comes out whole (the tail before them skipped), the plaintext messages
    # fill the first one, and the CA names parse
    assert [t for t, _ in records] == [22, 20, 22]
    assert [t for t, _ in messages] == [13, 14] and rest == b""
    assert certificate_request_cas(messages[0][1]) == names


def test_records_with_a_partial_record_left_for_reassembly() -> None:
    # Given a ServerHello record, a CCS, an encrypted record, then the first bytes of a next record
    hello = _records((2, b"\x03\x03" + b"\x00" * 32 + b"\x00" + b"\xc0\x30\x00"))
    segment = hello + b"\x14\x03\x03\x00\x01\x01" + b"\x16\x03\x03\x00\x03\xaa\xbb\xcc" + b"\x16\x03\x03\x40\x00\x0b"
    # When split tolerantly
    records = segment_records_prefix(segment)
    # Then the complete records come out in order and the partial one is left for later
    assert [t for t, _ in records] == [22, 20, 22]
    assert split_messages(records[0][1]) == ([(2, records[0][1][4:])], b"")
    assert split_messages(b"\xaa\xbb\xcc") == ([], b"\xaa\xbb\xcc")  # an encrypted Finished does not parse
    assert hello_body_facts(records[0][1][4:], client=False) == {"legacy": 0x0303, "cipher": 0xC030}


def test_certificate_list() -> None:
    # Given a Certificate message body with two entries, and an empty one
    body = b"".join(len(c).to_bytes(3, "big") + c for c in (b"\x30\x01A", b"\x30\x02BB"))
    # Then both DER blobs come back, and none for the empty list
    assert certificate_list(len(body).to_bytes(3, "big") + body) == [b"\x30\x01A", b"\x30\x02BB"]
    assert certificate_list(b"\x00\x00\x00") == []


@given(st.binary(max_size=400))
def test_raw_parsers_never_crash(data: bytes) -> None:
    # Given arbitrary bytes, Then the record splitters and hello reader return values, never raise,
    # and the message parsers either parse or raise ValueError (never another exception)
    for kind, body in segment_records(data):
        assert kind in (20, 21, 22, 23) and isinstance(body, bytes)
    for tls13 in (False, True):
        try:
            names = certificate_request_cas(data, tls13)
        except ValueError:
            names = []
        assert all(n[:1] == b"\x30" for n in names)
        try:
            certs = certificate_list(data, tls13)
        except ValueError:
            certs = []
        assert all(isinstance(c, bytes) for c in certs)
    hello_body_facts(data, client=True)
    for _, body in segment_records_prefix(data):
        messages, rest = split_messages(body)
        assert sum(4 + len(m) for _, m in messages) + len(rest) == len(body)


def test_event_json_round_trip() -> None:
    # Given every event of every fixture, Then to_json/from_json is lossless
    for name in MANIFEST:
        for event in _events(name):
            assert PacketEvent.from_json(json.loads(json.dumps(event.to_json()))) == event


def _e(ts: float, client: bool, **kw: object) -> PacketEvent:
    ends = ("10.0.0.5", 40000, "10.0.0.9", 5061)
    src, sport, dst, dport = ends if client else (ends[2], ends[3], ends[0], ends[1])
    return PacketEvent(ts, src, sport, dst, dport, **kw)  # type: ignore[arg-type]


def test_clear_text_needs_the_start_of_the_connection() -> None:
    """Given the same non-TLS bytes, once after a SYN/SYN-ACK and once on a connection joined midway
    (where they may be the middle of a TLS record)
    When analysed
    Then only the connection seen from its start has TLS_PORT_NOT_TLS."""
    start = [_e(0.0, True, syn=True), _e(0.01, False, syn=True, ack=True)]
    data = [_e(0.02, True, ack=True, cleartext="OPTIONS sip:fe SIP/2.0")]
    _, seen = analyse([*start, *data])
    _, midway = analyse(data)
    assert [f.evidence["first_line"] for f in seen if f.code == "TLS_PORT_NOT_TLS"] == ["OPTIONS sip:fe SIP/2.0"]
    assert not any(f.code == "TLS_PORT_NOT_TLS" for f in midway)


def test_a_tls_continuation_segment_is_not_clear_text() -> None:
    """Given a TLS handshake whose later segment carries no record start (arbitrary bytes)
    When analysed
    Then no TLS_PORT_NOT_TLS: only a side's first bytes can show it is not TLS."""
    events = [_e(0.0, True, syn=True), _e(0.01, False, syn=True, ack=True),
              _e(0.02, True, ack=True, records=(TlsRecord(22, (1,)),), legacy_version=0x0303),
              _e(0.03, True, ack=True, cleartext="..garbage.."),
              _e(0.04, False, ack=True, records=(TlsRecord(22, (2, 11, 14)),), legacy_version=0x0303)]
    _, findings = analyse(events)
    assert not any(f.code == "TLS_PORT_NOT_TLS" for f in findings)
