"""Chain judgement: cryptography's client-auth verifier plus an issuer walk that names the gap.

The verifier (``PolicyBuilder ... build_client_verifier()``) says *whether* a path to the trust
anchors exists; when it does not, walking issuer names and signatures ourselves says *what* is
missing ("issuing CA 'X' is not in the chain you supplied"). Pure: no I/O, ``now`` injected.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

from probes.model import Finding, Severity

MAX_DEPTH = 8  # real RMX chains are 2-3 deep; bounds the walk over a hostile bundle
# The option that gives the Front End's trust anchors (``ca_bundle`` in the configuration; its old
# name --ca-bundle is kept as an alias).
TRUST_OPTION = "--fe-trust"


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with a Z, seconds precision (the evidence convention)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def common_name(name: x509.Name) -> str | None:
    """The (last) CN of a name, or None."""
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[-1].value) if values else None


def display_name(name: x509.Name) -> str:
    """A short human name: the CN, else the RFC 4514 string."""
    return common_name(name) or name.rfc4514_string()


def thumbprint(cert: x509.Certificate) -> str:
    """The SHA-1 thumbprint as Windows shows it (certlm.msc, certutil), colon-separated upper-case hex.

    An identity, not a security check: two CAs with one name and different keys differ here.
    """
    return cert.fingerprint(hashes.SHA1()).hex(":").upper()  # noqa: S303 -- what Windows displays


def spki(public_key: Any) -> bytes:
    """DER SubjectPublicKeyInfo of a public key: the one form keys are compared in."""
    der: bytes = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return der


def key_matches(cert: x509.Certificate, private_key: Any) -> bool:
    """True when ``private_key`` is the key of ``cert`` (same SubjectPublicKeyInfo)."""
    try:
        return spki(cert.public_key()) == spki(private_key.public_key())
    except (UnsupportedAlgorithm, ValueError):  # a key type cryptography cannot load (GOST...)
        return False


def signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when ``issuer``'s public key verifies ``cert``'s signature.

    Done with the public key directly: ``verify_directly_issued_by`` refuses SHA-1, the hash of
    the RMX factory certificate and of many enterprise CAs.
    """
    try:
        pub: Any = issuer.public_key()
        params: Any = cert.signature_algorithm_parameters  # ValueError for unreadable PSS parameters
        digest: Any = cert.signature_hash_algorithm
        if isinstance(pub, rsa.RSAPublicKey):
            # cryptography gives no parameters for MD5-RSA: those are PKCS#1 v1.5 too.
            params = params if params is not None else padding.PKCS1v15()
            pub.verify(cert.signature, cert.tbs_certificate_bytes, params, digest)
        elif isinstance(pub, ec.EllipticCurvePublicKey):
            pub.verify(cert.signature, cert.tbs_certificate_bytes, params)
        elif isinstance(pub, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            pub.verify(cert.signature, cert.tbs_certificate_bytes)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, TypeError, ValueError):
        return False
    return True


def is_self_signed(cert: x509.Certificate) -> bool:
    """Subject = issuer and the certificate's own key verifies its signature."""
    return cert.subject == cert.issuer and signed_by(cert, cert)


def _same(a: x509.Certificate, b: x509.Certificate) -> bool:
    try:
        return a.subject == b.subject and spki(a.public_key()) == spki(b.public_key())
    except (UnsupportedAlgorithm, ValueError):
        return a == b


def verify_client(leaf: x509.Certificate, roots: list[x509.Certificate],
                  intermediates: list[x509.Certificate], now: datetime) -> tuple[list[x509.Certificate], str | None]:
    """(verified chain, None) or ([], why not) under a client-auth policy against ``roots``.

    The end-entity policy is the web PKI one with the SAN made optional: the RMX guidance is a
    CN-only certificate, which the web PKI default would refuse for a reason Lync does not have.
    """
    from cryptography.x509 import verification as v

    if not roots:
        return [], "no trust anchor available"
    ee = v.ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, v.Criticality.AGNOSTIC, None)
    builder = (v.PolicyBuilder().store(v.Store(roots)).time(now)
               .extension_policies(ca_policy=v.ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee))
    try:
        verified = builder.build_client_verifier().verify(leaf, intermediates)
    except (v.VerificationError, UnsupportedAlgorithm, ValueError) as exc:
        return [], str(exc)[:300]
    return list(verified.chain), None


