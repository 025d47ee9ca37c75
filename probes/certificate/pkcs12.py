"""The one rule about how a PFX must be protected for the RMX to import it, and the encryption that
follows it.

RMX firmware opens only the older PKCS#12 form: PBES1 encryption (3DES, or RC2 for the
certificates, as Windows and OpenSSL 1.x wrote them) and a SHA-1 MAC. The defaults of OpenSSL 3
and of newer Windows exports (PBES2 with AES, a SHA-256 MAC) are refused, and the import reports
it as a wrong password. ``rmxdiag cert pfx`` writes with :func:`rmx_encryption`;
``rmxdiag cert``/``preflight`` judge a PFX with :func:`protection` and :func:`refused`. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

# Content bytes of the DER OIDs that matter (RFC 7292 Appendix C, RFC 8018 Appendix A.4, NIST).
_PBES1 = {
    bytes.fromhex("2a864886f70d010c0103"): "pbeWithSHAAnd3-KeyTripleDES-CBC",
    bytes.fromhex("2a864886f70d010c0104"): "pbeWithSHAAnd2-KeyTripleDES-CBC",
    bytes.fromhex("2a864886f70d010c0105"): "pbeWithSHAAnd128BitRC2-CBC",
    bytes.fromhex("2a864886f70d010c0106"): "pbeWithSHAAnd40BitRC2-CBC",
}
_PBES2 = bytes.fromhex("2a864886f70d01050d")
_CIPHERS = {
    bytes.fromhex("608648016503040102"): "AES-128-CBC",
    bytes.fromhex("608648016503040116"): "AES-192-CBC",
    bytes.fromhex("60864801650304012a"): "AES-256-CBC",
    bytes.fromhex("2a864886f70d0307"): "DES-EDE3-CBC",
}
_DIGESTS = {
    bytes.fromhex("2b0e03021a"): "SHA-1",
    bytes.fromhex("608648016503040201"): "SHA-256",
    bytes.fromhex("608648016503040202"): "SHA-384",
    bytes.fromhex("608648016503040203"): "SHA-512",
}
_MAX_DEPTH = 12  # PFX -> ContentInfo -> OCTET STRING -> AuthenticatedSafe -> ... -> AlgorithmIdentifier


@dataclass(frozen=True)
class Protection:
    """How a PFX is protected: the encryption schemes of its bags and the MAC digest (None: no MAC)."""

    schemes: tuple[str, ...]
    mac: str | None

    def describe(self) -> str:
        """E.g. 'PBES2/AES-256-CBC, MAC SHA-256'."""
        return ", ".join(self.schemes or ("no encryption",)) + (f", MAC {self.mac}" if self.mac else ", no MAC")


def _tlvs(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(tag, content start, content end) of each DER element in data[start:end]; ValueError when malformed."""
    pos = start
    while pos < end:
        if pos + 2 > end:
            raise ValueError("truncated DER")
        tag, length = data[pos], data[pos + 1]
        pos += 2
        if length & 0x80:
            size = length & 0x7F
            if size == 0 or size > 4 or pos + size > end:
                raise ValueError("bad DER length")
            length = int.from_bytes(data[pos:pos + size], "big")
            pos += size
        if pos + length > end:
            raise ValueError("DER element overruns its parent")
        yield tag, pos, pos + length
        pos += length


def _oids(data: bytes, start: int, end: int, depth: int, out: list[bytes]) -> None:
    """Every OID in the readable (not encrypted) structure; OCTET STRINGs holding DER are entered."""
    if depth > _MAX_DEPTH:
        return
    for tag, a, b in _tlvs(data, start, end):
        if tag == 0x06:
            out.append(data[a:b])
        elif tag & 0x20:  # constructed: SEQUENCE, SET, [n] explicit
            _oids(data, a, b, depth + 1, out)
        elif tag == 0x04 and b > a and data[a] in (0x30, 0x31):
            inner: list[bytes] = []
            try:  # an authSafe or SafeContents is DER inside an OCTET STRING; other octets are data
                _oids(data, a, b, depth + 1, inner)
            except ValueError:
                continue
            out.extend(inner)


def protection(data: bytes) -> Protection | None:
    """How the DER PKCS#12 ``data`` is protected (None: not a PKCS#12 this parser can read)."""
    try:
        top = list(_tlvs(data, 0, len(data)))
        if len(top) != 1 or top[0][0] != 0x30:
            return None
        parts = list(_tlvs(data, top[0][1], top[0][2]))  # version, authSafe, macData?
        if len(parts) < 2 or parts[0][0] != 0x02:
            return None
        found: list[bytes] = []
        _oids(data, parts[1][1], parts[1][2], 0, found)
        mac = None
        if len(parts) > 2:  # MacData ::= SEQUENCE { DigestInfo ::= SEQUENCE { AlgorithmIdentifier, digest }, ...}
            digest_info = next(_tlvs(data, parts[2][1], parts[2][2]))
            algorithm = next(_tlvs(data, digest_info[1], digest_info[2]))
            oid = next(_tlvs(data, algorithm[1], algorithm[2]))
            mac = _DIGESTS.get(data[oid[1]:oid[2]], "unknown")
    except (ValueError, StopIteration):
        return None
    schemes = [_PBES1[o] for o in found if o in _PBES1]
    if _PBES2 in found:
        cipher = next((_CIPHERS[o] for o in found if o in _CIPHERS), "unknown cipher")
        schemes.append(f"PBES2/{cipher}")
    return Protection(tuple(dict.fromkeys(schemes)), mac)


def refused(p: Protection) -> str | None:
    """Why the RMX import refuses a PFX protected like ``p`` (None: it opens it)."""
    modern = [s for s in p.schemes if s.startswith("PBES2")]
    if modern:
        return f"{', '.join(modern)} encryption (the RMX opens only 3DES/RC2 PBES1)"
    if p.mac not in (None, "SHA-1"):
        return f"a {p.mac} MAC (the RMX checks only a SHA-1 MAC)"
    return None


def rmx_encryption(password: bytes) -> serialization.KeySerializationEncryption:
    """The PKCS#12 encryption the RMX imports: PBES1 3DES for key and certificates, SHA-1 MAC."""
    return (serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(50000)
            .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC).hmac_hash(hashes.SHA1())  # noqa: S303 -- the rule above
            .build(password))
