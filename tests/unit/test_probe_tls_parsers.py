"""Handshake message parsers of the mtls probe: Certificate, CertificateRequest, DER names."""

from __future__ import annotations

import pytest
from cryptography import x509

from daemon.lab import pki
from probes import tlswire as mtls_wire
from probes.capture.names import dn_to_rfc4514
from probes.mtls import tls as mtls_tls


def _u(n: int, size: int) -> bytes:
    return n.to_bytes(size, "big")


def _names() -> list[x509.Name]:
    return [pki.name("Root CA", O="Example Corp"),
            x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Ünïcode CA")])]


def test_tls12_certificate_request_ca_list() -> None:
    """Given a TLS 1.2 CertificateRequest (types, sigalgs, CA list), When parsed, Then the DER names in order."""
    ders = [n.public_bytes() for n in _names()]
    cas = b"".join(_u(len(d), 2) + d for d in ders)
    body = b"\x02\x01\x40" + _u(4, 2) + b"\x04\x01\x08\x04" + _u(len(cas), 2) + cas
    message = b"\x0d" + _u(len(body), 3) + body
    assert mtls_wire.certificate_request_cas(message, tls13=False) == ders
    assert [dn_to_rfc4514(d) for d in ders] == [n.rfc4514_string() for n in _names()]


def test_tls13_certificate_request_authorities_extension() -> None:
    """Given a TLS 1.3 CertificateRequest with signature_algorithms and certificate_authorities, Then the names."""
    ders = [n.public_bytes() for n in _names()]
    cas = b"".join(_u(len(d), 2) + d for d in ders)
    ext_sig = _u(13, 2) + _u(4, 2) + _u(2, 2) + b"\x08\x04"
    ext_ca = _u(47, 2) + _u(len(cas) + 2, 2) + _u(len(cas), 2) + cas
    exts = ext_sig + ext_ca
    body = b"\x00" + _u(len(exts), 2) + exts
    message = b"\x0d" + _u(len(body), 3) + body
    assert mtls_wire.certificate_request_cas(message, tls13=True) == ders


def test_certificate_lists_both_versions() -> None:
    """Given Certificate messages in TLS 1.2 and 1.3 layout, When parsed, Then the same DER chain."""
    root = pki.root_ca()
    leaf = pki.issue(pki.name("fe.example"), root)
    ders = [pki.der(leaf.cert), pki.der(root.cert)]
    l12 = b"".join(_u(len(d), 3) + d for d in ders)
    m12 = b"\x0b" + _u(len(l12) + 3, 3) + _u(len(l12), 3) + l12
    l13 = b"".join(_u(len(d), 3) + d + _u(0, 2) for d in ders)
    m13 = b"\x0b" + _u(len(l13) + 4, 3) + b"\x00" + _u(len(l13), 3) + l13
    assert mtls_wire.certificate_list(m12, tls13=False) == ders
    assert mtls_wire.certificate_list(m13, tls13=True) == ders
    info = mtls_tls.chain_info(ders, {})
    assert info[0].subject == "CN=fe.example" and info[1].position == 1


def test_truncated_message_raises_value_error() -> None:
    """Given a truncated CertificateRequest, When parsed, Then ValueError (caller logs and goes on)."""
    with pytest.raises(ValueError, match="truncated"):
        mtls_wire.certificate_request_cas(b"\x0d\x00\x00\x10\x01", tls13=False)