def walk(leaf: x509.Certificate, supplied: list[x509.Certificate], anchors: list[x509.Certificate], *,
         bundle_given: bool, chain_supplied: bool, now: datetime) -> tuple[list[x509.Certificate], list[str]]:
    """(path from the leaf upwards, problems in words) by issuer name + signature."""
    pool: list[x509.Certificate] = []
    for cert in [*supplied, *anchors]:
        if not any(_same(cert, p) for p in pool):
            pool.append(cert)
    path, problems = [leaf], []
    current = leaf
    for _ in range(MAX_DEPTH):
        if current is not leaf and is_self_signed(current):
            break
        named = [c for c in pool if c.subject == current.issuer and not any(_same(c, p) for p in path)]
        issuers = [c for c in named if signed_by(current, c)]
        if not issuers:
            what = f"issuing CA '{display_name(current.issuer)}' (issuer of '{display_name(current.subject)}')"
            if named:
                prints = ", ".join(f"SHA-1 {thumbprint(c)}" for c in named)
                problems.append(f"{what}: a certificate with that name is present ({prints}) but did not sign it "
                                "(a renewed CA with a new key?)")
            elif bundle_given and chain_supplied:
                problems.append(f"{what} is neither in the chain you supplied nor in the Front End's trust anchors "
                                f"({TRUST_OPTION})")
            elif bundle_given:
                problems.append(f"{what} is not in the Front End's trust anchors ({TRUST_OPTION}) and no chain was "
                                "supplied")
            else:
                problems.append(f"{what} is not in the chain you supplied")
            return path, problems
        issuer = next((c for c in issuers if c.not_valid_before_utc <= now <= c.not_valid_after_utc), issuers[0])
        root = is_self_signed(issuer)
        role, label = ("root" if root else "intermediate"), display_name(issuer.subject)
        if now > issuer.not_valid_after_utc:
            problems.append(f"{role} '{label}' expired on {iso(issuer.not_valid_after_utc)}")
        elif now < issuer.not_valid_before_utc:
            problems.append(f"{role} '{label}' is not valid before {iso(issuer.not_valid_before_utc)}")
        if not root and chain_supplied and bundle_given and not any(_same(issuer, c) for c in supplied):
            problems.append(f"intermediate '{label}' is not in the chain you supplied (the RMX must hold and "
                            f"send it; it was found only in the Front End's trust anchors, {TRUST_OPTION})")
        path.append(issuer)
        current = issuer
    else:
        problems.append(f"no root reached within {MAX_DEPTH} certificates")
        return path, problems
    if bundle_given and not any(_same(current, a) for a in anchors):
        same_name = [a for a in anchors if a.subject == current.subject]
        twin = (f"; the trust anchors hold a root with that name but another key (SHA-1 "
                f"{', '.join(thumbprint(a) for a in same_name)})" if same_name else "")
        problems.append(f"root '{display_name(current.subject)}' (SHA-1 {thumbprint(current)}) is not in the Front "
                        f"End's trust anchors ({TRUST_OPTION}): the Front End does not trust it{twin}")
    return path, problems


def chain_findings(leaf: x509.Certificate, supplied: list[x509.Certificate], anchors: list[x509.Certificate], *,
                   bundle_given: bool, chain_supplied: bool, now: datetime,
                   base: dict[str, Any]) -> list[Finding]:
    """CERT_CHAIN_INCOMPLETE naming what is missing, or an informational chain observation."""
    unchecked = Finding("CERT_CHAIN_UNCHECKED", Severity.INFO,
                        "whether the Front End trusts this chain was not checked: give the Front End's trusted "
                        f"roots and intermediates ({TRUST_OPTION}, or ca_bundle in the configuration)",
                        {**base, "unchecked": "the chain against the Front End's trust anchors",
                         "option": f"{TRUST_OPTION} F", "config_key": "ca_bundle"})
    if not bundle_given and not chain_supplied:
        return [unchecked]
    if bundle_given:
        roots = [c for c in anchors if is_self_signed(c)] or list(anchors)
        extra = [c for c in anchors if not any(c is r for r in roots)]
    else:
        roots, extra = [c for c in supplied if is_self_signed(c)], []
    intermediates = [c for c in supplied if not is_self_signed(c)] + extra
    verified, why = verify_client(leaf, roots, intermediates, now)
    path, problems = walk(leaf, supplied, anchors, bundle_given=bundle_given, chain_supplied=chain_supplied,
                          now=now)
    ev = {**base, "path": [display_name(c.subject) for c in (verified or path)],
          "path_sha1": [thumbprint(c) for c in (verified or path)],
          "anchors_from": TRUST_OPTION if bundle_given else "supplied chain"}
    # Without the Front End's anchors only completeness was judged: say what was not.
    rest = [] if bundle_given else [unchecked]
    if problems:
        return [Finding("CERT_CHAIN_INCOMPLETE", Severity.CRITICAL, "; ".join(problems),
                        {**ev, "missing": problems}), *rest]
    if why is None:
        return [Finding("CERT_CHAIN_OK", Severity.INFO,
                        f"chain verified up to '{display_name(verified[-1].subject)}' (client-auth policy)", ev), *rest]
    return [Finding("CERT_CHAIN_NOTE", Severity.INFO,
                    "the chain is complete by names and signatures; cryptography's stricter verifier also "
                    f"refused it ({why}); other findings say why", ev), *rest]
