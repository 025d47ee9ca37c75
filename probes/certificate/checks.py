"""Pure analysis of RMX certificate material against the Lync/SfB rules (the README's certificate checks).

No I/O and no clock: the caller passes the loaded :class:`~probes.certificate.load.Material`, a
:class:`Policy` and ``now``. Every finding whose code is a catalogue code becomes a hint; the
other codes (``CERT_NOTE_*``, ``CERT_CHAIN_OK``...) are informational observations.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from probes.certificate import rawcert
from probes.certificate.chain import chain_findings, common_name, is_self_signed, iso, key_matches, thumbprint
from probes.certificate.load import Material, is_ca
from probes.certificate.pkcs12 import refused
from probes.model import Facts, Finding, Severity

_EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth", ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning", ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping", ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage",
}
# RSA PKCS#1 v1.5 with these hashes is what Lync 2013 and every RMX firmware accept.
_GOOD_HASHES = {"sha1", "sha256"}
# RSA keys are what every RMX firmware and Lync 2013 use; EC keys are untested there (a warning);
# DSA, Ed25519, Ed448, GOST and keys cryptography does not know are not usable at all.
_REISSUE_RSA = "reissue it with an RSA key of 2048 bits or more, signed with RSA PKCS#1 SHA-256"


@dataclass(frozen=True)
class Policy:
    """What the certificate is judged against.

    ``fqdn`` None: the CN is taken as the intended name (only SAN consistency is checked).
    ``anchors``: the ``--ca-bundle`` certificates (``bundle_given`` False: no bundle at all).
    ``allow_san``: a deliberate SAN containing the FQDN (super-cluster style) is not a warning.
    """

    fqdn: str | None = None
    firmware: str = "8.x"
    expiry_warning_days: int = 30
    anchors: tuple[x509.Certificate, ...] = ()
    bundle_given: bool = False
    allow_san: bool = False


def _ext(cert: x509.Certificate | x509.CertificateSigningRequest, kind: type[Any]) -> Any:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def eku_names(obj: x509.Certificate | x509.CertificateSigningRequest) -> list[str] | None:
    """The EKU names (dotted OID for unknown ones); None when there is no EKU extension."""
    value = _ext(obj, x509.ExtendedKeyUsage)
    return None if value is None else [_EKU_NAMES.get(oid, oid.dotted_string) for oid in value]


def san_names(obj: x509.Certificate | x509.CertificateSigningRequest) -> list[str] | None:
    """DNS and IP SAN entries (``IP:`` prefixed); None when there is no SAN extension."""
    value = _ext(obj, x509.SubjectAlternativeName)
    if value is None:
        return None
    names: list[str] = [str(n) for n in value.get_values_for_type(x509.DNSName)]
    names += [f"IP:{ip}" for ip in value.get_values_for_type(x509.IPAddress)]
    return names


def cdp_urls(cert: x509.Certificate) -> list[str]:
    """URLs of the CRL distribution points."""
    value = _ext(cert, x509.CRLDistributionPoints)
    return [n.value for dp in (value or []) for n in (dp.full_name or [])
            if isinstance(n, x509.UniformResourceIdentifier)]


def aia_urls(cert: x509.Certificate) -> dict[str, list[str]]:
    """AIA URLs: ``ca_issuers`` and ``ocsp``."""
    value = _ext(cert, x509.AuthorityInformationAccess)
    out: dict[str, list[str]] = {"ca_issuers": [], "ocsp": []}
    for desc in value or []:
        if isinstance(desc.access_location, x509.UniformResourceIdentifier):
            key = "ocsp" if desc.access_method == x509.oid.AuthorityInformationAccessOID.OCSP else "ca_issuers"
            out[key].append(desc.access_location.value)
    return out


def signature_info(obj: x509.Certificate | x509.CertificateSigningRequest) -> tuple[str, str | None, bool]:
    """(algorithm name, hash name or None, is RSASSA-PSS)."""
    oid = obj.signature_algorithm_oid
    name = getattr(oid, "_name", None) or oid.dotted_string  # cryptography names well-known OIDs
    if name in (oid.dotted_string, "Unknown OID"):
        name = rawcert.algorithm_name(oid.dotted_string)
    try:
        hash_alg = obj.signature_hash_algorithm
    except (UnsupportedAlgorithm, ValueError):  # an exotic algorithm or odd PSS parameters must not stop it
        hash_alg = None
    return str(name), hash_alg.name if hash_alg else None, oid == x509.SignatureAlgorithmOID.RSASSA_PSS


def key_info(public_key: Any) -> tuple[str, int | None]:
    """(key type, size in bits) of a public key."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return "RSA", public_key.key_size
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return f"EC {public_key.curve.name}", public_key.curve.key_size
    if isinstance(public_key, dsa.DSAPublicKey):
        return "DSA", public_key.key_size
    if isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return type(public_key).__name__.replace("PublicKey", ""), None
    return type(public_key).__name__, None


