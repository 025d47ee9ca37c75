"""The lab's scenarios: one classic RMX ↔ Lync fault each, and the material that reproduces it.

A scenario says what the RMX holds (its certificate), how the simulated Front End is set up (what
it trusts, which names are trusted application computers, its TLS window, whether it runs at all),
which alarms the RMX shows (the Active Alarms texts of the RMX administrator's guides) and the
root cause rmxdiag must name. The material (PKI files, alarm report) is written by
:func:`write_material`; nothing here opens a socket.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from daemon.lab import pki
from daemon.lab.files import fresh, write_new

RMX_FQDN = "rmx.lab.example"
POOL_FQDN = "pool.lab.example"
FE_FQDN = "fe01.lab.example"
# Never fetched unless revocation checks are switched on; port 9 (discard) keeps it local.
LAB_CDP = "http://127.0.0.1:9/contoso-issuing.crl"


@dataclass(frozen=True)
class Scenario:
    """One lab scenario; ``expect`` is the root-cause hint code (None: nothing wrong)."""

    name: str
    summary: str
    expect: str | None
    # good | foreign-ca | wrong-cn | server-eku-only | expired | expiring | factory | csr
    rmx_cert: str = "good"
    rmx_sends_chain: bool = True  # False: the RMX holds (and sends) its leaf only
    intermediate_known: bool = True  # False: neither the Front End nor rmxdiag's bundle has the issuing CA
    fe_issuer: str = "enterprise"  # "private": the Front End's certificate comes from a CA the RMX lacks
    trusted_names: tuple[str, ...] = (RMX_FQDN,)
    fe_tls: tuple[str, str] = ("1.0", "1.3")  # the Front End's TLS window
    rmx_tls: tuple[str, str] = ("1.2", "1.2")  # what the RMX firmware speaks
    registrar_up: bool = True
    alarms: tuple[str, ...] = ()


_HANDSHAKE = "SIP TLS: Registration handshake failure"

SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("healthy", "CA-signed certificate, trusted CA, trusted application: OPTIONS gets 200", None),
    Scenario("untrusted-ca", "RMX certificate from a CA the Front End does not trust: Schannel resets",
             "CLIENT_CERT_UNKNOWN_CA", rmx_cert="foreign-ca", alarms=(_HANDSHAKE,)),
    Scenario("name-mismatch", "certificate CN is an old name, not the RMX signaling FQDN", "CERT_CN_MISMATCH",
             rmx_cert="wrong-cn",
             alarms=("SIP TLS: Certificate subject name is not valid or DNS failed to resolve this name",)),
    Scenario("missing-client-eku", "certificate has Server Authentication only, no Client Authentication",
             "CERT_EKU_MISSING", rmx_cert="server-eku-only", alarms=(_HANDSHAKE,)),
    Scenario("expired", "the RMX certificate expired last month", "CERT_EXPIRED", rmx_cert="expired",
             alarms=("SIP TLS: Certificate has expired", _HANDSHAKE)),
    Scenario("factory-self-signed", "the RMX still presents its factory self-signed SHA-1 certificate",
             "CERT_SELF_SIGNED", rmx_cert="factory", alarms=(_HANDSHAKE,)),
    Scenario("not-trusted-app", "MTLS works but the RMX is no trusted application computer: 403",
             "SIP_NOT_TRUSTED", trusted_names=("dma.lab.example",),
             alarms=("SIP TLS: Registration server not responding",)),
    Scenario("registrar-down", "nothing listens on the Front End's SIP TLS port", "REGISTRAR_UNREACHABLE",
             registrar_up=False, alarms=("SIP TLS: Registration transport error",)),
    Scenario("tls-version-mismatch", "old RMX firmware offers TLS 1.0 only; the Front End requires 1.2",
             "TLS_VERSION_MISMATCH", fe_tls=("1.2", "1.3"), rmx_tls=("1.0", "1.0"), alarms=(_HANDSHAKE,)),
    Scenario("expiring-soon", "the RMX certificate expires in 10 days (everything still works)",
             "CERT_EXPIRING_SOON", rmx_cert="expiring", alarms=("SIP TLS: Certificate is about to expire",)),
    # The catalogue's CLIENT_CERT_UNKNOWN_CA covers "the RMX does not send its intermediates"; the
    # certificate probe's missing-intermediate finding is its evidence.
    Scenario("missing-intermediate", "the RMX sends its leaf only and the Front End lacks the issuing CA: reset",
             "CLIENT_CERT_UNKNOWN_CA", rmx_sends_chain=False, intermediate_known=False, alarms=(_HANDSHAKE,)),
    Scenario("rmx-lacks-fe-root", "the Front End's certificate comes from a CA the RMX does not trust",
             "REGISTRAR_CERT_UNTRUSTED", fe_issuer="private", alarms=(_HANDSHAKE,)),
    Scenario("request-pasted-as-certificate", "the certificate request (CSR) was installed instead of the "
             "issued certificate", "CERT_IS_REQUEST", rmx_cert="csr",
             alarms=("SIP TLS: Failed to load or verify certificate files",)),
)}

# The default shows the product's point: the classic failure, named from several angles at once.
DEFAULT_SCENARIO = "untrusted-ca"


@dataclass(frozen=True)
class Material:
    """Paths of everything one scenario run needs."""

    fe_cert: Path
    fe_key: Path
    fe_trust: Path  # what the Front End trusts (its Trusted Root + Intermediate stores)
    ca_bundle: Path  # the enterprise trust anchors rmxdiag is configured with
    rmx_cert: Path  # what is installed on the RMX (a certificate, or a CSR by mistake)
    rmx_key: Path
    rmx_chain: Path | None
    alarm_report: Path


def _pem_write(path: Path, data: bytes, private: bool = False) -> Path:
    return write_new(path, data, private)


def _rmx_identity(kind: str, issuing: pki.Issued, foreign: pki.Issued) -> tuple[bytes, bytes, bytes | None]:
    """(PEM installed on the RMX as its certificate, its private key PEM, its chain PEM or None)."""
    subject = pki.name(RMX_FQDN, O="Contoso")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    if kind == "csr":
        key = pki.new_key()
        request = pki.Issued(pki.issue(subject, None, key=key).cert, key)  # only for its key PEM
        return pki.pem(pki.csr(RMX_FQDN, key=key)), request.key_pem, None
    issued = {
        "good": lambda: pki.issue(subject, issuing, cdp=[LAB_CDP]),
        "foreign-ca": lambda: pki.issue(subject, foreign, cdp=[LAB_CDP]),
        "wrong-cn": lambda: pki.issue(pki.name("rmx-old.lab.example", O="Contoso"), issuing, cdp=[LAB_CDP]),
        "server-eku-only": lambda: pki.issue(subject, issuing, ekus=(pki.SERVER_AUTH,), cdp=[LAB_CDP]),
        "expiring": lambda: pki.issue(subject, issuing, cdp=[LAB_CDP], not_before=now - dt.timedelta(days=355),
                                      not_after=now + dt.timedelta(days=10)),
        "expired": lambda: pki.issue(subject, issuing, cdp=[LAB_CDP], not_before=now - dt.timedelta(days=395),
                                     not_after=now - dt.timedelta(days=30)),
        "factory": lambda: pki.factory_self_signed(RMX_FQDN),
    }[kind]()
    return issued.cert_pem, issued.key_pem, (issued.chain_pem if issued.chain else None)


@dataclass(frozen=True)
class LabPKI:
    """The enterprise CAs (which the Front End trusts), a foreign CA, and the Front End's identity."""

    root: pki.Issued
    issuing: pki.Issued
    foreign: pki.Issued
    fe: pki.Issued


