"""Hostile files and messages: no parser lets an exception past its boundary, and sizes are capped
before any parsing starts (hypothesis; the same boundaries are fuzzed by atheris in
tests/integration/test_reliability_fuzz.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probes import fileio, sip
from probes.alarms import report as alarms_report
from probes.alarms import xmlapi as alarms_xmlapi
from probes.capture.analysis import analyse
from probes.capture.events import PacketEvent, TlsRecord
from probes.certificate import load as cert_load
from probes.model import ErrorKind, InputError
from tests.support import fuzz_targets

FIXTURES = fuzz_targets.FIXTURES
_LEAF = fuzz_targets.LEAF
SEEDS = fuzz_targets.seeds()


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with a few bytes replaced, a slice cut out or the tail truncated."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 8))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        choice = draw(st.integers(0, 2))
        if choice == 0:
            data[pos] = draw(st.integers(0, 255))
        elif choice == 1:
            del data[pos:pos + draw(st.integers(1, 64))]
        else:
            data[pos:pos] = draw(st.binary(max_size=16))
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    return bytes(data)


def _inputs(name: str) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=2048), mutated(SEEDS[name]))


@pytest.mark.parametrize("name", sorted(fuzz_targets.TARGETS))
def test_seeds_pass_their_boundary(name: str) -> None:
    """Given the well-formed seed of each parser, Then its boundary function accepts it."""
    assert SEEDS[name]
    for seed in SEEDS[name]:
        fuzz_targets.TARGETS[name](seed)


@pytest.mark.parametrize("name", sorted(fuzz_targets.TARGETS))
def test_no_exception_escapes_the_parser_boundary(name: str) -> None:
    """Given random and mutated inputs, When parsed, Then only the documented error leaves the parser."""
    target = fuzz_targets.TARGETS[name]

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_inputs(name))
    def check(data: bytes) -> None:
        target(data)

    check()


def test_oversized_certificate_file_is_refused_before_parsing(tmp_path: Path) -> None:
    """Given a certificate file of 1 MiB + 1 byte, Then INSECURE_FILE from the size alone."""
    path = tmp_path / "big.pem"
    path.write_bytes(_LEAF.cert_pem + b"\n" * (fileio.MAX_FILE_BYTES + 1 - len(_LEAF.cert_pem)))
    with pytest.raises(InputError) as caught:
        cert_load.load_certificate(path)
    assert caught.value.kind is ErrorKind.INSECURE_FILE and "1 MiB" in str(caught.value)


def test_oversized_xml_answer_is_refused_before_parsing() -> None:
    """Given an XML answer one byte over the cap (a 100 MB answer is cut at the socket), Then refused at once."""
    data = b"<A>" + b"x" * (alarms_xmlapi.MAX_ANSWER - 6) + b"</A>"
    assert len(data) == alarms_xmlapi.MAX_ANSWER + 1
    # The reference: the same megabyte one byte shorter, which the parser does read
    start = time.monotonic()
    with pytest.raises(alarms_xmlapi.XmlApiError) as parsed:
        alarms_xmlapi.parse_answer(data[:2] + data[3:])
    reference = time.monotonic() - start
    assert "larger than" not in str(parsed.value)
    start = time.monotonic()
    with pytest.raises(alarms_xmlapi.XmlApiError, match="larger than"):
        alarms_xmlapi.parse_answer(data)
    # Then far faster than parsing it: no parser ran over the megabyte
    assert time.monotonic() - start < reference / 5, reference


@pytest.mark.parametrize("doc", [
    b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><l>&c;</l>',
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
    b"<a>" * 1_000_000,
], ids=["billion_laughs", "external_entity", "nesting_1e6"])
def test_hostile_xml_is_refused_fast(doc: bytes) -> None:
    """Given an entity bomb, an external entity or 1e6-deep nesting, Then XmlApiError within 1 s."""
    start = time.monotonic()
    with pytest.raises(alarms_xmlapi.XmlApiError):
        alarms_xmlapi.parse_answer(doc[:alarms_xmlapi.MAX_ANSWER])
    assert time.monotonic() - start < 1.0


def test_sip_head_without_end_is_refused_at_the_header_cap() -> None:
    """Given 64 KiB + 1 of headers without a blank line, Then SipParseError (no unbounded buffering)."""
    with pytest.raises(sip.SipParseError, match="within"):
        sip.frame(b"SIP/2.0 200 OK\r\nX: " + b"a" * sip.MAX_HEADER_BYTES)


def test_oversized_alarm_report_is_cut_and_counted() -> None:
    """Given a 16 MiB + tail report in memory, Then it parses the capped part and counts the cut."""
    line = b"1\t01/01/2026 10:00:00\tGeneral\tMajor\tSIP TLS: Registration handshake failure\n"
    data = line * (alarms_report._MAX_REPORT // len(line) + 2)
    result = alarms_report.parse_report(data, "big.txt")
    assert result.skips.overlong >= 1


def _bad_version(der: bytes) -> bytes:
    """The certificate with its version field set to 4 (value 3): cryptography raises InvalidVersion."""
    assert der.count(b"\xa0\x03\x02\x01\x02") == 1
    return der.replace(b"\xa0\x03\x02\x01\x02", b"\xa0\x03\x02\x01\x03")


@pytest.mark.parametrize("name", ["certificate_file", "tls_certificate_msg"])
def test_certificate_with_an_invalid_version_stays_inside_the_boundary(name: str) -> None:
    """Given a certificate whose version is 4 (x509.InvalidVersion is not a ValueError), Then no escape."""
    bad = _bad_version(fuzz_targets.DER)
    if name == "tls_certificate_msg":
        entry = len(bad).to_bytes(3, "big") + bad
        bad = b"\x0b" + (len(entry) + 3).to_bytes(3, "big") + len(entry).to_bytes(3, "big") + entry
    fuzz_targets.TARGETS[name](bad)


def test_capture_with_an_invalid_version_certificate_is_analysed() -> None:
    """Given a captured server Certificate whose version is 4, Then the analysis marks it unparsable."""
    fe, rmx = ("10.0.0.2", 5061), ("10.0.0.1", 40000)
    events = [PacketEvent(0.0, *rmx, *fe, syn=True), PacketEvent(0.1, *fe, *rmx, syn=True, ack=True),
              PacketEvent(0.2, *rmx, *fe, ack=True, records=(TlsRecord(22, (1,)),)),
              PacketEvent(0.3, *fe, *rmx, ack=True, records=(TlsRecord(22, (2, 11, 14)),),
                          certificates=(_bad_version(fuzz_targets.DER),), certificate_lengths=(1,))]
    result, _ = analyse(events)
    assert "unparsable" in json.dumps(result.to_json() if hasattr(result, "to_json") else repr(result))


def test_certificate_with_an_invalid_version_is_one_input_error(tmp_path: Path) -> None:
    """Given such a certificate as a file, Then InputError naming the file (the CLI exits 3, no traceback)."""
    path = tmp_path / "v4.der"
    path.write_bytes(_bad_version(fuzz_targets.DER))
    with pytest.raises(InputError, match=str(path)):
        cert_load.load_certificate(path)


@pytest.mark.parametrize("fixture", ["certificate_msg_bitstring_name.bin", "certificate_msg_duplicate_extension.bin"])
def test_fuzz_found_inputs_stay_inside_their_boundaries(fixture: str, tmp_path: Path) -> None:
    """Given the inputs atheris found (a Name with a BIT STRING attribute: TypeError; a duplicated
    extension: DuplicateExtension; a P7B whose certificate has malformed extensions: ValueError on
    access), Then classified, never raised."""
    message = (FIXTURES / "reliability" / fixture).read_bytes()
    fuzz_targets.tls_certificate_msg(message)
    ders = [d for tls13 in (False, True) for d in _certificate_list_or_empty(message, tls13)]
    assert ders
    for index, der in enumerate(ders):
        path = tmp_path / f"c{index}.der"
        path.write_bytes(der)
        with pytest.raises(InputError, match=str(path)):
            cert_load.load_certificate(path)
    with pytest.raises(InputError, match="malformed"):
        cert_load.load_certificate(FIXTURES / "reliability" / "p7b_malformed_extension.der")
    for loader in (cert_load.load_certificate, cert_load.load_chain):  # a P7B holding a version-7 certificate
        with pytest.raises(InputError, match="p7b_invalid_version"):
            loader(FIXTURES / "reliability" / "p7b_invalid_version.der")


def _certificate_list_or_empty(message: bytes, tls13: bool) -> list[bytes]:
    from probes import tlswire
    try:
        return tlswire.certificate_list(message[4:], tls13)
    except ValueError:
        return []
