"""TLS pieces of the MTLS probe: the cached client context and the handshake message parsers.

The handshake messages come from OpenSSL's message callback (decrypted, with their 4-byte
header, also for TLS 1.3), so the FE's Certificate and CertificateRequest are read even when
verification fails or the handshake is aborted, without a second, non-verifying handshake.
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
from cryptography.hazmat.primitives.serialization import pkcs12

from probes.model import ErrorKind, InputError
from probes.target import SecretFile

TLS_VERSIONS = {"1.0": ssl.TLSVersion.TLSv1, "1.1": ssl.TLSVersion.TLSv1_1,
                "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
MAX_FILE_BYTES = 1024 * 1024


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
    """A ready client SSLContext and the parsed client chain it presents (leaf first)."""

    context: ssl.SSLContext
    chain: tuple[x509.Certificate, ...]


def _stat_key(path: Path | None) -> tuple[Any, ...]:
    if path is None:
        return ()
    try:
        st = path.stat()
    except OSError:
        return (str(path), None)
    return (str(path), st.st_ino, st.st_size, st.st_mtime_ns)


def cache_key(spec: ClientSpec) -> tuple[Any, ...]:
    """A key that changes when any input file changes (path, inode, size, mtime)."""
    files = (spec.pfx, spec.password.path if spec.password else None, spec.cert, spec.key, spec.chain,
             spec.ca_bundle)
    return ("mtls-client-context", *(_stat_key(p) for p in files), spec.tls_min, spec.tls_max,
            str(spec.keylog) if spec.keylog else None)


def client_context(spec: ClientSpec, cache: dict[Any, Any]) -> ClientContext:
    """The client context for ``spec``, built once per unchanged set of files."""
    key = cache_key(spec)
    found = cache.get(key)
    if isinstance(found, ClientContext):
        return found
    built = build_client_context(spec)
    cache[key] = built
    return built


def _read(path: Path, what: str) -> bytes:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InputError(f"{path}: {what} is larger than {MAX_FILE_BYTES} bytes")
        return path.read_bytes()
    except IsADirectoryError as exc:
        raise InputError(f"{path}: {what} is a directory", ErrorKind.FILE_UNREADABLE) from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what} ({exc.strerror})", ErrorKind.FILE_UNREADABLE) from exc


def _load_identity(spec: ClientSpec) -> tuple[Any, list[x509.Certificate]] | None:
    """(private key, [leaf, chain...]) from the PFX or the PEM files; None when no certificate."""
    if spec.pfx is not None:
        data = _read(spec.pfx, "PFX")
        password = spec.password.read() if spec.password else None
        try:
            key, cert, extra = pkcs12.load_key_and_certificates(data, password or None)
        except ValueError as exc:
            raise InputError(f"{spec.pfx}: cannot open the PFX with the password given (or it is corrupt)",
                             ErrorKind.BAD_PASSWORD) from exc
        if key is None or cert is None:
            raise InputError(f"{spec.pfx}: the PFX holds no private key and certificate pair")
        return key, [cert, *extra]
    if spec.cert is None:
        return None
    if spec.key is None:
        raise InputError(f"{spec.cert}: --key is required with --cert")
    try:
        certs = x509.load_pem_x509_certificates(_read(spec.cert, "certificate"))
    except ValueError as exc:
        raise InputError(f"{spec.cert}: not a PEM certificate") from exc
    key_password = spec.password.read() if spec.password else None
    try:
        key = serialization.load_pem_private_key(_read(spec.key, "private key"), key_password or None)
    except TypeError as exc:
        raise InputError(f"{spec.key}: the private key is encrypted; give --password-file") from exc
    except ValueError as exc:
        raise InputError(f"{spec.key}: not a PEM private key, or a wrong password for it",
                         ErrorKind.BAD_PASSWORD if key_password else ErrorKind.BAD_INPUT) from exc
    chain: list[x509.Certificate] = []
    if spec.chain is not None:
        try:
            chain = x509.load_pem_x509_certificates(_read(spec.chain, "chain"))
        except ValueError as exc:
            raise InputError(f"{spec.chain}: not a PEM certificate bundle") from exc
    return key, [*certs, *chain]


def _load_into(ctx: ssl.SSLContext, key: Any, certs: Sequence[x509.Certificate], origin: Path) -> None:
    """Load key + chain into ``ctx`` via a 0600 temp file whose key is encrypted with a one-time password."""
    otp = secrets.token_hex(16).encode()
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.BestAvailableEncryption(otp))
    pem_certs = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
    fd, name = tempfile.mkstemp(prefix="rmxdiag-", suffix=".pem")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem_certs + pem_key)
        ctx.load_cert_chain(name, password=otp)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise InputError(f"{origin}: the private key does not match the certificate") from exc
        raise InputError(f"{origin}: OpenSSL refused the certificate ({exc.reason}); "
                         "for SHA-1 or small keys use --tls-min 1.0 (legacy mode)") from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)


def build_client_context(spec: ClientSpec) -> ClientContext:
    """Build the client SSLContext: verification on, hostname checked, TLS range, identity."""
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
        _read(spec.ca_bundle, "CA bundle")
        try:
            ctx.load_verify_locations(cafile=str(spec.ca_bundle))
        except ssl.SSLError as exc:
            raise InputError(f"{spec.ca_bundle}: not a PEM CA bundle ({exc.reason})") from exc
    else:
        ctx.load_default_certs()
    chain: tuple[x509.Certificate, ...] = ()
    identity = _load_identity(spec)
    if identity is not None:
        key, certs = identity
        _load_into(ctx, key, certs, spec.pfx or spec.cert or Path("?"))
        chain = tuple(certs)
    if spec.keylog is not None:
        ctx.keylog_filename = str(spec.keylog)
    return ClientContext(ctx, chain)


# --- handshake message parsers (RFC 5246 §7.4.2/§7.4.4, RFC 8446 §4.3.2/§4.4.2) -----------------

def _u(data: bytes, pos: int, size: int) -> tuple[int, int]:
    if pos + size > len(data):
        raise ValueError("truncated handshake message")
    return int.from_bytes(data[pos:pos + size], "big"), pos + size


def certificate_list(message: bytes, tls13: bool) -> list[bytes]:
    """DER certificates of a Certificate handshake message (with its 4-byte header)."""
    pos = 4
    if tls13:
        ctx_len, pos = _u(message, pos, 1)
        pos += ctx_len
    total, pos = _u(message, pos, 3)
    end = min(len(message), pos + total)
    certs = []
    while pos < end:
        size, pos = _u(message, pos, 3)
        certs.append(message[pos:pos + size])
        pos += size
        if tls13:
            ext_len, pos = _u(message, pos, 2)
            pos += ext_len
    return certs


def certificate_request_cas(message: bytes, tls13: bool) -> list[bytes]:
    """DER distinguished names of a CertificateRequest's CA list (with its 4-byte header)."""
    pos = 4
    if tls13:
        ctx_len, pos = _u(message, pos, 1)
        pos += ctx_len
        ext_total, pos = _u(message, pos, 2)
        end = pos + ext_total
        while pos < end:
            ext_type, pos = _u(message, pos, 2)
            ext_len, pos = _u(message, pos, 2)
            if ext_type == 47:  # certificate_authorities
                return _dn_list(message, pos)
            pos += ext_len
        return []
    types_len, pos = _u(message, pos, 1)
    pos += types_len
    sig_len, pos = _u(message, pos, 2)
    pos += sig_len
    return _dn_list(message, pos)


