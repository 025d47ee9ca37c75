"""Assembling a PFX the RMX imports in one go (written by :func:`probes.fileout.write_output`).

The PFX is built only after the key, the chain and the validity are checked, and it is re-opened
with the same password before it is written (0600, never over an existing file unless forced).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from probes.certificate.chain import display_name, is_self_signed, iso, key_matches, walk
from probes.certificate.pkcs12 import rmx_encryption
from probes.model import Finding, InputError, Severity

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes


@dataclass(frozen=True)
class Assembly:
    """An assembled, re-opened PFX: its bytes and the order of its certificates."""

    data: bytes
    leaf: x509.Certificate
    cas: tuple[x509.Certificate, ...]


def blocking_problems(leaf: x509.Certificate, key: PrivateKeyTypes, candidates: list[x509.Certificate],
                      now: datetime) -> tuple[list[Finding], list[x509.Certificate]]:
    """(findings that forbid assembly, the CA path nearest first) for leaf + key + candidate CAs."""
    base: dict[str, Any] = {"subject": leaf.subject.rfc4514_string(), "serial": format(leaf.serial_number, "X")}
    out: list[Finding] = []
    if not key_matches(leaf, key):
        out.append(Finding("CERT_KEY_MISMATCH", Severity.CRITICAL,
                           "refused: the private key does not belong to this certificate", base))
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        code = "CERT_EXPIRED" if now > leaf.not_valid_after_utc else "CERT_NOT_YET_VALID"
        out.append(Finding(code, Severity.CRITICAL,
                           f"refused: the certificate is valid only {iso(leaf.not_valid_before_utc)} -> "
                           f"{iso(leaf.not_valid_after_utc)}", base))
    if is_self_signed(leaf):
        out.append(Finding("CERT_SELF_SIGNED", Severity.CRITICAL,
                           "refused: a self-signed certificate is not what the Front End trusts", base))
        return out, []
    path, problems = walk(leaf, candidates, [], bundle_given=False, chain_supplied=True, now=now)
    if problems:
        out.append(Finding("CERT_CHAIN_INCOMPLETE", Severity.CRITICAL, "refused: " + "; ".join(problems),
                           {**base, "missing": problems, "path": [display_name(c.subject) for c in path]}))
    return out, path[1:]


def build(leaf: x509.Certificate, key: PrivateKeyTypes, cas: list[x509.Certificate], password: bytes) -> Assembly:
    """The PFX bytes (leaf, key, CAs nearest first), verified by opening them again."""
    if not password:
        raise InputError("--password-file: the password is empty; the RMX import asks for one")
    # The protection RMX firmware opens (the one rule, probes.certificate.pkcs12).
    encryption = rmx_encryption(password)
    friendly = (display_name(leaf.subject)).encode()[:64]
    data = pkcs12.serialize_key_and_certificates(friendly, key, leaf, cas, encryption)  # type: ignore[arg-type]
    try:
        key2, leaf2, cas2 = pkcs12.load_key_and_certificates(data, password)
    except ValueError:
        raise InputError("the assembled PFX does not open again with the same password (not written)") from None
    if leaf2 != leaf or key2 is None or not key_matches(leaf, key2) or list(cas2) != cas:
        raise InputError("the assembled PFX re-opened with different contents (not written)")
    return Assembly(data, leaf, tuple(cas))
