"""Lint of a certificate request (PKCS#10) before it goes to the CA, with the `rmxdiag cert` rules.

Pure apart from :func:`load_request`, which reads one capped file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from probes.certificate.checks import (
    UNCHECKED_NAME,
    Policy,
    eku_findings,
    eku_names,
    key_findings,
    name_findings,
    public_key_info,
    san_names,
    signature_findings,
    signature_info,
)
from probes.certificate.load import load_pem_blocks, read_capped
from probes.model import Finding, InputError, NoSamples, Severity


@dataclass(frozen=True)
class RequestResult(NoSamples):
    """The facts of a request, for the report."""

    file: str
    subject: str
    sans: tuple[str, ...] | None
    ekus: tuple[str, ...] | None
    signature: str
    key: str
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Details for the JSON report."""
        return {"file": self.file, "subject": self.subject, "sans": None if self.sans is None else list(self.sans),
                "ekus": None if self.ekus is None else list(self.ekus), "signature_algorithm": self.signature,
                "key": self.key, "notes": list(self.notes)}

    def text_lines(self) -> list[str]:
        """The request summary."""
        return [f"file: {self.file} (certificate request)", f"subject:   {self.subject}",
                f"SAN:       {', '.join(self.sans) if self.sans else 'none'}",
                f"EKU:       {', '.join(self.ekus) if self.ekus else 'none requested'}",
                f"signature: {self.signature}", f"key:       {self.key}",
                *(f"note: {n}" for n in self.notes)]


def load_request(path: Path) -> x509.CertificateSigningRequest:
    """A PKCS#10 request from PEM or DER; a certificate or anything else is an InputError."""
    data = read_capped(path, "certificate request")
    if b"-----BEGIN" in data:
        certs, requests, _keys, p7 = load_pem_blocks(data, path)
        if requests:
            return requests[0]
        if certs or p7:
            raise InputError(f"{path}: is an issued certificate, not a request: use `rmxdiag cert {path}`")
        raise InputError(f"{path}: holds no certificate request")
    try:
        return x509.load_der_x509_csr(data)
    except ValueError:
        pass
    try:
        x509.load_der_x509_certificate(data)
    except (ValueError, x509.InvalidVersion):
        raise InputError(f"{path}: not a certificate request (PEM or DER), or truncated/corrupt") from None
    raise InputError(f"{path}: is an issued certificate, not a request: use `rmxdiag cert {path}`")


def request_signature_ok(req: x509.CertificateSigningRequest) -> bool:
    """The request's self-signature verifies with its own public key.

    Checked directly because ``is_signature_valid`` refuses SHA-1 and MD5, which the RMX and old
    IIS request wizards still produce.
    """
    try:
        pub: Any = req.public_key()
        params: Any = req.signature_algorithm_parameters
        digest: Any = req.signature_hash_algorithm
        if isinstance(pub, rsa.RSAPublicKey):
            pub.verify(req.signature, req.tbs_certrequest_bytes, params or padding.PKCS1v15(), digest)
        elif isinstance(pub, ec.EllipticCurvePublicKey):
            pub.verify(req.signature, req.tbs_certrequest_bytes, ec.ECDSA(digest))
        else:
            return bool(req.is_signature_valid)
    except (InvalidSignature, UnsupportedAlgorithm, TypeError, ValueError):
        return False
    return True


def lint_request(req: x509.CertificateSigningRequest, policy: Policy, file: str) -> tuple[list[Finding],
                                                                                         RequestResult]:
    """The findings for a request: name, SAN, key, signature and (if requested) EKUs."""
    if not request_signature_ok(req):
        raise InputError(f"{file}: the request's signature does not verify (corrupt or edited request)")
    base: dict[str, Any] = {"file": file, "subject": req.subject.rfc4514_string()}
    findings = name_findings(req, policy, base) + key_findings(public_key_info(req), base)
    findings += signature_findings(req, policy.firmware, base) + eku_findings(req, base, request=True)
    if policy.fqdn is None:
        findings.append(Finding("CERT_NOTE_NO_FQDN", Severity.INFO,
                                "no --fqdn given: the CN was taken as the signaling FQDN", {**base, **UNCHECKED_NAME}))
    alg, _hash, _pss = signature_info(req)
    key_type, bits = public_key_info(req)
    sans, ekus = san_names(req), eku_names(req)
    result = RequestResult(file, req.subject.rfc4514_string(), None if sans is None else tuple(sans),
                           None if ekus is None else tuple(ekus), alg,
                           key_type + (f" {bits} bits" if bits else ""),
                           tuple(f.message for f in findings if f.severity is Severity.INFO))
    return findings, result
