"""The MTLS probe: the RMX's own TLS handshake with the Front End, then a SIP OPTIONS.

This package module stays light: the registry asks it whether a target gives the probe work;
:mod:`probes.mtls.probe` does the work.
"""

from __future__ import annotations

from probes import LazyProbe
from probes.target import Target

# Every finding code of this probe: one per outcome (probes.mtls.outcome.hint_for, or MTLS_OK)
# and the observations a handshake adds (no CertificateRequest; a CA list without the issuer; a
# Front End chain recorded but not checked because no trust anchors were given).
FINDINGS = frozenset({
    "MTLS_OK", "REGISTRAR_DNS_FAILURE", "REGISTRAR_UNREACHABLE", "REGISTRAR_TLS_TIMEOUT", "REGISTRAR_CERT_UNTRUSTED",
    "REGISTRAR_CERT_NAME_MISMATCH", "REGISTRAR_CERT_EXPIRED", "REGISTRAR_CERT_INVALID", "CLIENT_CERT_UNKNOWN_CA",
    "CLIENT_CERT_REJECTED",
    "TLS_VERSION_MISMATCH", "TLS_HANDSHAKE_FAILURE", "TLS_LOCAL_POLICY", "SIP_NOT_TRUSTED", "SIP_NO_RESPONSE",
    "SIP_ERROR_RESPONSE", "CLIENT_CERT_NOT_REQUESTED", "CAPTURE_TRUNCATED_CA_LIST", "MTLS_FE_CHAIN_UNCHECKED",
    "TLS_PORT_NOT_TLS",
})


def applies_to(target: Target) -> bool:
    """A target with at least one registrar."""
    return bool(target.registrars)


PROBE = LazyProbe("mtls", applies_to, "probes.mtls.probe", FINDINGS)
