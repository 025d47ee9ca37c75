"""Parsers for the TLS handshake messages the MTLS probe records (pure functions on bytes).

The messages come from OpenSSL's message callback (decrypted, with their 4-byte header, also
for TLS 1.3), so the FE's Certificate and CertificateRequest are read even when verification
fails or the handshake is aborted, without a second, non-verifying handshake.
"""

from __future__ import annotations

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
