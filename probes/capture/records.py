"""TLS records and handshake messages cut out of the TCP payloads of a capture.

tshark 4.0 leaves ``tls.handshake.dname`` empty in fields/JSON output (measured with tshark
4.0.17), so the hellos, certificate lists and CA names are read from the raw TCP bytes: these
functions find the complete TLS records in a segment (which may start with the tail of an
earlier record) and the plaintext handshake messages in them; :mod:`probes.tlswire` parses the
messages. TLS <= 1.2 handshake records are plaintext, which is where these are visible.
"""

from __future__ import annotations


def _walk_records(data: bytes, start: int) -> list[tuple[int, bytes]] | None:
    """Complete TLS records from ``start`` to the exact end of ``data``, else None."""
    records, pos = [], start
    while pos < len(data):
        if pos + 5 > len(data) or data[pos] not in (20, 21, 22, 23) or data[pos + 1] != 3 or data[pos + 2] > 4:
            return None
        end = pos + 5 + int.from_bytes(data[pos + 3:pos + 5], "big")
        if end > len(data):
            return None
        records.append((data[pos], data[pos + 5:end]))
        pos = end
    return records


def segment_records(data: bytes) -> list[tuple[int, bytes]]:
    """The complete TLS records of a TCP payload, which may start with the tail of an earlier record."""
    for start in range(len(data)):
        if data[start] in (20, 21, 22, 23) and data[start + 1:start + 2] == b"\x03":
            found = _walk_records(data, start)
            if found:
                return found
    return []


def handshake_messages(records: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """Plaintext handshake messages (type, body) of the records, up to a ChangeCipherSpec."""
    stream = b""
    for content_type, body in records:
        if content_type == 20:
            break  # what follows is encrypted
        if content_type == 22:
            stream += body
    messages, pos = [], 0
    while pos + 4 <= len(stream):
        end = pos + 4 + int.from_bytes(stream[pos + 1:pos + 4], "big")
        if end > len(stream):
            break
        messages.append((stream[pos], stream[pos + 4:end]))
        pos = end
    return messages


def segment_records_prefix(data: bytes) -> list[tuple[int, bytes]]:
    """Complete TLS records of a TCP payload, tolerating a record tail before and a partial record after.

    tshark dissects the complete records of a segment and keeps a trailing partial record for
    reassembly in a later frame; this mirrors that on the raw bytes.
    """
    exact = segment_records(data)
    if exact:
        return exact
    for start in range(len(data)):
        if data[start] in (20, 21, 22, 23) and data[start + 1:start + 2] == b"\x03" \
                and data[start + 2:start + 3] in (b"\x00", b"\x01", b"\x02", b"\x03", b"\x04"):
            records, pos = [], start
            while pos + 5 <= len(data) and data[pos] in (20, 21, 22, 23) and data[pos + 1] == 3:
                end = pos + 5 + int.from_bytes(data[pos + 3:pos + 5], "big")
                if end > len(data):
                    break
                records.append((data[pos], data[pos + 5:end]))
                pos = end
            if records:
                return records
    return []


def exact_messages(body: bytes) -> list[tuple[int, bytes]] | None:
    """Handshake messages exactly filling a record body, None when it does not parse (encrypted)."""
    messages, pos = [], 0
    while pos < len(body):
        if pos + 4 > len(body):
            return None
        end = pos + 4 + int.from_bytes(body[pos + 1:pos + 4], "big")
        if end > len(body):
            return None
        messages.append((body[pos], body[pos + 4:end]))
        pos = end
    return messages if messages else None
