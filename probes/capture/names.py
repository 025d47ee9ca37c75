"""Small pure decoders for capture analysis: TLS names, a CertificateRequest scan, DER names.

tshark 4.0 leaves ``tls.handshake.dname`` empty in fields/JSON output (measured with tshark 4.0.17), so
the CA names of a CertificateRequest are read from the raw TCP bytes here, like the hellos and the
certificate lists. TLS <= 1.2 handshake records are plaintext, which is where these are visible.
"""

from __future__ import annotations

ALERTS: dict[int, str] = {
    0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 21: "decryption_failed",
    22: "record_overflow", 30: "decompression_failure", 40: "handshake_failure", 41: "no_certificate",
    42: "bad_certificate", 43: "unsupported_certificate", 44: "certificate_revoked",
    45: "certificate_expired", 46: "certificate_unknown", 47: "illegal_parameter", 48: "unknown_ca",
    49: "access_denied", 50: "decode_error", 51: "decrypt_error", 60: "export_restriction",
    70: "protocol_version", 71: "insufficient_security", 80: "internal_error",
    86: "inappropriate_fallback", 90: "user_canceled", 100: "no_renegotiation", 109: "missing_extension",
    110: "unsupported_extension", 112: "unrecognized_name", 113: "bad_certificate_status_response",
    115: "unknown_psk_identity", 116: "certificate_required", 120: "no_application_protocol",
}

VERSIONS: dict[int, str] = {0x0300: "SSLv3", 0x0301: "TLSv1.0", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2",
                            0x0304: "TLSv1.3"}

# RFC 4514 short names for the attribute types an enterprise CA uses; others print as dotted OIDs.
_OID_NAMES = {"2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O",
              "2.5.4.11": "OU", "2.5.4.9": "STREET", "0.9.2342.19200300.100.1.25": "DC",
              "0.9.2342.19200300.100.1.1": "UID", "1.2.840.113549.1.9.1": "emailAddress",
              "2.5.4.5": "serialNumber"}


def version_name(value: int | None) -> str | None:
    """``0x0303`` -> ``TLSv1.2``; unknown values as hex; None stays None."""
    if value is None:
        return None
    return VERSIONS.get(value, f"0x{value:04x}")


def alert_name(desc: int | None) -> str:
    """The RFC name of a TLS alert description (``alert_<n>`` when unknown)."""
    if desc is None:
        return "encrypted"
    return ALERTS.get(desc, f"alert_{desc}")


