"""TLS records and handshake messages cut out of the TCP payloads of a capture.

tshark 4.0 leaves ``tls.handshake.dname`` empty in fields/JSON output (measured with tshark
4.0.17), so the hellos, certificate lists and CA names are read from the raw TCP bytes: these
functions find the complete TLS records in a segment (which may start with the tail of an
earlier record) and the plaintext handshake messages in them; :mod:`probes.tlswire` parses the
messages. TLS <= 1.2 handshake records are plaintext, which is where these are visible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

_RECORD_TYPES = (20, 21, 22, 23)  # ChangeCipherSpec, Alert, Handshake, ApplicationData
Unit = tuple[int, bytes]  # (content or handshake type, body)


def _is_record(data: bytes, pos: int) -> bool:
    return data[pos] in _RECORD_TYPES and data[pos + 1] == 3 and data[pos + 2] <= 4


# (header size, offset of the body length that ends the header)
_RECORD = (5, 3)  # type, version (2), length (2)
_HANDSHAKE = (4, 1)  # type, length (3)


def _units(data: bytes, pos: int, layout: tuple[int, int], is_unit: Callable[[bytes, int], bool] | None = None
           ) -> tuple[list[Unit], int]:
    """Complete (type, body) units from ``pos``: TLS records or handshake messages (``layout``);
    stops at the first partial or invalid one and returns where it stopped."""
    header, length_at = layout
    units: list[Unit] = []
    while pos + header <= len(data) and (is_unit is None or is_unit(data, pos)):
        end = pos + header + int.from_bytes(data[pos + length_at:pos + header], "big")
        if end > len(data):
            break
        units.append((data[pos], data[pos + header:end]))
        pos = end
    return units, pos


def _record_starts(data: bytes) -> Iterator[int]:
    """Where a TLS record may start: a content type, then major version 3."""
    return (i for i in range(len(data)) if data[i] in _RECORD_TYPES and data[i + 1:i + 2] == b"\x03")


def segment_records(data: bytes) -> list[Unit]:
    """The complete TLS records of a TCP payload, which may start with the tail of an earlier record."""
    for start in _record_starts(data):
        records, stop = _units(data, start, _RECORD, _is_record)
        if records and stop == len(data):
            return records
    return []


def split_messages(stream: bytes) -> tuple[list[Unit], bytes]:
    """Complete handshake messages at the start of a handshake byte stream, and the incomplete rest."""
    messages, stop = _units(stream, 0, _HANDSHAKE)
    return messages, stream[stop:]


def segment_records_prefix(data: bytes) -> list[Unit]:
    """Complete TLS records of a TCP payload, tolerating a record tail before and a partial record after.

    tshark dissects the complete records of a segment and keeps a trailing partial record for
    reassembly in a later frame; this mirrors that on the raw bytes.
    """
    exact = segment_records(data)
    if exact:
        return exact
    for start in _record_starts(data):
        records = _units(data, start, _RECORD, _is_record)[0]
        if records:
            return records
    return []