def public_key_info(obj: x509.Certificate | x509.CertificateSigningRequest) -> tuple[str, int | None]:
    """(key type, size in bits) of a certificate's or request's key, also for types cryptography cannot load."""
    try:
        return key_info(obj.public_key())
    except (UnsupportedAlgorithm, ValueError):
        oid = getattr(obj, "public_key_algorithm_oid", None)
        return (rawcert.algorithm_name(oid.dotted_string) if oid is not None else "unknown key type"), None


def describe(cert: x509.Certificate) -> dict[str, Any]:
    """Every fact an admin checks, JSON-ready (the certificate summary and the evidence pool)."""
    alg, hash_name, _pss = signature_info(cert)
    key_type, bits = public_key_info(cert)
    aia = aia_urls(cert)
    return {
        "subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string(),
        "serial": format(cert.serial_number, "X"), "sha1": thumbprint(cert),
        "not_before": iso(cert.not_valid_before_utc), "not_after": iso(cert.not_valid_after_utc),
        "sans": san_names(cert) or [], "ekus": eku_names(cert) or [],
        "signature_algorithm": alg, "signature_hash": hash_name, "key_type": key_type, "key_bits": bits,
        "cdp_urls": cdp_urls(cert), "aia_urls": aia["ca_issuers"], "ocsp_urls": aia["ocsp"],
    }


def _identity(cert: x509.Certificate) -> dict[str, Any]:
    return {"subject": cert.subject.rfc4514_string(), "serial": format(cert.serial_number, "X"),
            "sha1": thumbprint(cert)}


# What a judgement without --fqdn did not check (the report's "not checked" line).
UNCHECKED_NAME = {"unchecked": "the name against the RMX signaling FQDN", "option": "--fqdn NAME", "config_key": "fqdn"}


def names_match(a: str, b: str) -> bool:
    """DNS names compare case-insensitively and without a trailing dot (no wildcard expansion)."""
    return a.rstrip(".").lower() == b.rstrip(".").lower()


def name_findings(obj: x509.Certificate | x509.CertificateSigningRequest, policy: Policy,
                  base: dict[str, Any]) -> list[Finding]:
    """CN = signaling FQDN; a SAN, if present, must contain it (and is itself worth a warning)."""
    cn = common_name(obj.subject)
    wanted = policy.fqdn or cn
    sans = san_names(obj)
    out: list[Finding] = []
    ev = {**base, "fqdn": policy.fqdn, "cn": cn, "sans": sans or []}
    if cn is None:
        out.append(Finding("CERT_CN_MISMATCH", Severity.CRITICAL,
                           "the subject has no CN (the RMX FQDN belongs there)", ev))
    elif policy.fqdn and not names_match(cn, policy.fqdn):
        out.append(Finding("CERT_CN_MISMATCH", Severity.CRITICAL,
                           f"CN '{cn}' is not the signaling FQDN '{policy.fqdn}'", ev))
    if sans is not None and wanted:
        if not any(names_match(s, wanted) for s in sans):
            wild = any(s.startswith("*.") for s in sans)
            out.append(Finding("CERT_CN_MISMATCH", Severity.CRITICAL,
                               f"the SAN does not contain '{wanted}'" + (
                                   " (a wildcard does not name a trusted application computer)" if wild else "")
                               + "; a SAN wins over the CN in TLS name checks", ev))
        elif not policy.allow_san:
            out.append(Finding("CERT_SAN_PRESENT", Severity.WARNING,
                               f"a SAN is present ({', '.join(sans)}); it contains '{wanted}'", ev))
    return out


