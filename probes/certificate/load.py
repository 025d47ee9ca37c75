"""Loading RMX certificate material from every form an admin meets, safely.

Each file is size-capped *before* any parser sees it, and every failure becomes one
:class:`~probes.model.InputError` line naming the file and the problem (never a secret, never a
traceback). Forms: PEM/DER certificate (optionally several certificates and a key in one PEM),
PKCS#10 request (recognised so the caller can say "this is the request"), PKCS#7/P7B (PEM or DER),
PKCS#12/PFX with a password file, and the firmware 7.x directory layout. Text files may be saved
as Notepad's "Unicode" (UTF-16 LE/BE with a BOM) or UTF-8 with a BOM, and a certificate may be
a bare Base-64 body without its BEGIN/END lines. A certificate cryptography refuses but whose
key or signature algorithm the RMX cannot use anyway (:mod:`probes.certificate.rawcert`) loads
as ``unusable``, to be judged rather than refused.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import hashlib
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from probes.certificate import rawcert
from probes.certificate.chain import key_matches
from probes.certificate.pkcs12 import Protection, protection
from probes.fileio import read_capped as _read_capped
from probes.fileio import read_secret, text_bytes
from probes.memo import PARSED, once
from probes.model import ErrorKind, InputError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

__all__ = ["CERT_PARSE_ERRORS", "LAYOUT_7X", "Material", "UnusableAlgorithm", "corrupt_pfx", "is_ca", "is_pfx",
           "load_certificate", "load_chain", "load_dir7x", "load_key", "load_pem_blocks", "open_pfx",
           "quiet_parser_warnings", "read_capped", "split_leaf", "text_bytes", "well_formed"]

LAYOUT_7X = ("cert.pem", "pkey.pem", "rootCA.pem", "certPassword.txt")

# What cryptography raises for a certificate whose outer DER parsed but whose contents do not
# (it decodes lazily): ValueError, and - none of them ValueErrors - InvalidVersion, TypeError (a
# Name attribute of the wrong ASN.1 type), DuplicateExtension and UnsupportedGeneralNameType.
# One tuple, so every boundary catches the same set.
CERT_PARSE_ERRORS = (ValueError, TypeError, x509.InvalidVersion, x509.DuplicateExtension,
                     x509.UnsupportedGeneralNameType)
# Loaders of whole files add UnsupportedAlgorithm (a PKCS#7 that is not signedData, an unknown PBE).
_LOAD_ERRORS = (*CERT_PARSE_ERRORS, UnsupportedAlgorithm)

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.S)
_CERT_LABELS = {b"CERTIFICATE", b"X509 CERTIFICATE", b"TRUSTED CERTIFICATE"}
_CSR_LABELS = {b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST"}
_KEY_LABELS = {b"PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY", b"ENCRYPTED PRIVATE KEY",
               b"DSA PRIVATE KEY"}
# DER prefix of a PFX: SEQUENCE { INTEGER 3, SEQUENCE { OID 1.2.840.113549.1.7.1 (data) ...
_PFX_VERSION = bytes.fromhex("020103")
_BASE64_BODY = re.compile(rb"[A-Za-z0-9+/=\s]+")
_PKCS7_DATA_OID = bytes.fromhex("06092a864886f70d010701")


@dataclass(frozen=True)
class Material:
    """What one input yielded.

    ``leaf`` is None when the input is a request (``request`` set) or a PFX that did not open
    (``bad_password``). ``chain`` holds the CA certificates supplied with the leaf (PFX bag, P7B,
    extra PEM blocks, ``--chain``, rootCA.pem); ``chain_supplied`` says whether any source could
    have carried one (a bare certificate could not). ``extra_leaves`` are further end-entity
    certificates found in the same input.
    """

    file: str
    form: str  # pem | der | pfx | p7b | dir7x | request | fetch
    leaf: x509.Certificate | None = None
    chain: tuple[x509.Certificate, ...] = ()
    key: PrivateKeyTypes | None = None
    request: x509.CertificateSigningRequest | None = None
    bad_password: bool = False
    chain_supplied: bool = False
    extra_leaves: tuple[x509.Certificate, ...] = ()
    unusable: rawcert.RawCertificate | None = None  # refused by cryptography, algorithm the RMX cannot use
    key_problem: str | None = None  # why a private key found next to the certificate was not read
    pfx_protection: Protection | None = None  # how a PFX input is encrypted (None: not a PFX)


class UnusableAlgorithm(InputError):
    """A certificate cryptography cannot parse, signed or keyed with an algorithm the RMX cannot use."""

    def __init__(self, path: Path, raw: rawcert.RawCertificate) -> None:
        super().__init__(f"{path}: the certificate uses {rawcert.algorithm_name(raw.key_oid)} keys / "
                         f"{rawcert.algorithm_name(raw.signature_oid)} signatures, which the RMX cannot use")
        self.raw = raw


@contextlib.contextmanager
def quiet_parser_warnings() -> Iterator[None]:
    """Keep cryptography's parser warnings (BER in a P7B, a negative serial...) off stderr.

    They name the install path and mean nothing to an admin; what matters in such a file is
    judged by the checks. cryptography parses lazily, so the whole judgement runs inside this.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def read_capped(path: Path, what: str) -> bytes:
    """:func:`probes.fileio.read_capped`, then the text form normalised (:func:`text_bytes`)."""
    return text_bytes(_read_capped(path, what))


