"""Certificates cryptography refuses to parse, read just far enough to say why the RMX cannot use them.

cryptography refuses some real certificates outright: a DSA key whose parameters are inherited
from the issuer, a NULL where an ECDSA or DSA signature algorithm takes no parameters (measured
with cryptography 50 on the PKITS and cryptography test vectors). Their outer DER still names the
signature and key algorithms, subject and issuer; when those algorithms are ones the RMX cannot
use anyway, that is the finding to report, not "corrupt file".
"""

from __future__ import annotations

from dataclasses import dataclass

from probes.tlswire import der_element, der_oid, dn_to_rfc4514

RSA_KEY = "1.2.840.113549.1.1.1"
RSASSA_PSS = "1.2.840.113549.1.1.10"
# Signature and key algorithms by OID prefix: what an admin reads in the finding.
_NAMES = (("1.2.840.113549.1.1.10", "RSASSA-PSS"), ("1.2.840.113549.1.1.", "RSA"), ("1.2.840.10040.4.", "DSA"),
          ("2.16.840.1.101.3.4.3.", "DSA"), ("1.2.840.10045.", "ECDSA"), ("1.3.101.112", "Ed25519"),
          ("1.3.101.113", "Ed448"), ("1.2.643.", "GOST"), ("1.2.156.10197.", "SM2"))


def algorithm_name(oid: str) -> str:
    """A short family name of a signature or key algorithm OID (the OID itself when unknown)."""
    return next((name for prefix, name in _NAMES if oid == prefix or oid.startswith(prefix)), oid)


@dataclass(frozen=True)
class RawCertificate:
    """The names and algorithms of a certificate that cryptography would not parse."""

    subject: str
    issuer: str
    signature_oid: str
    key_oid: str

    @property
    def unusable(self) -> bool:
        """True when its key or signature is not RSA (PKCS#1 or PSS): no RMX firmware uses those."""
        return self.key_oid != RSA_KEY or algorithm_name(self.signature_oid) not in ("RSA", "RSASSA-PSS")


Element = tuple[int, int, int, int]  # tag, element start, content start, end


def _children(data: bytes, start: int, end: int) -> list[Element]:
    out = []
    while start < end:
        tag, body, stop = der_element(data, start)
        out.append((tag, start, body, stop))
        start = stop
    return out


def _algorithm(data: bytes, element: Element) -> str:
    tag, _, body, stop = element
    inner = _children(data, body, stop)
    if tag != 0x30 or not inner or inner[0][0] != 0x06:
        raise ValueError("not an AlgorithmIdentifier")
    return der_oid(data[inner[0][2]:inner[0][3]])


def read(der: bytes) -> RawCertificate | None:
    """The names and algorithms of a DER X.509 certificate (None when it is not one)."""
    try:
        tag, body, end = der_element(der, 0)
        if tag != 0x30 or end != len(der):
            return None
        outer = _children(der, body, end)
        if len(outer) != 3 or outer[0][0] != 0x30 or outer[2][0] != 0x03:
            return None
        tbs = _children(der, outer[0][2], outer[0][3])
        if tbs and tbs[0][0] == 0xA0:  # explicit version
            tbs = tbs[1:]
        if len(tbs) < 6 or tbs[0][0] != 0x02:
            return None
        issuer, subject, spki = tbs[2], tbs[4], tbs[5]
        key = _algorithm(der, _children(der, spki[2], spki[3])[0])
        return RawCertificate(dn_to_rfc4514(der[subject[1]:subject[3]]), dn_to_rfc4514(der[issuer[1]:issuer[3]]),
                              _algorithm(der, outer[1]), key)
    except (ValueError, IndexError):
        return None