def pfx_findings(material: Material, base: dict[str, Any]) -> list[Finding]:
    """PFX_ENCRYPTION_UNSUPPORTED when a PFX is protected in a way the RMX import refuses (the one rule)."""
    sealed = material.pfx_protection
    why = refused(sealed) if sealed is not None else None
    if sealed is None or why is None:
        return []
    return [Finding("PFX_ENCRYPTION_UNSUPPORTED", Severity.CRITICAL,
                    f"the PFX uses {why}: the RMX import refuses it (it says 'Invalid password.'); export it again "
                    "with TripleDES-SHA1 or build it with rmxdiag cert pfx",
                    {**base, "protection": sealed.describe()})]


def eku_findings(obj: x509.Certificate | x509.CertificateSigningRequest, base: dict[str, Any],
                 request: bool = False) -> list[Finding]:
    """Both serverAuth and clientAuth (the RMX is the MTLS client towards the Front End)."""
    ekus = eku_names(obj)
    if ekus is None:
        # No EKU extension means "any purpose" to Schannel and OpenSSL; a request without one
        # leaves the EKUs to the CA template.
        what = "the request asks for no EKU: the CA template decides" if request else \
            "no EKU extension (any purpose): accepted, but a template with both EKUs is clearer"
        return [Finding("CERT_NOTE_NO_EKU", Severity.INFO, what, base)]
    if "anyExtendedKeyUsage" in ekus:
        return []
    missing = [n for n in ("serverAuth", "clientAuth") if n not in ekus]
    if not missing:
        return []
    return [Finding("CERT_EKU_MISSING", Severity.CRITICAL,
                    f"EKU {' and '.join(missing)} missing (has: {', '.join(ekus) or 'none'})",
                    {**base, "ekus": ekus, "missing": missing})]


def key_findings(key: tuple[str, int | None], base: dict[str, Any]) -> list[Finding]:
    """RSA of at least 2048 bits; other key types are a warning (EC) or unusable (the rest)."""
    key_type, bits = key
    ev = {**base, "key_type": key_type, "key_bits": bits}
    if key_type == "RSA":
        if bits is not None and bits < 2048:
            return [Finding("CERT_WEAK_KEY", Severity.WARNING, f"RSA key of {bits} bits (2048 or more needed)", ev)]
        return []
    if key_type.startswith("EC "):
        return [Finding("CERT_WEAK_KEY", Severity.WARNING,
                        f"{key_type} key: Lync 2013 and the RMX expect RSA (2048 bits or more)", ev)]
    return [Finding("CERT_WEAK_KEY", Severity.CRITICAL,
                    f"{key_type} key: the RMX cannot use it for SIP TLS; {_REISSUE_RSA}", ev)]


def signature_findings(obj: x509.Certificate | x509.CertificateSigningRequest, firmware: str,
                       base: dict[str, Any]) -> list[Finding]:
    """RSA PKCS#1 with SHA-1/SHA-256; PSS is critical, other hashes a warning."""
    alg, hash_name, pss = signature_info(obj)
    ev = {**base, "signature_algorithm": alg, "signature_hash": hash_name}
    if pss:
        return [Finding("CERT_SIGNATURE_UNSUPPORTED", Severity.CRITICAL,
                        f"signed with RSASSA-PSS ({hash_name or 'parameters unreadable'}): Lync 2013 does not "
                        "support PSS", ev)]
    family = rawcert.algorithm_name(obj.signature_algorithm_oid.dotted_string)
    if family not in ("RSA", "ECDSA"):
        return [Finding("CERT_SIGNATURE_UNSUPPORTED", Severity.CRITICAL,
                        f"signature {alg}: the RMX and the Front End cannot verify {family} signatures; the CA "
                        "must sign with RSA PKCS#1 SHA-256", ev)]
    if not alg.lower().endswith("withrsaencryption") or hash_name not in _GOOD_HASHES:
        why = "MD5 is broken" if hash_name == "md5" else (
            "SHA-512 can stop older Front End services" if hash_name == "sha512"
            else "only RSA PKCS#1 with SHA-1 or SHA-256 is known to work")
        return [Finding("CERT_SIGNATURE_UNSUPPORTED", Severity.WARNING, f"signature {alg}: {why}", ev)]
    if hash_name == "sha256" and firmware == "7.x":
        return [Finding("CERT_NOTE_SHA256_FIRMWARE", Severity.INFO,
                        "SHA-256 signature: needs firmware 8.1.4 or later; a downgrade below 8.1.4 deletes "
                        "SHA-256 certificates", ev)]
    return []