def _bare_base64(data: bytes) -> bytes | None:
    """The DER inside a Base-64 body pasted without its BEGIN/END lines (None when it is not one)."""
    if b"-----" in data or not _BASE64_BODY.fullmatch(data):
        return None
    body = b"".join(data.split())
    if len(body) < 64:
        return None
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None


def is_pfx(data: bytes) -> bool:
    """True when ``data`` looks like a DER PKCS#12 (version 3 + a pkcs7-data authSafe)."""
    if len(data) < 20 or data[0] != 0x30:
        return False
    head = data[:40]
    pos = head.find(_PFX_VERSION)
    return 1 < pos <= 5 and _PKCS7_DATA_OID in head[pos:]


def load_pem_blocks(data: bytes, path: Path) -> tuple[list[x509.Certificate], list[x509.CertificateSigningRequest],
                                                    list[bytes], list[x509.Certificate]]:
    """(certificates, requests, key PEM blocks, PKCS#7 certificates) of a PEM file."""
    certs: list[x509.Certificate] = []
    requests: list[x509.CertificateSigningRequest] = []
    keys: list[bytes] = []
    p7: list[x509.Certificate] = []
    blocks = list(_PEM_BLOCK.finditer(data))
    if not blocks:
        if b"-----BEGIN" in data:
            raise InputError(f"{path}: truncated PEM (a BEGIN line without its END line)")
        raise InputError(f"{path}: no PEM block found")
    if data.count(b"-----BEGIN") != len(blocks):
        raise InputError(f"{path}: truncated PEM (a BEGIN line without its END line)")
    for match in blocks:
        label, block = match.group(1), match.group(0)
        try:
            if label in _CERT_LABELS:
                certs.append(x509.load_pem_x509_certificate(block.replace(
                    b"TRUSTED CERTIFICATE", b"CERTIFICATE").replace(b"X509 CERTIFICATE", b"CERTIFICATE")))
            elif label in _CSR_LABELS:
                requests.append(x509.load_pem_x509_csr(block.replace(b"NEW CERTIFICATE", b"CERTIFICATE")))
            elif label in _KEY_LABELS:
                keys.append(block)
            elif label == b"PKCS7":
                from cryptography.hazmat.primitives.serialization import pkcs7
                p7.extend(pkcs7.load_pem_pkcs7_certificates(block))
            else:
                raise InputError(f"{path}: unexpected PEM block '{label.decode()}'")
        except _LOAD_ERRORS:
            if label in _CERT_LABELS:
                _raise_if_unusable(path, _pem_body(block))
            raise InputError(f"{path}: the '{label.decode()}' PEM block is corrupt or truncated") from None
    return certs, requests, keys, p7


def _pem_body(block: bytes) -> bytes:
    lines = [ln for ln in block.splitlines()[1:-1] if b":" not in ln]  # headers (Proc-Type...) have colons
    try:
        return base64.b64decode(b"".join(b"".join(lines).split()))
    except (binascii.Error, ValueError):
        return b""


def _raise_if_unusable(path: Path, der: bytes) -> None:
    """UnusableAlgorithm when ``der`` is a certificate cryptography refused for an algorithm the RMX cannot use."""
    raw = rawcert.read(der)
    if raw is not None and raw.unusable:
        raise UnusableAlgorithm(path, raw)


