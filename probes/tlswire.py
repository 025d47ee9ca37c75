"""The TLS wire formats both the mtls probe and the capture probe read (pure functions on bytes).

One parser for each thing either probe sees on the wire: alert and version names, the
ClientHello/ServerHello extensions (SNI, supported_versions), the Certificate message's DER list,
the CertificateRequest's CA list (TLS 1.2 field or TLS 1.3 ``certificate_authorities``) and the
DER ``Name`` of those CAs. The mtls probe feeds them the messages OpenSSL's message callback
records (decrypted, also for TLS 1.3, even when the handshake is aborted); the capture probe the
plaintext messages it cuts out of TCP payloads (:mod:`probes.capture.records`). Message
functions take the handshake message *body* (after the 4-byte type + length header) and raise
ValueError for anything malformed, so neither caller mistakes garbage for a fact.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# TLS alert descriptions (RFC 5246 §7.2, RFC 8446 §6.2): the one table of alert names.
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

# Handshake message types (RFC 5246 §7.4, RFC 8446 §4): the one table of their names.
HANDSHAKE_NAMES: dict[int, str] = {
    0: "HelloRequest", 1: "ClientHello", 2: "ServerHello", 4: "NewSessionTicket", 8: "EncryptedExtensions",
    11: "Certificate", 12: "ServerKeyExchange", 13: "CertificateRequest", 14: "ServerHelloDone",
    15: "CertificateVerify", 16: "ClientKeyExchange", 20: "Finished",
}
_CERTIFICATE_AUTHORITIES = 47  # TLS 1.3 extension carrying the CertificateRequest CA list

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


class Sender(enum.StrEnum):
    """Who sent a TLS alert: the Front End (the TLS server) or the RMX (the TLS client, or the probe)."""

    FE = "from_fe"
    RMX = "from_rmx"


@dataclass(frozen=True)
class Alert:
    """A fatal TLS alert as the diagnosis acts on it: its number and who sent it."""

    number: int
    sender: Sender

    @property
    def name(self) -> str:
        """The RFC name (``alert_<n>`` when unknown)."""
        return alert_name(self.number)

    def evidence(self) -> dict[str, object]:
        """The report's evidence keys for this alert (``alert``, ``alert_name``, ``direction``)."""
        return {"alert": self.number, "alert_name": self.name, "direction": str(self.sender)}


# The ONE table from a fatal alert to the hint code it points at, for every probe (the mtls
# probe's outcome and the capture's alerts alike). Sent by the Front End, an alert judges the
# RMX's offer or certificate; sent by the RMX, it judges the Front End's certificate or offer.
_CLIENT_CERT_REFUSED = (42, 43, 44, 45, 46, 49, 51, 116)  # bad/unsupported/revoked/expired/unknown,
# access_denied, decrypt_error (the CertificateVerify made with the RMX key did not verify), certificate_required
_FROM_FE: dict[int, str] = {**dict.fromkeys(_CLIENT_CERT_REFUSED, "CLIENT_CERT_REJECTED"),
                            48: "CLIENT_CERT_UNKNOWN_CA", 70: "TLS_VERSION_MISMATCH"}
_FROM_RMX: dict[int, str] = {**dict.fromkeys((42, 43, 44, 46, 48), "REGISTRAR_CERT_UNTRUSTED"),
                             45: "REGISTRAR_CERT_EXPIRED", 70: "TLS_VERSION_MISMATCH"}
# Alerts that end a connection without judging the handshake (an orderly or user close).
_NOT_A_VERDICT = frozenset({0, 90, 100})


def alert_hint(alert: Alert, *, after_client_cert: bool = False) -> str | None:
    """The hint code a fatal ``alert`` points at; None for a number this table does not know.

    ``after_client_cert``: the alert came after the RMX's Certificate flight, where the Front
    End's generic handshake_failure (40) is its refusal of that certificate (OpenSSL and Schannel
    in TLS 1.2). Every other named alert means the handshake itself failed.
    """
    if alert.sender is Sender.FE and alert.number == 40 and after_client_cert:
        return "CLIENT_CERT_REJECTED"
    table = _FROM_FE if alert.sender is Sender.FE else _FROM_RMX
    if alert.number in table:
        return table[alert.number]
    if alert.number in ALERTS and alert.number not in _NOT_A_VERDICT:
        return "TLS_HANDSHAKE_FAILURE"
    return None