def validity_findings(cert: x509.Certificate, now: datetime, warn_days: int,
                      base: dict[str, Any]) -> list[Finding]:
    """Expired, not yet valid (clock skew) or expiring within ``warn_days``."""
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    ev = {**base, "not_before": iso(start), "not_after": iso(end), "now": iso(now)}
    if now > end:
        return [Finding("CERT_EXPIRED", Severity.CRITICAL,
                        f"expired on {iso(end)} ({(now - end).days} days ago); if that looks wrong, check the "
                        "clocks (NTP) of the RMX and the Front Ends", ev)]
    if now < start:
        return [Finding("CERT_NOT_YET_VALID", Severity.CRITICAL,
                        f"not valid before {iso(start)}: clock skew between CA, RMX and Front End is the usual "
                        "cause (alert 45, ms-diagnostics 1013)", ev)]
    left = (end - now).days
    if left < warn_days:
        return [Finding("CERT_EXPIRING_SOON", Severity.WARNING,
                        f"expires on {iso(end)}, in {left} days (warning threshold {warn_days})",
                        {**ev, "days_left": left})]
    return []


def _factory(cert: x509.Certificate) -> bool:
    text = cert.subject.rfc4514_string()
    return "OU=Self Signed Certificate" in text or "O=Polycom" in text


@dataclass(frozen=True)
class Prepared:
    """The findings of :func:`analyse` that hold for a while, split by what they depend on.

    ``head`` and ``tail`` depend on the material and the policy only (they come before and after
    the leaf's validity findings); ``chain`` also depends on the clock and holds while ``now`` is
    inside ``window`` (every certificate involved within its validity): outside it, or when
    ``window`` is None, it is computed again. ``leaf`` is False when there is no certificate to
    judge the validity of (a request, an unopened PFX, an unusable certificate); ``chained`` is
    False when no chain is judged (no leaf, or a self-signed one).
    """

    head: tuple[Finding, ...]
    tail: tuple[Finding, ...] = ()
    chain: tuple[Finding, ...] = ()
    window: tuple[datetime, datetime] | None = None
    leaf: bool = False
    chained: bool = False


def _chain(material: Material, policy: Policy, now: datetime, base: dict[str, Any]) -> tuple[Finding, ...]:
    assert material.leaf is not None  # noqa: S101 -- callers check
    return tuple(chain_findings(material.leaf, list(material.chain), list(policy.anchors),
                                bundle_given=policy.bundle_given, chain_supplied=material.chain_supplied,
                                now=now, base=base))


def _window(certs: list[x509.Certificate]) -> tuple[datetime, datetime] | None:
    start = max(c.not_valid_before_utc for c in certs)
    end = min(c.not_valid_after_utc for c in certs)
    return (start, end) if start <= end else None


def _base(material: Material) -> dict[str, Any]:
    base: dict[str, Any] = {"file": material.file}
    if material.leaf is not None:
        base.update(_identity(material.leaf))
    return base


