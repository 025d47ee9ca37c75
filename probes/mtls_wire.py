"""Parsers for the TLS handshake messages the MTLS probe records (pure functions on bytes).

The messages come from OpenSSL's message callback (decrypted, with their 4-byte header, also
for TLS 1.3), so the FE's Certificate and CertificateRequest are read even when verification
fails or the handshake is aborted, without a second, non-verifying handshake.
"""

from __future__ import annotations

from cryptography import x509

# --- handshake message parsers (RFC 5246 §7.4.2/§7.4.4, RFC 8446 §4.3.2/§4.4.2) -----------------

def _u(data: bytes, pos: int, size: int) -> tuple[int, int]:
    if pos + size > len(data):
        raise ValueError("truncated handshake message")
    return int.from_bytes(data[pos:pos + size], "big"), pos + size


def certificate_list(message: bytes, tls13: bool) -> list[bytes]:
    """DER certificates of a Certificate handshake message (with its 4-byte header)."""
    pos = 4
    if tls13:
        ctx_len, pos = _u(message, pos, 1)
        pos += ctx_len
    total, pos = _u(message, pos, 3)
    end = min(len(message), pos + total)
    certs = []
    while pos < end:
        size, pos = _u(message, pos, 3)
        certs.append(message[pos:pos + size])
        pos += size
        if tls13:
            ext_len, pos = _u(message, pos, 2)
            pos += ext_len
    return certs


def certificate_request_cas(message: bytes, tls13: bool) -> list[bytes]:
    """DER distinguished names of a CertificateRequest's CA list (with its 4-byte header)."""
    pos = 4
    if tls13:
        ctx_len, pos = _u(message, pos, 1)
        pos += ctx_len
        ext_total, pos = _u(message, pos, 2)
        end = pos + ext_total
        while pos < end:
            ext_type, pos = _u(message, pos, 2)
            ext_len, pos = _u(message, pos, 2)
            if ext_type == 47:  # certificate_authorities
                return _dn_list(message, pos)
            pos += ext_len
        return []
    types_len, pos = _u(message, pos, 1)
    pos += types_len
    sig_len, pos = _u(message, pos, 2)
    pos += sig_len
    return _dn_list(message, pos)


def _dn_list(data: bytes, pos: int) -> list[bytes]:
    total, pos = _u(data, pos, 2)
    end = pos + total
    names = []
    while pos < end:
        size, pos = _u(data, pos, 2)
        names.append(data[pos:pos + size])
        pos += size
    return names


# --- a minimal DER reader for X.501 Names (cryptography has no public Name-from-DER loader) -------

def _tlv(data: bytes, pos: int) -> tuple[int, bytes, int]:
    tag = data[pos]
    length, pos = data[pos + 1], pos + 2
    if length & 0x80:
        count = length & 0x7F
        length, pos = int.from_bytes(data[pos:pos + count], "big"), pos + count
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, data[pos:pos + length], pos + length


def _oid(body: bytes) -> str:
    parts = [body[0] // 40, body[0] % 40]
    value = 0
    for byte in body[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(str(p) for p in parts)


def name_from_der(der: bytes) -> x509.Name:
    """Decode a DER X.501 Name (as sent in a CertificateRequest) into a cryptography Name."""
    tag, body, _ = _tlv(der, 0)
    if tag != 0x30:
        raise ValueError("a Name is a SEQUENCE")
    rdns = []
    pos = 0
    while pos < len(body):
        _, rdn_body, pos = _tlv(body, pos)
        attrs = []
        apos = 0
        while apos < len(rdn_body):
            _, atv, apos = _tlv(rdn_body, apos)
            _, oid_body, vpos = _tlv(atv, 0)
            vtag, value, _ = _tlv(atv, vpos)
            text = value.decode("utf-16-be" if vtag == 30 else "utf-8", "replace")
            attrs.append(x509.NameAttribute(x509.ObjectIdentifier(_oid(oid_body)), text))
        rdns.append(x509.RelativeDistinguishedName(attrs))
    return x509.Name(rdns)