def _dn_list(data: bytes, pos: int) -> list[bytes]:
    total, pos = _u(data, pos, 2)
    end = pos + total
    names = []
    while pos < end:
        size, pos = _u(data, pos, 2)
        names.append(data[pos:pos + size])
        pos += size
    return names


# --- a minimal DER reader for X.501 Names (cryptography has no public Name-from-DER loader) -------

def _tlv(data: bytes, pos: int) -> tuple[int, bytes, int]:
    tag = data[pos]
    length, pos = data[pos + 1], pos + 2
    if length & 0x80:
        count = length & 0x7F
        length, pos = int.from_bytes(data[pos:pos + count], "big"), pos + count
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, data[pos:pos + length], pos + length


def _oid(body: bytes) -> str:
    parts = [body[0] // 40, body[0] % 40]
    value = 0
    for byte in body[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(str(p) for p in parts)


def name_from_der(der: bytes) -> x509.Name:
    """Decode a DER X.501 Name (as sent in a CertificateRequest) into a cryptography Name."""
    tag, body, _ = _tlv(der, 0)
    if tag != 0x30:
        raise ValueError("a Name is a SEQUENCE")
    rdns = []
    pos = 0
    while pos < len(body):
        _, rdn_body, pos = _tlv(body, pos)
        attrs = []
        apos = 0
        while apos < len(rdn_body):
            _, atv, apos = _tlv(rdn_body, apos)
            _, oid_body, vpos = _tlv(atv, 0)
            vtag, value, _ = _tlv(atv, vpos)
            text = value.decode("utf-16-be" if vtag == 30 else "utf-8", "replace")
            attrs.append(x509.NameAttribute(x509.ObjectIdentifier(_oid(oid_body)), text))
        rdns.append(x509.RelativeDistinguishedName(attrs))
    return x509.Name(rdns)


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

    def to_json(self) -> dict[str, Any]:
        """The evidence keys of the brief."""
        return {"position": self.position, "subject": self.subject, "issuer": self.issuer,
                "serial": self.serial, "not_before": self.not_before, "not_after": self.not_after,
                "sans": list(self.sans)}


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cert_info(cert: x509.Certificate, position: int) -> CertInfo:
    """Summarise one parsed certificate."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = tuple([*san.get_values_for_type(x509.DNSName),
                      *(str(ip) for ip in san.get_values_for_type(x509.IPAddress))])
    except (x509.ExtensionNotFound, ValueError):
        sans = ()
    return CertInfo(position, cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(),
                    format(cert.serial_number, "x"), _iso(cert.not_valid_before_utc),
                    _iso(cert.not_valid_after_utc), cert.not_valid_after_utc.timestamp(), sans)


def chain_info(ders: Sequence[bytes], cache: dict[Any, Any]) -> tuple[CertInfo, ...]:
    """Summaries of a presented chain; each DER is parsed once per cache lifetime."""
    out = []
    for position, der in enumerate(ders):
        key = ("mtls-peer-cert", der, position)
        info = cache.get(key)
        if not isinstance(info, CertInfo):
            try:
                info = cert_info(x509.load_der_x509_certificate(der), position)
            except ValueError:
                info = CertInfo(position, "(unparsable certificate)", "", "", "", "", 0.0, ())
            cache[key] = info
        out.append(info)
    return tuple(out)
