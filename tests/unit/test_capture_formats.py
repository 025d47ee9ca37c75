"""Capture formats and the prefilter decision, and handshake reassembly across TLS records (pure logic)."""

from __future__ import annotations

import gzip
from pathlib import Path

from probes.capture.events import TlsRecord
from probes.capture.formats import Kind, is_capture_head, kind_of, pcapng_layout, plan
from probes.capture.layers import Directions, records_from_payload

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "capture"


def test_kinds_from_magic() -> None:
    # Given the first bytes of the formats administrators send, Then each is named
    assert kind_of(bytes.fromhex("d4c3b2a1")) is Kind.PCAP and kind_of(bytes.fromhex("0a0d0d0a")) is Kind.PCAPNG
    assert kind_of(b"GMBU\x00\x02") is Kind.NETMON and kind_of(b"RTSS") is Kind.NETMON
    assert kind_of(b"\x1f\x8b\x08") is Kind.GZIP and kind_of(b"snoop\x00\x00\x00") is Kind.SNOOP
    assert kind_of(b"Date,Source\n") is Kind.OTHER
    # and gzip counts as a capture only around one
    assert is_capture_head(b"\x1f\x8b", bytes.fromhex("0a0d0d0a")) and not is_capture_head(b"\x1f\x8b", b"log line")


def test_pcapng_layout_of_a_dumpcap_file_compressed_and_cut(tmp_path: Path) -> None:
    # Given a pcapng dumpcap wrote, the same gzip-compressed, and a copy cut in the middle of a block
    source = FIXTURES / "healthy12.pcapng"
    packed = tmp_path / "healthy12.pcapng.gz"
    packed.write_bytes(gzip.compress(source.read_bytes()))
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(source.read_bytes()[:-10])
    # Then one section, one Ethernet interface, no secrets; the cut copy says it is incomplete
    whole = pcapng_layout(source)
    assert (whole.sections, whole.link_types, whole.secrets, whole.complete) == (1, (1,), 0, True)
    assert pcapng_layout(packed) == whole
    assert pcapng_layout(cut).complete is False and pcapng_layout(cut).link_types == (1,)
    # And the compressed one is read by tshark directly, whatever tcpdump could do
    assert plan(packed, 5061, None) == plan(packed, 5061, "/nonexistent/tcpdump")
    assert plan(packed, 5061, None).reason == "compressed capture"


def _record(ctype: int, body: bytes) -> tuple[int, bytes]:
    return ctype, body


def test_handshake_message_over_three_records_shows_once_with_the_last() -> None:
    # Given a 40 000-byte CertificateRequest cut into three records, then a ServerHelloDone, then CCS
    message = b"\x0d" + (40000).to_bytes(3, "big") + bytes(range(256)) * 156 + b"\x00" * 64
    parts = [message[:16384], message[16384:32768], message[32768:] + b"\x0e\x00\x00\x00"]
    state = Directions().state(("10.0.0.1", 5061, "10.0.0.2", 40000))
    shown = [records_from_payload(state, [_record(22, part)]) for part in parts]
    # Then the first two records show nothing, the last one both messages, complete
    assert [s[0] for s in shown[:2]] == [[], []]
    records, messages = shown[2]
    assert records == [TlsRecord(22, (13, 14))]
    assert messages == [(13, message[4:]), (14, b"")]
    # And after a ChangeCipherSpec a handshake record is encrypted, never reassembled
    finished = b"\x14\x00\x00\x0c" + b"x" * 12
    records, messages = records_from_payload(state, [_record(20, b"\x01"), _record(22, finished)])
    assert records == [TlsRecord(20), TlsRecord(22)] and messages == []
