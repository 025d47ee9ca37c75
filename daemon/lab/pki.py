"""A small PKI generator for the embedded lab and the test suite.

Builds CAs and leaf certificates with exactly the properties (and flaws) an RMX/Lync deployment
meets: names, SANs, EKUs, key sizes, hash and padding, validity windows, CDP/AIA URLs, the RMX
factory self-signed subject. Everything is generated; nothing here is meant for production.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from daemon.lab.files import write_new

SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384,
    "sha512": hashes.SHA512, "md5": hashes.MD5,
}

# RSA key generation dominates PKI build time; reuse keys per size within one process.
_KEY_CACHE: dict[tuple[str, int], list[PrivateKey]] = {}


def new_key(kind: str = "rsa", size: int = 2048, fresh: bool = False) -> PrivateKey:
    """An RSA (size bits) or EC (P-256) key; cached per size unless ``fresh``."""
    pool = _KEY_CACHE.setdefault((kind, size), [])
    if pool and not fresh:
        return pool[0]
    key: PrivateKey
    if kind == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=size)
    if not fresh:
        pool.append(key)
    return key


def name(cn: str | None = None, **attrs: str) -> x509.Name:
    """An X.509 name from a CN and optional O/OU/DC/C attributes (keyword = attribute)."""
    oids = {"O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
            "DC": NameOID.DOMAIN_COMPONENT, "C": NameOID.COUNTRY_NAME, "L": NameOID.LOCALITY_NAME}
    rdns = [x509.NameAttribute(oids[k], v) for k, v in attrs.items()]
    if cn is not None:
        rdns.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(rdns)


@dataclass
class Issued:
    """A certificate with its key (and the issuer chain above it, nearest first)."""

    cert: x509.Certificate
    key: PrivateKey
    chain: list[x509.Certificate] = field(default_factory=list)

    @property
    def cert_pem(self) -> bytes:
        """The certificate alone, PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        """The private key, unencrypted PKCS#8 PEM."""
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    @property
    def chain_pem(self) -> bytes:
        """The issuer chain (nearest first), PEM."""
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)

    def pfx(self, password: bytes | None, include_chain: bool = True, friendly: bytes = b"rmx",
            modern: bool = False) -> bytes:
        """A PKCS#12 of key, certificate and (optionally) the chain, protected as the RMX imports it
        (3DES, SHA-1 MAC); ``modern``: as OpenSSL 3 and newer Windows export it (AES), which the RMX refuses."""
        from probes.certificate.pkcs12 import rmx_encryption

        enc: serialization.KeySerializationEncryption = serialization.NoEncryption()
        if password:
            enc = serialization.BestAvailableEncryption(password) if modern else rmx_encryption(password)
        return pkcs12.serialize_key_and_certificates(
            friendly, self.key, self.cert, self.chain if include_chain else None, enc)

    def p7b(self, include_chain: bool = True) -> bytes:
        """A PKCS#7 'certs-only' bundle (DER), as a CA web enrolment returns it."""
        certs = [self.cert, *(self.chain if include_chain else [])]
        return pkcs7.serialize_certificates(certs, serialization.Encoding.DER)

    def write(self, directory: Path, stem: str) -> dict[str, Path]:
        """Write ``stem.crt``, ``stem.key`` (0600) and ``stem-chain.pem``; return their paths."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = {"cert": directory / f"{stem}.crt", "key": directory / f"{stem}.key",
                 "chain": directory / f"{stem}-chain.pem"}
        write_new(paths["cert"], self.cert_pem)
        write_new(paths["key"], self.key_pem, private=True)
        write_new(paths["chain"], self.chain_pem)
        return paths


# cryptography >= 47 refuses to *create* SHA-1/MD5 signatures, but the RMX factory certificate is
# SHA-1-signed and old CAs still issue them. Sign with SHA-256, then swap the algorithm OID (same
# encoded length) in the to-be-signed part and sign those bytes again with the legacy hash.
_SHA256_RSA = bytes.fromhex("06092a864886f70d01010b")  # 1.2.840.113549.1.1.11
_LEGACY_OIDS = {"sha1": bytes.fromhex("06092a864886f70d010105"),  # sha1WithRSAEncryption
                "md5": bytes.fromhex("06092a864886f70d010104")}  # md5WithRSAEncryption


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der_read(data: bytes, pos: int) -> tuple[int, int]:
    """(start of content, end of content) of the TLV at ``pos``."""
    first = data[pos + 1]
    if first < 0x80:
        return pos + 2, pos + 2 + first
    count = first & 0x7F
    length = int.from_bytes(data[pos + 2:pos + 2 + count], "big")
    return pos + 2 + count, pos + 2 + count + length


def _legacy_resign(signed_der: bytes, key: PrivateKey, hash_name: str) -> bytes:
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("legacy SHA-1/MD5 signatures are only built for RSA keys")
    outer_start, _ = _der_read(signed_der, 0)
    tbs_start = outer_start
    _, tbs_end = _der_read(signed_der, tbs_start)
    tbs = signed_der[tbs_start:tbs_end].replace(_SHA256_RSA, _LEGACY_OIDS[hash_name], 1)
    signature = key.sign(tbs, padding.PKCS1v15(), _HASHES[hash_name]())
    alg = b"\x30" + _der_len(len(_LEGACY_OIDS[hash_name]) + 2) + _LEGACY_OIDS[hash_name] + b"\x05\x00"
    bits = b"\x03" + _der_len(len(signature) + 1) + b"\x00" + signature
    body = tbs + alg + bits
    return b"\x30" + _der_len(len(body)) + body


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def issue(
    subject: x509.Name,
    issuer: Issued | None = None,
    *,
    ca: bool = False,
    path_length: int | None = None,
    key: PrivateKey | None = None,
    sans: Sequence[str] = (),
    ip_sans: Sequence[str] = (),
    ekus: Sequence[x509.ObjectIdentifier] | None = (SERVER_AUTH, CLIENT_AUTH),
    hash_name: str = "sha256",
    pss: bool = False,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    days: int = 365,
    cdp: Sequence[str] = (),
    aia_ca_issuers: Sequence[str] = (),
    ocsp: Sequence[str] = (),
) -> Issued:
    """Issue a certificate signed by ``issuer`` (self-signed when None) with the given traits."""
    key = key or new_key()
    start = not_before or (_now() - dt.timedelta(days=1))
    end = not_after or (start + dt.timedelta(days=days))
    sign_key = issuer.key if issuer else key
    issuer_name = issuer.cert.subject if issuer else subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True,
                          crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
    else:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False,
                          key_encipherment=isinstance(key, rsa.RSAPrivateKey), data_encipherment=False,
                          key_agreement=False, key_cert_sign=False, crl_sign=False,
                          encipher_only=False, decipher_only=False), critical=True)
        if ekus:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(ekus)), critical=False)
    general: list[x509.GeneralName] = [x509.DNSName(s) for s in sans]
    general += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_sans]
    if general:
        builder = builder.add_extension(x509.SubjectAlternativeName(general), critical=False)
    if cdp:
        builder = builder.add_extension(x509.CRLDistributionPoints([
            x509.DistributionPoint([x509.UniformResourceIdentifier(u)], None, None, None) for u in cdp
        ]), critical=False)
    access = [x509.AccessDescription(x509.oid.AuthorityInformationAccessOID.CA_ISSUERS,
                                     x509.UniformResourceIdentifier(u)) for u in aia_ca_issuers]
    access += [x509.AccessDescription(x509.oid.AuthorityInformationAccessOID.OCSP,
                                      x509.UniformResourceIdentifier(u)) for u in ocsp]
    if access:
        builder = builder.add_extension(x509.AuthorityInformationAccess(access), critical=False)
    if hash_name in _LEGACY_OIDS:
        cert = x509.load_der_x509_certificate(_legacy_resign(
            builder.sign(sign_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER),
            sign_key, hash_name))
    elif pss:
        algorithm = _HASHES[hash_name]()
        cert = builder.sign(sign_key, algorithm, rsa_padding=padding.PSS(  # type: ignore[arg-type]
            mgf=padding.MGF1(algorithm), salt_length=padding.PSS.DIGEST_LENGTH))
    else:
        cert = builder.sign(sign_key, _HASHES[hash_name]())  # type: ignore[arg-type]
    chain = ([issuer.cert, *issuer.chain] if issuer else [])
    return Issued(cert, key, chain)


def root_ca(cn: str = "rmxdiag Lab Root CA", **kw: object) -> Issued:
    """A self-signed root CA."""
    return issue(name(cn, O="rmxdiag lab"), None, ca=True, days=3650, **kw)  # type: ignore[arg-type]


def intermediate_ca(parent: Issued, cn: str = "rmxdiag Lab Issuing CA", **kw: object) -> Issued:
    """An intermediate CA under ``parent``."""
    return issue(name(cn, O="rmxdiag lab"), parent, ca=True, path_length=0, days=1825,
                 **kw)  # type: ignore[arg-type]


def factory_self_signed(fqdn: str = "rmx.lab.example", legacy_org: bool = False) -> Issued:
    """The RMX factory default: self-signed, SHA-1, RSA 2048, 10 years, Polycom subject."""
    subject = name(fqdn, DC="Polycom", O="Polycom RMX" if legacy_org else "Polycom MCU",
                   OU="Self Signed Certificate")
    return issue(subject, None, hash_name="sha1", days=3650, ekus=(SERVER_AUTH, CLIENT_AUTH))


def csr(fqdn: str, key: PrivateKey | None = None, sans: Sequence[str] = (), hash_name: str = "sha256",
        ekus: Sequence[x509.ObjectIdentifier] = ()) -> x509.CertificateSigningRequest:
    """A PKCS#10 request as the RMX or IIS creates it."""
    key = key or new_key()
    builder = x509.CertificateSigningRequestBuilder().subject_name(name(fqdn, O="rmxdiag lab"))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]),
                                        critical=False)
    if ekus:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(ekus)), critical=False)
    if hash_name in _LEGACY_OIDS:
        signed = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
        return x509.load_der_x509_csr(_legacy_resign(signed, key, hash_name))
    return builder.sign(key, _HASHES[hash_name]())  # type: ignore[arg-type]


def pem(obj: x509.Certificate | x509.CertificateSigningRequest) -> bytes:
    """PEM bytes of a certificate or request."""
    return obj.public_bytes(serialization.Encoding.PEM)


def der(obj: x509.Certificate | x509.CertificateSigningRequest) -> bytes:
    """DER bytes of a certificate or request."""
    return obj.public_bytes(serialization.Encoding.DER)
