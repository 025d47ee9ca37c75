"""The TLS wire parsers the mtls and capture probes share: Certificate, CertificateRequest, DER names."""

from __future__ import annotations

import pytest
from cryptography import x509

from daemon.lab import pki
from probes import tlswire
from probes.mtls import tls as mtls_tls
from probes.tlswire import dn_to_rfc4514


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
    assert tlswire.certificate_request_cas(message[4:], tls13=False) == ders
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
    assert tlswire.certificate_request_cas(message[4:], tls13=True) == ders


def test_certificate_lists_both_versions() -> None:
    """Given Certificate messages in TLS 1.2 and 1.3 layout, When parsed, Then the same DER chain."""
    root = pki.root_ca()
    leaf = pki.issue(pki.name("fe.example"), root)
    ders = [pki.der(leaf.cert), pki.der(root.cert)]
    l12 = b"".join(_u(len(d), 3) + d for d in ders)
    m12 = b"\x0b" + _u(len(l12) + 3, 3) + _u(len(l12), 3) + l12
    l13 = b"".join(_u(len(d), 3) + d + _u(0, 2) for d in ders)
    m13 = b"\x0b" + _u(len(l13) + 4, 3) + b"\x00" + _u(len(l13), 3) + l13
    assert tlswire.certificate_list(m12[4:], tls13=False) == ders
    assert tlswire.certificate_list(m13[4:], tls13=True) == ders
    info = mtls_tls.chain_info(ders, {})
    assert info[0].subject == "CN=fe.example" and info[1].position == 1


def test_truncated_message_raises_value_error() -> None:
    """Given a truncated CertificateRequest, When parsed, Then ValueError (caller logs and goes on)."""
    with pytest.raises(ValueError, match="truncated"):
        tlswire.certificate_request_cas(b"\x01", tls13=False)


def test_malformed_ca_lists_raise_for_both_probes() -> None:
    """Given CertificateRequests whose CA list holds a non-DER name, or bytes after the list (TLS 1.2),
    or an extension longer than its list (TLS 1.3), When parsed, Then ValueError: garbage is never a CA name."""
    good = _names()[0].public_bytes()
    bad_name = _u(3, 2) + b"\x04\x01A"  # an OCTET STRING where a Name (SEQUENCE) must be
    for cas in (bad_name, _u(len(good), 2) + good + b"\x00"):
        body = b"\x01\x40" + _u(2, 2) + b"\x04\x01" + _u(len(cas), 2) + cas
        with pytest.raises(ValueError):
            tlswire.certificate_request_cas(body, tls13=False)
    listed = _u(len(good), 2) + good
    ext = _u(47, 2) + _u(len(listed) + 3, 2) + _u(len(listed), 2) + listed + b"\x00"
    with pytest.raises(ValueError):
        tlswire.certificate_request_cas(b"\x00" + _u(len(ext), 2) + ext, tls13=True)
    # And a TLS 1.3 request without the extension lists no CA ("any CA")
    assert tlswire.certificate_request_cas(b"\x00" + _u(0, 2), tls13=True) == []


def test_front_end_certificate_with_an_overlong_name_is_summarised_without_a_warning() -> None:
    """Given a Front End certificate whose CN is longer than X.509's 64-character bound (real CAs
    issue them), When the mtls probe summarises it, Then no cryptography warning escapes (the test
    run turns warnings into errors) and the whole name is kept."""
    import warnings

    from cryptography.x509.oid import NameOID

    cn = "fe-" + "x" * 120 + ".example"
    root = pki.root_ca()
    with warnings.catch_warnings():  # making such a certificate warns too; only the probe is under test
        warnings.simplefilter("ignore")
        fe = pki.issue(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn, _validate=False)]), root)
    # The certificate arrives as DER off the wire; parse it as the probe does.
    info = mtls_tls.cert_info(x509.load_der_x509_certificate(pki.der(fe.cert)), 0)
    assert info.subject == f"CN={cn}"