def load_key(data: bytes, path: Path, password: bytes | None) -> PrivateKeyTypes:
    """A private key from PEM or DER (encrypted ones with ``password``); InputError otherwise.

    RSA keys are not put through cryptography's consistency check (primality of p and q...):
    about 35 ms of CPU per key, holding the interpreter lock, which with many targets starved
    the other probes' network deadlines. What an admin needs to know is checked anyway: that the
    key belongs to the certificate (the public keys are compared), and OpenSSL checks the pair
    again when the mtls probe loads it; a key damaged in its private half shows as the Front
    End refusing the handshake signature, which the mtls probe reports as such.
    """
    data = text_bytes(data)
    pem = b"-----BEGIN" in data
    try:
        return _private_key(data, None, pem)
    except TypeError:
        pass  # encrypted: cryptography asks for the password with a TypeError
    except (ValueError, UnsupportedAlgorithm):
        raise InputError(f"{path}: not a private key (PEM or DER), or the key is corrupt") from None
    if password is None:
        raise InputError(f"{path}: the private key is encrypted: give the password file")
    try:
        return _private_key(data, password, pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise InputError(f"{path}: the private key does not decrypt with the password given "
                         "(wrong password or corrupt key)", ErrorKind.BAD_PASSWORD) from None


def _private_key(data: bytes, password: bytes | None, pem: bool) -> PrivateKeyTypes:
    if pem:
        return serialization.load_pem_private_key(data, password, unsafe_skip_rsa_key_validation=True)
    return serialization.load_der_private_key(data, password, unsafe_skip_rsa_key_validation=True)


class PfxCorrupt(ValueError):
    """The bytes do not parse as PKCS#12 at all (truncated, corrupt, not a PFX): no password can help."""


# cryptography says which step failed only in its message: the DER parse ("Could not deserialize
# PKCS12 data") comes before, and apart from, the MAC/decryption ("Invalid password or PKCS12 data").
_PFX_UNPARSABLE = "could not deserialize"


def open_pfx(data: bytes, password: bytes | None) -> tuple[Any, Any, list[Any]]:
    """(key, certificate, other certificates) of a PKCS#12; ValueError (and the like) when it does not open,
    :class:`PfxCorrupt` when its structure does not even parse (so no password is to blame).

    cryptography validates the RSA key of a PKCS#12 with no way to skip it (~35 ms of CPU,
    holding the interpreter lock): the result is kept per content and password
    (:data:`probes.memo.PARSED`), so the certificate and mtls probes of a target, and every later
    run while the file is unchanged, open it once.
    """
    from cryptography.hazmat.primitives.serialization import pkcs12

    digest = hashlib.sha256(data)
    digest.update(b"\0" + hashlib.sha256(password).digest() if password is not None else b"\1")
    try:
        key, cert, extra = once(PARSED, ("pkcs12", digest.digest()), None,
                                lambda: pkcs12.load_key_and_certificates(data, password))
    except ValueError as exc:
        if str(exc).lower().startswith(_PFX_UNPARSABLE):
            raise PfxCorrupt(str(exc)) from exc
        raise
    return key, cert, list(extra)


def corrupt_pfx(path: Path | str) -> InputError:
    """The input error of a PFX whose DER does not parse (exit 3, not a wrong password)."""
    return InputError(f"{path}: truncated or corrupt PKCS#12/PFX (its structure does not parse, before any "
                      "password is tried): export it again")


def well_formed(certs: list[x509.Certificate], file: str) -> list[x509.Certificate]:
    """``certs`` once each one's extensions decode; InputError naming the file otherwise.

    cryptography parses extensions lazily: a certificate whose outer DER is fine but whose
    extensions are not would otherwise raise ValueError later, deep inside the checks.
    """
    for cert in certs:
        try:
            _ = cert.extensions, cert.subject.rfc4514_string(), cert.issuer.rfc4514_string()
        except CERT_PARSE_ERRORS:
            raise InputError(f"{file}: a certificate's names or extensions are malformed (corrupt file?)") from None
    return certs


def _der_cert_or_request(data: bytes, path: Path) -> Material | None:
    try:
        leaf = x509.load_der_x509_certificate(data)
    except CERT_PARSE_ERRORS:
        pass
    else:
        return Material(str(path), "der", leaf=well_formed([leaf], str(path))[0])
    try:
        return Material(str(path), "request", request=x509.load_der_x509_csr(data))
    except ValueError:
        return None


def _from_pfx(data: bytes, path: Path, password: bytes | None) -> Material:
    # A file that does not parse is corrupt (exit 3); one that parses but does not open (the MAC
    # or the decryption fails) has the wrong password, as the RMX import would say.
    attempts = [password] if password is not None else [None, b""]
    for attempt in attempts:
        try:
            key, cert, extra = open_pfx(data, attempt)
        except PfxCorrupt:
            raise corrupt_pfx(path) from None
        except _LOAD_ERRORS:
            continue
        certs = ([cert] if cert is not None else []) + list(extra)
        return dataclasses.replace(_assemble(str(path), "pfx", certs, key, chain_supplied=True),
                                   pfx_protection=protection(data))
    if password is None:
        raise InputError(f"{path}: is a PKCS#12/PFX protected by a password: give --password-file")
    return Material(str(path), "pfx", bad_password=True, chain_supplied=True, pfx_protection=protection(data))


def _is_issuer_of(ca: x509.Certificate, cert: x509.Certificate) -> bool:
    return ca.subject == cert.issuer and ca is not cert and ca.subject != cert.subject


def is_ca(cert: x509.Certificate) -> bool:
    """True when the certificate is a CA (basicConstraints CA:TRUE)."""
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def split_leaf(certs: list[x509.Certificate], key: PrivateKeyTypes | None = None
               ) -> tuple[x509.Certificate | None, list[x509.Certificate], list[x509.Certificate]]:
    """(leaf, CA certificates, other end-entity certificates) of a bag of certificates.

    The leaf matches ``key`` when one is given; otherwise it is the first non-CA certificate that
    issues nothing else in the bag (a self-signed factory certificate qualifies); a bag of CA
    certificates only gives its lowest CA (the checks then say it is a CA).
    """
    unique: list[x509.Certificate] = []
    for cert in certs:
        if cert not in unique:
            unique.append(cert)
    ends = [c for c in unique if not is_ca(c) and not any(_is_issuer_of(c, o) for o in unique)]
    if key is not None:
        # The certificate the key belongs to is the RMX's, whatever else the bag holds (even a CA:
        # that is then the finding).
        matching = [c for c in unique if key_matches(c, key)]
        preferred = [c for c in matching if not is_ca(c)] or matching[:1]  # an end entity first
        if preferred:
            ends = preferred + [c for c in ends if c not in preferred]
    if not ends and unique:
        # Only CA certificates: the one lowest in the bag (issuing none of the others) is what was
        # given as the RMX certificate (an intermediate pasted by mistake, perhaps with its root).
        lowest = [c for c in unique if not any(_is_issuer_of(c, o) for o in unique)]
        ends = lowest[:1] or unique[:1]
    leaf = ends[0] if ends else None
    cas = _path_order(leaf, [c for c in unique if c is not leaf and c not in ends])
    return leaf, cas, [c for c in ends if c is not leaf]


def _path_order(leaf: x509.Certificate | None, cas: list[x509.Certificate]) -> list[x509.Certificate]:
    """CA certificates nearest the leaf first (a P7B is a DER SET: its order means nothing)."""
    ordered: list[x509.Certificate] = []
    rest = list(cas)
    current = leaf
    while current is not None and rest:
        issuer = next((c for c in rest if c.subject == current.issuer), None)
        if issuer is None:
            break
        ordered.append(issuer)
        rest.remove(issuer)
        current = None if issuer.subject == issuer.issuer else issuer
    return ordered + rest


def _assemble(file: str, form: str, certs: list[x509.Certificate], key: PrivateKeyTypes | None,
              chain_supplied: bool) -> Material:
    leaf, cas, others = split_leaf(well_formed(certs, file), key)
    if leaf is None:
        raise InputError(f"{file}: holds no certificate (only a private key?)")
    return Material(file, form, leaf=leaf, chain=tuple(cas), key=key,
                    chain_supplied=chain_supplied or bool(cas), extra_leaves=tuple(others))


def load_certificate(path: Path, password: bytes | None = None) -> Material:
    """Whatever ``path`` holds in certificate position: PEM/DER/P7B/PFX file or 7.x directory."""
    if path.is_dir():
        return load_dir7x(path)
    try:
        return _load_file(path, password)
    except UnusableAlgorithm as exc:
        return Material(str(path), "unusable", unusable=exc.raw)


def _load_file(path: Path, password: bytes | None) -> Material:
    data = read_capped(path, "certificate file")
    pasted = _bare_base64(data)
    if pasted is not None:
        data = pasted
    if b"-----BEGIN" in data:
        certs, requests, keys, p7 = load_pem_blocks(data, path)
        if not certs and not p7:
            if requests:
                return Material(str(path), "request", request=requests[0])
            raise InputError(f"{path}: holds no certificate (only a private key?)")
        key, problem = None, None
        if keys:
            try:
                key = load_key(keys[0], path, password)
            except InputError as exc:
                if exc.kind is ErrorKind.BAD_PASSWORD:
                    raise  # a password was given for it: that it does not fit is the answer
                problem = str(exc).removeprefix(f"{path}: ")  # the certificate is still judged
        material = _assemble(str(path), "p7b" if p7 and not certs else "pem", certs + p7, key,
                             chain_supplied=bool(p7) or len(certs) > 1)
        return material if problem is None else dataclasses.replace(material, key_problem=problem)
    if is_pfx(data):
        return _from_pfx(data, path, password)
    found = _der_cert_or_request(data, path)
    if found is not None:
        return found if pasted is None else Material(found.file, "base64", leaf=found.leaf, request=found.request)
    try:
        from cryptography.hazmat.primitives.serialization import pkcs7
        p7_certs = pkcs7.load_der_pkcs7_certificates(data)
    except _LOAD_ERRORS:
        p7_certs = []
    if p7_certs:
        return _assemble(str(path), "p7b", p7_certs, None, chain_supplied=True)
    _raise_if_unusable(path, data)
    raise InputError(f"{path}: not a certificate: neither PEM, DER, PKCS#7/P7B nor PKCS#12/PFX "
                     "(truncated or corrupt?)")


def load_chain(path: Path) -> list[x509.Certificate]:
    """CA certificates from a PEM bundle, DER certificate or P7B (``--chain``, ``--ca-bundle``)."""
    data = read_capped(path, "certificate bundle")
    data = _bare_base64(data) or data
    if b"-----BEGIN" in data:
        certs, requests, _keys, p7 = load_pem_blocks(data, path)
        if requests and not (certs or p7):
            raise InputError(f"{path}: holds a certificate request, not CA certificates")
        if not certs and not p7:
            raise InputError(f"{path}: holds no certificate")
        return well_formed(certs + p7, str(path))
    found = _der_cert_or_request(data, path)
    if found is not None and found.leaf is not None:
        return [found.leaf]
    try:
        from cryptography.hazmat.primitives.serialization import pkcs7
        bundle = list(pkcs7.load_der_pkcs7_certificates(data))
    except _LOAD_ERRORS:
        raise InputError(f"{path}: not a certificate bundle (PEM, DER or P7B), or corrupt") from None
    return well_formed(bundle, str(path))


def load_dir7x(path: Path) -> Material:
    """The firmware 7.x layout: cert.pem, pkey.pem (encrypted with certPassword.txt), rootCA.pem."""
    # Only what is not there is "missing": a FIFO or directory named cert.pem is refused by its reader.
    missing = [n for n in LAYOUT_7X[:3] if not os.path.lexists(path / n)]
    if missing:
        raise InputError(f"{path}: is a directory but not the RMX 7.x layout ({', '.join(LAYOUT_7X)}): "
                         f"missing {', '.join(missing)}")
    password_file = path / "certPassword.txt"
    # A dangling symlink is not "no password": the secret reader refuses it by name.
    password = read_secret(password_file) if os.path.lexists(password_file) else None
    cert_data = read_capped(path / "cert.pem", "certificate file")
    certs, requests, _keys, p7 = load_pem_blocks(cert_data, path / "cert.pem")
    if requests and not certs:
        return Material(str(path / "cert.pem"), "request", request=requests[0])
    key = load_key(read_capped(path / "pkey.pem", "private key"), path / "pkey.pem", password or None)
    roots = load_chain(path / "rootCA.pem")
    material = _assemble(str(path), "dir7x", certs + p7 + roots, key, chain_supplied=True)
    return material
