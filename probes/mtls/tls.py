"""TLS pieces of the MTLS probe: the cached client context and certificate summaries.

The wire formats (Certificate, CertificateRequest, DER names) are parsed by
:mod:`probes.tlswire`, the same parser the capture probe uses.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import ssl
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from probes.certificate.chain import thumbprint
from probes.certificate.load import CERT_PARSE_ERRORS, PfxCorrupt, corrupt_pfx, open_pfx, quiet_parser_warnings
from probes.fileio import read_capped
from probes.fileout import open_keylog
from probes.memo import file_signature, once
from probes.model import ErrorKind, InputError
from probes.target import SecretFile
from probes.tlswire import dn_to_rfc4514

TLS_VERSIONS = {"1.0": ssl.TLSVersion.TLSv1, "1.1": ssl.TLSVersion.TLSv1_1,
                "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


@dataclass(frozen=True)
class ClientSpec:
    """What the client context is built from (the RMX's identity, trust and TLS range).

    No certificate at all (``pfx`` and ``cert`` None) is allowed: it shows how the registrar
    treats a peer without one. ``tls_min`` below 1.2 switches to legacy mode: TLS 1.0/1.1 and
    SHA-1 need OpenSSL security level 0 (OpenSSL 3 refuses them at its default level 1+).
    """

    pfx: Path | None = None
    password: SecretFile | None = None
    cert: Path | None = None
    key: Path | None = None
    chain: Path | None = None
    ca_bundle: Path | None = None
    tls_min: str = "1.2"
    tls_max: str = "1.3"
    keylog: Path | None = None

    @property
    def legacy(self) -> bool:
        """True when TLS 1.0/1.1 (and with them SHA-1 and small keys) are allowed."""
        return self.tls_min in ("1.0", "1.1")


@dataclass(frozen=True)
class ClientContext:
    """A ready client SSLContext and the parsed client chain it presents (leaf first).

    ``chain_infos``, ``issuer_der``, ``issuer_text`` and ``cn`` are derived once at build time so
    no probe re-parses the client certificate.
    """

    context: ssl.SSLContext
    chain: tuple[x509.Certificate, ...]
    chain_infos: tuple[CertInfo, ...] = ()
    issuer_der: bytes | None = None
    issuer_text: str | None = None
    cn: str | None = None
    verifies: bool = True  # False: no trust anchors given, the FE chain is recorded but not verified


def client_context(spec: ClientSpec, cache: dict[Any, Any]) -> ClientContext:
    """The client context for ``spec``, built once per version of its files (:func:`probes.memo.once`)."""
    files = (spec.pfx, spec.password.path if spec.password else None, spec.cert, spec.key, spec.chain,
             spec.ca_bundle)
    return once(cache, ("mtls-client-context", spec), file_signature(*files), lambda: build_client_context(spec))


def _load_identity(spec: ClientSpec) -> tuple[Any, list[x509.Certificate]] | None:
    """(private key, [leaf, chain...]) from the PFX or the PEM files; None when no certificate."""
    if spec.pfx is not None:
        data = read_capped(spec.pfx, "PFX")
        password = spec.password.read("password file") if spec.password else None
        try:
            key, cert, extra = open_pfx(data, password or None)
        except PfxCorrupt:
            raise corrupt_pfx(spec.pfx) from None
        except ValueError as exc:
            if spec.password is None:
                raise InputError(f"{spec.pfx}: the PFX is protected by a password: give --password-file",
                                 ErrorKind.BAD_PASSWORD) from exc
            raise InputError(f"{spec.pfx}: cannot open the PFX with the password in {spec.password.path} "
                             "(wrong password)", ErrorKind.BAD_PASSWORD) from exc
        if key is None or cert is None:
            raise InputError(f"{spec.pfx}: the PFX holds no private key and certificate pair")
        return key, [cert, *extra]
    if spec.cert is None:
        return None
    if spec.key is None:
        raise InputError(f"{spec.cert}: the certificate needs its private key to be presented "
                         "(--key, or key: in the config)")
    try:
        certs = x509.load_pem_x509_certificates(read_capped(spec.cert, "certificate"))
    except (ValueError, x509.InvalidVersion) as exc:
        raise InputError(f"{spec.cert}: not a PEM certificate") from exc
    key_password = spec.password.read("password file") if spec.password else None
    try:
        # No RSA consistency check (see probes.certificate.load.load_key): OpenSSL checks the pair below.
        key = serialization.load_pem_private_key(read_capped(spec.key, "private key"), key_password or None,
                                                 unsafe_skip_rsa_key_validation=True)
    except TypeError as exc:
        raise InputError(f"{spec.key}: the private key is encrypted; give --password-file") from exc
    except ValueError as exc:
        raise InputError(f"{spec.key}: not a PEM private key, or a wrong password for it",
                         ErrorKind.BAD_PASSWORD if key_password else ErrorKind.BAD_INPUT) from exc
    chain: list[x509.Certificate] = []
    if spec.chain is not None:
        try:
            chain = x509.load_pem_x509_certificates(read_capped(spec.chain, "chain"))
        except (ValueError, x509.InvalidVersion) as exc:
            raise InputError(f"{spec.chain}: not a PEM certificate bundle") from exc
    return key, [*certs, *chain]


def _load_into(ctx: ssl.SSLContext, key: Any, certs: Sequence[x509.Certificate], origin: Path) -> None:
    """Load key + chain into ``ctx`` without the key ever reaching a disk in clear.

    OpenSSL loads identities from files only: the PEM goes to an anonymous memory file
    (``memfd_create``, reachable only through this process's descriptor table), or where that
    does not exist to a 0600 temporary file whose key is encrypted with a one-time password.
    """
    pem_certs = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
    try:
        if hasattr(os, "memfd_create"):
            try:
                _load_from_memory(ctx, key, pem_certs)
                return
            except OSError as exc:
                if isinstance(exc, ssl.SSLError):
                    raise
        _load_from_temporary(ctx, key, pem_certs)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise InputError(f"{origin}: the private key does not match the certificate") from exc
        raise InputError(f"{origin}: OpenSSL refused the certificate ({exc.reason}); "
                         "for SHA-1 or small keys use --tls-min 1.0 (legacy mode)") from exc


def _load_from_memory(ctx: ssl.SSLContext, key: Any, pem_certs: bytes) -> None:
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    fd = os.memfd_create("rmxdiag-identity", os.MFD_CLOEXEC)
    try:
        os.write(fd, pem_certs + pem_key)
        # An empty password: a key that is (unexpectedly) encrypted fails instead of prompting on a terminal.
        ctx.load_cert_chain(f"/proc/self/fd/{fd}", password=b"")
    finally:
        os.close(fd)


def _load_from_temporary(ctx: ssl.SSLContext, key: Any, pem_certs: bytes) -> None:
    otp = secrets.token_hex(16).encode()
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.BestAvailableEncryption(otp))
    fd, name = tempfile.mkstemp(prefix="rmxdiag-", suffix=".pem")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem_certs + pem_key)
        ctx.load_cert_chain(name, password=otp)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)


def build_client_context(spec: ClientSpec) -> ClientContext:
    """Build the client SSLContext: TLS range, identity, and the RMX's trust anchors.

    With ``ca_bundle`` the Front End's chain and name are verified against it, as the RMX does with
    its Trusted Certificates. Without it nothing is verified: this host's system store is not what
    the RMX trusts, so refusing the Front End on its account would stop the handshake before the
    Front End judged the RMX certificate. The chain is still recorded (``verifies`` False).
    """
    for value in (spec.tls_min, spec.tls_max):
        if value not in TLS_VERSIONS:
            raise InputError(f"--tls-min/--tls-max: {value!r} is not one of {', '.join(TLS_VERSIONS)}")
    if TLS_VERSIONS[spec.tls_min] > TLS_VERSIONS[spec.tls_max]:
        raise InputError(f"--tls-min {spec.tls_min} is above --tls-max {spec.tls_max}")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED + check_hostname
    with warnings.catch_warnings():
        # Python deprecates TLS 1.0/1.1, but old RMX firmware speaks only them: the user asked.
        warnings.simplefilter("ignore", DeprecationWarning)
        if spec.legacy:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = TLS_VERSIONS[spec.tls_min]
        ctx.maximum_version = TLS_VERSIONS[spec.tls_max]
    if spec.ca_bundle is not None:
        read_capped(spec.ca_bundle, "CA bundle")
        try:
            ctx.load_verify_locations(cafile=str(spec.ca_bundle))
        except ssl.SSLError as exc:
            raise InputError(f"{spec.ca_bundle}: not a PEM CA bundle ({exc.reason})") from exc
    else:
        # reviewed: no RMX trust store given: the handshake goes on so the Front End's answer to the
        # RMX certificate is seen; the Front End chain is recorded and reported as unchecked
        # (MTLS_FE_CHAIN_UNCHECKED), never as trusted.
        ctx.check_hostname = False  # reviewed: see above
        ctx.verify_mode = ssl.CERT_NONE  # reviewed: see above
    chain: tuple[x509.Certificate, ...] = ()
    identity = _load_identity(spec)
    if identity is not None:
        key, certs = identity
        _load_into(ctx, key, certs, spec.pfx or spec.cert or Path("?"))
        chain = tuple(certs)
    if spec.keylog is not None:
        # A key log decrypts every session written to it: opened once by the one rule (a new 0600
        # file or the user's own private key log, no symlink), then handed to OpenSSL through the
        # descriptor so the file checked is the file written.
        fd = open_keylog(spec.keylog)
        try:
            ctx.keylog_filename = f"/proc/self/fd/{fd}"
        except OSError as exc:
            raise InputError(f"{spec.keylog}: cannot write the key log ({exc.strerror})",
                             ErrorKind.FILE_UNREADABLE) from exc
        finally:
            os.close(fd)
    verifies = spec.ca_bundle is not None
    if not chain:
        return ClientContext(ctx, chain, verifies=verifies)
    cns = chain[0].subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return ClientContext(ctx, chain, tuple(cert_info(c, i) for i, c in enumerate(chain)),
                         chain[0].issuer.public_bytes(), chain[0].issuer.rfc4514_string(),
                         str(cns[0].value) if cns else None, verifies)


@dataclass(frozen=True)
class CertInfo:
    """What the report shows of one certificate of a chain (``position`` 0 = leaf)."""

    position: int
    subject: str
    issuer: str
    serial: str
    not_before: str
    not_after: str
    not_after_ts: float
    sans: tuple[str, ...]
    sha1: str = ""  # the SHA-1 thumbprint Windows shows (certlm.msc, certutil): tells same-name CAs apart

    def to_json(self) -> dict[str, Any]:
        """The evidence keys of the brief."""
        return {"position": self.position, "subject": self.subject, "issuer": self.issuer,
                "serial": self.serial, "not_before": self.not_before, "not_after": self.not_after,
                "sans": list(self.sans), "sha1": self.sha1}


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cert_info(cert: x509.Certificate, position: int) -> CertInfo:
    """Summarise one parsed certificate (cryptography's parser warnings, e.g. a CN over 64
    characters, never reach stderr: the values are shown as they are)."""
    with quiet_parser_warnings():
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            sans = tuple([*san.get_values_for_type(x509.DNSName),
                          *(str(ip) for ip in san.get_values_for_type(x509.IPAddress))])
        except (x509.ExtensionNotFound, ValueError):
            sans = ()
        return CertInfo(position, cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(),
                        format(cert.serial_number, "x"), _iso(cert.not_valid_before_utc),
                        _iso(cert.not_valid_after_utc), cert.not_valid_after_utc.timestamp(), sans,
                        thumbprint(cert))


def ca_names(ders: Sequence[bytes], cache: dict[Any, Any]) -> tuple[str, ...]:
    """RFC 4514 strings of CertificateRequest CA names; each DER decoded once per cache lifetime."""
    out = []
    for der in ders:
        key = ("mtls-ca-name", der)
        text = cache.get(key)
        if not isinstance(text, str):
            try:
                # One DER Name decoder for the probe and the capture analysis (RFC 4514, as cryptography).
                text = dn_to_rfc4514(der)
            except ValueError:
                text = "(undecodable name)"
            cache[key] = text
        out.append(text)
    return tuple(out)


def chain_info(ders: Sequence[bytes], cache: dict[Any, Any]) -> tuple[CertInfo, ...]:
    """Summaries of a presented chain; each DER is parsed once per cache lifetime."""
    out = []
    for position, der in enumerate(ders):
        key = ("mtls-peer-cert", der, position)
        info = cache.get(key)
        if not isinstance(info, CertInfo):
            try:
                info = cert_info(x509.load_der_x509_certificate(der), position)
            except CERT_PARSE_ERRORS:
                info = CertInfo(position, "(unparsable certificate)", "", "", "", "", 0.0, ())
            cache[key] = info
        out.append(info)
    return tuple(out)