def make_pki() -> LabPKI:
    """Generate the lab PKI (fresh keys per CA: the generator's key cache would share one key)."""
    root = pki.root_ca("Contoso Lab Root CA", key=pki.new_key(fresh=True))
    issuing = pki.intermediate_ca(root, "Contoso Lab Issuing CA", key=pki.new_key(fresh=True))
    foreign_root = pki.root_ca("Fabrikam Partner Root CA", key=pki.new_key(fresh=True))
    foreign = pki.intermediate_ca(foreign_root, "Fabrikam Partner Issuing CA", key=pki.new_key(fresh=True))
    fe = pki.issue(pki.name(FE_FQDN, O="Contoso"), issuing, sans=[POOL_FQDN, FE_FQDN], ip_sans=["127.0.0.1"],
                   cdp=[LAB_CDP], key=pki.new_key(fresh=True))
    return LabPKI(root, issuing, foreign, fe)


def write_material(scenario: Scenario, workdir: Path, lab_pki: LabPKI | None = None) -> Material:
    """Write the lab PKI files and the RMX alarm report for ``scenario`` under ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    lp = lab_pki or make_pki()
    fe = lp.fe
    if scenario.fe_issuer == "private":
        # A Front End certificate from an internal CA that was never given to the RMX.
        private = pki.root_ca("Contoso Lync Internal Root CA", key=pki.new_key(fresh=True))
        fe = pki.issue(pki.name(FE_FQDN, O="Contoso"), private, sans=[POOL_FQDN, FE_FQDN],
                       ip_sans=["127.0.0.1"], cdp=[LAB_CDP], key=lp.fe.key)
    fe_paths = fe.write(workdir, "frontend")
    # The Front End sends its intermediates (and root) itself, as a Windows server does.
    fe_paths["cert"] = _pem_write(workdir / "frontend-fullchain.pem", fe.cert_pem + fe.chain_pem)
    enterprise = pki.pem(lp.root.cert) + (pki.pem(lp.issuing.cert) if scenario.intermediate_known else b"")
    fe_trust = _pem_write(workdir / "frontend-trusted-roots.pem", enterprise)
    ca_bundle = _pem_write(workdir / "enterprise-ca-bundle.pem", enterprise)
    installed, key_pem, chain_pem = _rmx_identity(scenario.rmx_cert, lp.issuing, lp.foreign)
    chain_pem = chain_pem if scenario.rmx_sends_chain else None
    rmx_cert = _pem_write(workdir / "rmx-cert.pem", installed)
    rmx_key = _pem_write(workdir / "rmx-key.pem", key_pem, private=True)
    chain = _pem_write(workdir / "rmx-chain.pem", chain_pem) if chain_pem else None
    if chain is None:
        fresh(workdir / "rmx-chain.pem")  # an earlier run's chain would be offered as this one's
    report = write_alarm_report(workdir / "rmx-active-alarms.txt", scenario.alarms)
    return Material(fe_paths["cert"], fe_paths["key"], fe_trust, ca_bundle, rmx_cert, rmx_key, chain, report)


def write_alarm_report(path: Path, texts: tuple[str, ...], now: dt.datetime | None = None) -> Path:
    """An RMX Manager 'Active Alarms' export: tab-separated ID, Time, GMT Time, Category, Level, Description."""
    now = now or dt.datetime.now(dt.UTC).replace(microsecond=0)
    lines = ["ID\tTime\tGMT Time\tCategory\tLevel\tDescription"]
    for number, text in enumerate(texts, 1):
        when = now - dt.timedelta(minutes=5 * (len(texts) - number + 1))
        stamp = when.strftime("%d/%m/%Y %H:%M:%S")
        lines.append(f"{number}\t{stamp}\t{stamp}\tGeneral\tMajor\t{text}")
    return write_new(path, ("\n".join(lines) + "\n").encode("utf-8"))
