"""The certificate probe: load the RMX certificate in any form and judge it.

This package module stays light (no cryptography): the registry asks it whether a target gives
the probe work; :mod:`probes.certificate.probe` does the work.
"""

from __future__ import annotations

from probes import LazyProbe
from probes.target import Target

# Every finding code of this probe: the catalogue's certificate hints and informational facts.
FINDINGS = frozenset({
    "CERT_SELF_SIGNED", "CERT_IS_REQUEST", "CERT_IS_CA", "CERT_CN_MISMATCH", "CERT_SAN_PRESENT", "CERT_DNS_MISMATCH",
    "CERT_EKU_MISSING", "CERT_EXPIRED", "CERT_NOT_YET_VALID", "CERT_EXPIRING_SOON", "CERT_WEAK_KEY",
    "CERT_SIGNATURE_UNSUPPORTED", "CERT_KEY_MISMATCH", "CERT_CHAIN_INCOMPLETE", "CERT_NO_CDP",
    "CERT_REVOCATION_UNREACHABLE", "PFX_BAD_PASSWORD", "PFX_ENCRYPTION_UNSUPPORTED",
    "CERT_SUMMARY", "CERT_CHAIN_OK", "CERT_CHAIN_NOTE", "CERT_CHAIN_UNCHECKED", "CERT_DNS_OK", "CERT_REVOCATION_OK",
    "CERT_NOTE_NO_EKU", "CERT_NOTE_NO_FQDN", "CERT_NOTE_KEY_NOT_CHECKED", "CERT_NOTE_REVOCATION_SKIPPED",
    "CERT_NOTE_SHA256_FIRMWARE",
})


def applies_to(target: Target) -> bool:
    """A target with a configured certificate source."""
    return target.certificate is not None


PROBE = LazyProbe("certificate", applies_to, "probes.certificate.probe", FINDINGS)