# --- handshake message bodies (RFC 5246 §7.4.2/§7.4.4, RFC 8446 §4.3.2/§4.4.2) ----------------

def _u(data: bytes, pos: int, size: int, end: int | None = None) -> tuple[int, int]:
    """The big-endian ``size``-byte integer at ``pos`` and the position after it; ValueError past ``end``."""
    if pos + size > (len(data) if end is None else end):
        raise ValueError("truncated handshake message")
    return int.from_bytes(data[pos:pos + size], "big"), pos + size


def _vector(data: bytes, pos: int, size: int, end: int) -> tuple[int, int]:
    """(start, end) of the vector with a ``size``-byte length at ``pos``; ValueError if it overruns ``end``."""
    length, start = _u(data, pos, size, end)
    if start + length > end:
        raise ValueError("truncated handshake message")
    return start, start + length


def certificate_list(body: bytes, tls13: bool = False) -> list[bytes]:
    """DER certificates of a Certificate message body, leaf first (empty list: no certificate)."""
    pos = _vector(body, 0, 1, len(body))[1] if tls13 else 0  # TLS 1.3: certificate_request_context
    pos, end = _vector(body, pos, 3, len(body))
    certs = []
    while pos < end:
        start, pos = _vector(body, pos, 3, end)
        certs.append(body[start:pos])
        if tls13:
            pos = _vector(body, pos, 2, end)[1]  # per-certificate extensions
    return certs


def certificate_request_cas(body: bytes, tls13: bool = False) -> list[bytes]:
    """DER distinguished names of a CertificateRequest body's CA list (empty: none listed)."""
    if not tls13:
        pos = _vector(body, 0, 1, len(body))[1]  # certificate_types
        sig_start, pos = _vector(body, pos, 2, len(body))  # signature_algorithms
        if (pos - sig_start) % 2:
            raise ValueError("odd signature_algorithms length")
        start, end = _vector(body, pos, 2, len(body))
        if end != len(body):
            raise ValueError("bytes after the CA list")
        return _dn_list(body, start, end)
    pos = _vector(body, 0, 1, len(body))[1]  # certificate_request_context
    pos, end = _vector(body, pos, 2, len(body))
    while pos < end:
        ext_type, pos = _u(body, pos, 2, end)
        start, pos = _vector(body, pos, 2, end)
        if ext_type == _CERTIFICATE_AUTHORITIES:
            names_start, names_end = _vector(body, start, 2, pos)
            if names_end != pos:
                raise ValueError("bytes after the CA list")
            return _dn_list(body, names_start, names_end)
    return []


def _dn_list(data: bytes, pos: int, end: int) -> list[bytes]:
    """The DER Names of a DistinguishedName vector filling ``data[pos:end]`` exactly."""
    names = []
    while pos < end:
        start, pos = _vector(data, pos, 2, end)
        name = data[start:pos]
        tag, _, name_end = _der(name, 0)
        if tag != 0x30 or name_end != len(name):
            raise ValueError("a CA name is not a DER SEQUENCE")
        names.append(name)
    return names


def hello_body_facts(body: bytes, client: bool) -> dict[str, object]:
    """SNI and supported_versions of a ClientHello (``client``) or ServerHello message body."""
    try:
        return _hello(body, client)
    except (IndexError, ValueError):
        return {}


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


# --- DER Names (X.501) --------------------------------------------------------------------------

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


def der_element(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at ``pos``; ValueError if malformed."""
    return _der(data, pos)


def der_oid(body: bytes) -> str:
    """The dotted form of a DER OBJECT IDENTIFIER's content bytes; ValueError when empty."""
    return _oid(body)
