"""SIP OPTIONS building, stream framing and response parsing (ms-diagnostics included)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probes import sip

FIXTURES = Path(__file__).parent.parent / "fixtures" / "probe"


def test_options_has_crlf_framing_and_mandatory_headers() -> None:
    """Given an OPTIONS, When built, Then CRLF only, blank line at the end, mandatory headers present."""
    msg = sip.build_options("pool.lab.example", "10.0.0.5:40000", "rmx.lab.example", 5061)
    assert msg.startswith(b"OPTIONS sip:pool.lab.example:5061;transport=tls SIP/2.0\r\n")
    assert msg.endswith(b"Content-Length: 0\r\n\r\n") and msg.count(b"\r\n\r\n") == 1
    assert b"\n" not in msg.replace(b"\r\n", b"")
    for header in (b"Via: SIP/2.0/TLS 10.0.0.5:40000;branch=z9hG4bK", b"Max-Forwards: 70", b"Call-ID: ",
                   b"CSeq: 1 OPTIONS", b"From: <sip:rmx.lab.example>;tag=", b"To: <sip:pool.lab.example:5061"):
        assert header in msg


def test_lync_403_with_diagnostics_and_folded_public_header() -> None:
    """Given a Lync-style 403 with two diagnostics headers and a body, When framed and parsed, Then all fields."""
    data = (FIXTURES / "lync-403.bin").read_bytes()
    length = sip.frame(data)
    assert length is not None and data[length:].startswith(b"SIP/2.0 200")  # body framed by l: 4
    response = sip.parse_response(data[:length])
    assert (response.status, response.reason, response.body) == (403, "Forbidden", b"body")
    assert response.server == "RTC/5.0"
    first, public = response.diagnostics
    assert first.to_json() == {"id": 1010, "sub": None, "source": "fe01.corp.example",
                               "reason": "Certificate trust with next hop could not be established"}
    assert (public.id, public.sub, public.source, public.public) == (1047, 2, "edge.corp.example", True)
    assert public.reason.startswith("Failed to complete TLS negotiation")


def test_provisional_then_final_and_leading_keepalive() -> None:
    """Given keep-alive CRLFs, a 100 and a 200, When framed twice, Then both messages come out whole."""
    data = (FIXTURES / "trying-then-200.bin").read_bytes()
    first = sip.frame(data)
    assert first is not None and sip.parse_response(data[:first]).status == 100
    rest = data[first:]
    second = sip.frame(rest)
    assert second == len(rest)
    assert sip.parse_response(rest).server == "kamailio (5.6.3 (x86_64/linux))"


@pytest.mark.parametrize("data", [b"SIP/2.0 200 OK\r\nContent-Length: 10\r\n\r\nshort", b"SIP/2.0 200 OK\r\nVia: x"])
def test_incomplete_needs_more(data: bytes) -> None:
    """Given a partial message, When framed, Then None (read more)."""
    assert sip.frame(data) is None


@pytest.mark.parametrize("data", [b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n", b"SIP/2.0 200 OK\r\nContent-Length: x\r\n\r\n",
                                  b"SIP/2.0 200 OK\r\nContent-Length: 1\r\nl: 2\r\n\r\n"])
def test_stream_without_valid_length_is_an_error(data: bytes) -> None:
    """Given a stream message without a usable Content-Length, When framed, Then SipParseError."""
    with pytest.raises(sip.SipParseError):
        sip.frame(data)


@pytest.mark.parametrize("data", [b"HTTP/1.1 200 OK\r\n\r\n", b"SIP/2.0 20 OK\r\n\r\n",
                                  b"SIP/2.0 200 OK\r\nnocolon\r\n\r\n"])
def test_not_a_sip_response(data: bytes) -> None:
    """Given something that is not a SIP response, When parsed, Then SipParseError naming the line."""
    with pytest.raises(sip.SipParseError):
        sip.parse_response(data)


def test_unparsable_diagnostics_keeps_raw_text() -> None:
    """Given a diagnostics value without an id, When parsed, Then id 0 and the raw text as reason."""
    diag = sip.parse_ms_diagnostics("weird value")
    assert (diag.id, diag.reason, diag.source) == (0, "weird value", None)


@given(st.binary(max_size=300))
def test_frame_never_crashes(data: bytes) -> None:
    """Given arbitrary bytes, When framed, Then a length, None or SipParseError, nothing else."""
    try:
        result = sip.frame(data)
    except sip.SipParseError:
        return
    assert result is None or 0 < result <= len(data)