def prepare(material: Material, policy: Policy, now: datetime) -> Prepared:
    """What :func:`analyse` finds, computed once for an unchanged material and policy (see :class:`Prepared`)."""
    base = _base(material)
    sealed = tuple(pfx_findings(material, base))
    if material.bad_password:
        return Prepared((Finding("PFX_BAD_PASSWORD", Severity.CRITICAL,
                                 "the PFX does not open with the password in the password file",
                                 base), *sealed))
    if material.request is not None:
        req = material.request
        return Prepared((Finding("CERT_IS_REQUEST", Severity.CRITICAL,
                                 "this is a certificate request (BEGIN CERTIFICATE REQUEST), not the issued "
                                 "certificate", {**base, "subject": req.subject.rfc4514_string()}),))
    if material.unusable is not None:
        return Prepared(tuple(unusable_findings(material.unusable, base)))
    cert = material.leaf
    if cert is None:
        return Prepared(())
    # Every fact in one informational finding, so diagnosis rules and the exporter (not_after,
    # issuer) can use them without parsing the certificate again.
    head: list[Finding] = [Finding("CERT_SUMMARY", Severity.INFO,
                                   f"certificate '{common_name(cert.subject) or cert.subject.rfc4514_string()}' "
                                   f"valid until {iso(cert.not_valid_after_utc)}",
                                   {"file": material.file, **describe(cert)},
                                   Facts(rmx_issuer=cert.issuer.public_bytes()))]
    self_signed = is_self_signed(cert)
    if self_signed:
        factory = _factory(cert)
        what = "the RMX factory self-signed certificate" if factory else "a self-signed certificate"
        head.append(Finding("CERT_SELF_SIGNED", Severity.CRITICAL, f"{what}: no Front End trusts it",
                            {**base, "issuer": cert.issuer.rfc4514_string(), "factory_default": factory}))
    if is_ca(cert):
        head.append(Finding("CERT_IS_CA", Severity.CRITICAL,
                            "this is a CA certificate (basicConstraints CA:TRUE), not the RMX's own certificate: "
                            "an intermediate or root given by mistake",
                            {**base, "issuer": cert.issuer.rfc4514_string()}))
    head += sealed
    head += name_findings(cert, policy, base)
    head += eku_findings(cert, base)
    head += key_findings(public_key_info(cert), base)
    head += signature_findings(cert, policy.firmware, base)
    tail: list[Finding] = []
    if material.key_problem is not None:
        tail.append(Finding("CERT_NOTE_KEY_NOT_CHECKED", Severity.INFO,
                            f"the private key in the file was not checked: {material.key_problem}", base))
    if material.key is not None and not key_matches(cert, material.key):
        tail.append(Finding("CERT_KEY_MISMATCH", Severity.CRITICAL,
                            "the private key does not belong to this certificate", base))
    if self_signed:
        return Prepared(tuple(head), tuple(tail), leaf=True)
    if not cdp_urls(cert):
        tail.append(Finding("CERT_NO_CDP", Severity.WARNING, "no CRL distribution point (Lync requires one)", base))
    window = _window([cert, *material.chain, *policy.anchors])
    return Prepared(tuple(head), tuple(tail), _chain(material, policy, now, base), window, leaf=True, chained=True)


def findings_at(prepared: Prepared, material: Material, policy: Policy, now: datetime) -> list[Finding]:
    """The findings of :func:`analyse` at ``now`` from what :func:`prepare` computed (maybe earlier)."""
    if not prepared.leaf or material.leaf is None:
        return list(prepared.head)
    found = [*prepared.head,
             *validity_findings(material.leaf, now, policy.expiry_warning_days, _base(material)),
             *prepared.tail]
    window = prepared.window
    if window is not None and window[0] <= now <= window[1]:
        found += prepared.chain
    elif prepared.chained:
        found += _chain(material, policy, now, _base(material))  # some certificate is out of its validity
    return found


def analyse(material: Material, policy: Policy, now: datetime) -> list[Finding]:
    """Every finding for the loaded material (a request or an unopened PFX yields one finding)."""
    return findings_at(prepare(material, policy, now), material, policy, now)


def unusable_findings(raw: rawcert.RawCertificate, base: dict[str, Any]) -> list[Finding]:
    """A certificate cryptography refused, whose key or signature algorithm the RMX cannot use."""
    ev = {**base, "subject": raw.subject, "issuer": raw.issuer}
    key, signature = rawcert.algorithm_name(raw.key_oid), rawcert.algorithm_name(raw.signature_oid)
    found = []
    if raw.key_oid != rawcert.RSA_KEY:
        found.append(Finding("CERT_WEAK_KEY", Severity.CRITICAL,
                             f"{key} key: the RMX cannot use it for SIP TLS; {_REISSUE_RSA}",
                             {**ev, "key_type": key, "key_bits": None}))
    if signature != "RSA":
        found.append(Finding("CERT_SIGNATURE_UNSUPPORTED", Severity.CRITICAL,
                             f"signature {signature}: the RMX and the Front End cannot verify it; the CA must sign "
                             "with RSA PKCS#1 SHA-256", {**ev, "signature_algorithm": raw.signature_oid}))
    return found
