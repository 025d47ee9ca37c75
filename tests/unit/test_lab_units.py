"""Pure parts of the lab: the scenario table, SIP answers, the alarm report layout."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from daemon.diagnosis.catalogue import CATALOGUE
from daemon.lab.scenarios import DEFAULT_SCENARIO, SCENARIOS, write_alarm_report
from daemon.lab.wire import sip_response, take_sip_message

REQUEST = (b"OPTIONS sip:pool.lab.example SIP/2.0\r\nv: SIP/2.0/TLS 10.0.0.5:5061;branch=z9hG4bKx\r\n"
           b"f: <sip:rmx.lab.example>;tag=a\r\nt: <sip:pool.lab.example>\r\ni: call-1\r\nCSeq: 3 OPTIONS\r\n"
           b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")


def test_every_expected_root_cause_is_a_catalogue_code() -> None:
    # Given the scenario table, each expected code is stable API (a catalogue hint), and the default exists
    assert DEFAULT_SCENARIO in SCENARIOS
    for scenario in SCENARIOS.values():
        assert scenario.expect is None or scenario.expect in CATALOGUE, scenario.name
    # And the ten scenarios are all there
    assert {"healthy", "untrusted-ca", "name-mismatch", "missing-client-eku", "expired", "factory-self-signed",
            "not-trusted-app", "registrar-down", "tls-version-mismatch",
            "request-pasted-as-certificate"} <= set(SCENARIOS)


def test_sip_response_echoes_the_dialog_headers_in_compact_form_too() -> None:
    # When the Front End answers a request that uses compact header names
    answer = sip_response(REQUEST, 403, "Forbidden", ['ms-diagnostics: 1010;reason="x";source="fe"'])
    lines = answer.decode().split("\r\n")
    # Then Via/From/Call-ID/CSeq come back, To gets a tag, Max-Forwards does not, and the framing is exact
    assert lines[0] == "SIP/2.0 403 Forbidden"
    assert "v: SIP/2.0/TLS 10.0.0.5:5061;branch=z9hG4bKx" in lines and "i: call-1" in lines
    assert "t: <sip:pool.lab.example>;tag=labfe" in lines and "CSeq: 3 OPTIONS" in lines
    assert not any(line.startswith("Max-Forwards") for line in lines)
    assert answer.endswith(b"Content-Length: 0\r\n\r\n")


def test_alarm_report_uses_the_active_alarms_export_columns(tmp_path: Path) -> None:
    # When the lab writes two alarms
    now = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
    path = write_alarm_report(tmp_path / "a.txt", ("SIP TLS: Certificate has expired",
                                                   "SIP TLS: Registration handshake failure"), now)
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    # Then the header is the RMX Manager layout and each row has six tab-separated columns, oldest first
    assert rows[0] == ["ID", "Time", "GMT Time", "Category", "Level", "Description"]
    assert rows[1] == ["1", "26/11/2026 11:50:00", "26/11/2026 11:50:00", "General", "Major",
                       "SIP TLS: Certificate has expired"]
    assert rows[2][0] == "2" and rows[2][5] == "SIP TLS: Registration handshake failure"


def test_sip_framing_takes_whole_messages_only() -> None:
    # Given a keep-alive, one message with a 5-byte body and the start of another
    buf = bytearray(b"\r\n\r\nMESSAGE sip:x SIP/2.0\r\nl: 5\r\n\r\nhelloOPTIONS sip:x SIP/2.0\r\nContent-Le")
    # Then the first comes out whole (body included), the partial one stays buffered
    assert take_sip_message(buf) == b"MESSAGE sip:x SIP/2.0\r\nl: 5\r\n\r\nhello"
    assert take_sip_message(buf) is None
    assert buf == bytearray(b"OPTIONS sip:x SIP/2.0\r\nContent-Le")
    # And once it completes, with a non-numeric length read as 0, it is taken too
    buf += b"ngth: x\r\n\r\n"
    assert take_sip_message(buf) == b"OPTIONS sip:x SIP/2.0\r\nContent-Length: x\r\n\r\n"
    assert buf == bytearray()