def _der(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at ``pos``; ValueError if malformed."""
    if pos + 2 > len(data):
        raise ValueError("short DER")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("DER overruns")
    return tag, pos, pos + length


def _oid(body: bytes) -> str:
    if not body:
        raise ValueError("empty OID")
    parts = [min(body[0] // 40, 2), body[0] - 40 * min(body[0] // 40, 2)]
    value = 0
    for byte in body[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(str(p) for p in parts)


def _string(tag: int, body: bytes) -> str:
    if tag == 0x1E:  # BMPString
        return body.decode("utf-16-be", "replace")
    if tag in (0x14, 0x1A, 0x13, 0x16):  # T61 (latin-1 in practice), Visible, Printable, IA5
        return body.decode("latin-1")
    if tag == 0x0C:  # UTF8String
        return body.decode("utf-8", "replace")
    return "#" + body.hex()


def _escape(value: str) -> str:
    out = value.replace("\\", "\\\\")
    for ch in ',+"<>;=':
        out = out.replace(ch, "\\" + ch)
    if out.startswith(("#", " ")):
        out = "\\" + out
    if out.endswith(" "):
        out = out[:-1] + "\\ "
    return out


def dn_to_rfc4514(der: bytes) -> str:
    """An RFC 4514 string of a DER ``Name`` (most specific RDN first, like cryptography prints it)."""
    tag, start, end = _der(der, 0)
    if tag != 0x30 or end != len(der):
        raise ValueError("not a DER Name")
    rdns: list[str] = []
    pos = start
    while pos < end:
        set_tag, set_start, set_end = _der(der, pos)
        if set_tag != 0x31:
            raise ValueError("RDN is not a SET")
        atvs: list[str] = []
        inner = set_start
        while inner < set_end:
            seq_tag, seq_start, seq_end = _der(der, inner)
            oid_tag, oid_start, oid_end = _der(der, seq_start)
            val_tag, val_start, val_end = _der(der, oid_end)
            if seq_tag != 0x30 or oid_tag != 0x06 or val_end != seq_end:
                raise ValueError("bad AttributeTypeAndValue")
            oid = _oid(der[oid_start:oid_end])
            atvs.append(f"{_OID_NAMES.get(oid, oid)}={_escape(_string(val_tag, der[val_start:val_end]))}")
            inner = seq_end
        rdns.append("+".join(atvs))
        pos = set_end
    return ",".join(reversed(rdns))


def _names(data: bytes, start: int, end: int) -> list[bytes] | None:
    names: list[bytes] = []
    pos = start
    while pos < end:
        if pos + 2 > end:
            return None
        size = int.from_bytes(data[pos:pos + 2], "big")
        pos += 2
        if pos + size > end or size < 2:
            return None
        blob = data[pos:pos + size]
        try:
            tag, _, blob_end = _der(blob, 0)
        except ValueError:
            return None
        if tag != 0x30 or blob_end != size:
            return None
        names.append(blob)
        pos += size
    return names


def _parse_request(data: bytes, pos: int) -> list[bytes] | None:
    if pos + 4 > len(data):
        return None
    length = int.from_bytes(data[pos + 1:pos + 4], "big")
    body, end = pos + 4, pos + 4 + length
    if end > len(data) or length < 5:
        return None
    types = data[body]
    cursor = body + 1 + types
    if cursor + 2 > end:
        return None
    sig_len = int.from_bytes(data[cursor:cursor + 2], "big")
    cursor += 2 + sig_len
    if sig_len % 2 or cursor + 2 > end:
        return None
    dn_len = int.from_bytes(data[cursor:cursor + 2], "big")
    cursor += 2
    if cursor + dn_len != end:
        return None
    return _names(data, cursor, end)


def hello_body_facts(body: bytes, client: bool) -> dict[str, object]:
    """SNI and supported_versions of a ClientHello (``client``) or ServerHello message body."""
    try:
        return _hello(body, client)
    except (IndexError, ValueError):
        return {}


def request_body_names(body: bytes) -> list[bytes] | None:
    """The DER CA names of a TLS 1.2 CertificateRequest message body, None when malformed."""
    return _parse_request(b"\x0d" + len(body).to_bytes(3, "big") + body, 0)


def _hello(msg: bytes, client: bool) -> dict[str, object]:
    facts: dict[str, object] = {"legacy": int.from_bytes(msg[0:2], "big")}
    pos = 2 + 32
    pos += 1 + msg[pos]  # session id
    if client:
        pos += 2 + int.from_bytes(msg[pos:pos + 2], "big")  # cipher suites
        pos += 1 + msg[pos]  # compression methods
    else:
        facts["cipher"] = int.from_bytes(msg[pos:pos + 2], "big")
        pos += 2 + 1  # chosen cipher suite and compression method
    if pos + 2 > len(msg):
        return facts
    end = pos + 2 + int.from_bytes(msg[pos:pos + 2], "big")
    pos += 2
    while pos + 4 <= min(end, len(msg)):
        ext, size = int.from_bytes(msg[pos:pos + 2], "big"), int.from_bytes(msg[pos + 2:pos + 4], "big")
        value = msg[pos + 4:pos + 4 + size]
        if ext == 0 and client and len(value) > 5 and value[2] == 0:
            name_len = int.from_bytes(value[3:5], "big")
            facts["sni"] = value[5:5 + name_len].decode("ascii", "replace")
        elif ext == 43:
            raw = value[1:1 + value[0]] if client else value[:2]
            facts["versions"] = [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw) - 1, 2)]
        pos += 4 + size
    return facts


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


def certificate_list(body: bytes) -> list[bytes]:
    """The DER certificates of a TLS <= 1.2 Certificate message body (empty list when none)."""
    total = int.from_bytes(body[:3], "big")
    certs, pos, end = [], 3, min(3 + total, len(body))
    while pos + 3 <= end:
        size = int.from_bytes(body[pos:pos + 3], "big")
        if pos + 3 + size > end:
            break
        certs.append(body[pos + 3:pos + 3 + size])
        pos += 3 + size
    return certs


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
