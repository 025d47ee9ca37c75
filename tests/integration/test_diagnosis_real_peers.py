"""Every outcome of the mtls probe, produced by a real peer, sent through the diagnosis.

Each case starts a real peer on loopback (Kamailio, ``openssl s_server`` with the options the
case needs, a stdlib TLS server, a DNS server, or the kernel itself), runs the probe, checks that
the outcome (stage, reason, alert and sender) is the row of tests/support/routing.py's
MTLS_CASES it claims to be, then sends the probe's ACTUAL outcome through ``daemon.diagnosis``
and asserts the hint: the finding's own code (a specific finding is never re-labelled).

What stands in where no peer acts on its own:

- alerts 49 access_denied and 71 insufficient_security from the Front End: no OpenSSL or
  Kamailio server sends them for a client certificate (Schannel can), so a relay lets the real
  s_server do the handshake and answers the RMX certificate with that alert record instead;
- alert 51 decrypt_error from the Front End: the relay flips the last byte of the probe's real
  CertificateVerify signature, and the real s_server's own verification answers 51;
- alert 50 (alert_other): the relay breaks the length byte of the real ClientKeyExchange and
  the s_server answers decode_error;
- handshake_error (an alert WE send for a broken server message): the relay flips the last byte
  of the s_server's ServerKeyExchange signature, and our own verification sends 51;
- unreachable: the kernel answers a TCP connect to the broadcast address 255.255.255.255 with
  ENETUNREACH (no root, no route changes); connect_error: a link-local IPv6 address without a
  scope id, which the kernel refuses with EINVAL;
- connect/reset and tls/timeout have no row: Linux answers an RST to a SYN with ECONNREFUSED
  (refused), and a stalled handshake is stalled/no_answer, never tls/timeout;
- sip/reset (the reason itself is produced at the tls stage): measured with OpenSSL 3.0 and
  CPython 3.11, an RST from the Front End after the handshake reaches the probe as an EOF without
  an errno, exactly like a FIN, so a real peer that resets instead of answering is sip/closed;
  both are SIP_NO_RESPONSE.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from daemon.diagnosis.diagnose import diagnose, evidence_line
from daemon.engine import run_probe
from daemon.lab import pki
from daemon.report import Hint, Report, TargetReport, now_utc
from probes.model import ProbeOutcome, Severity
from probes.mtls import probe as mtls
from probes.mtls.outcome import Reason, Stage
from probes.mtls.result import RegistrarResult
from probes.target import CertificateSource, ProbeContext, Registrar, Settings, Target
from probes.tlswire import Sender
from tests.conftest import LabPKI
from tests.support import mtls as peers
from tests.support.kamailio import Registrar as Fe
from tests.support.kamailio import kamailio_registrar
from tests.support.mtls import Edit, alert_record, edit_message, handshake_types, on_client_certificate
from tests.support.reliability import dns_server
from tests.support.routing import MTLS_CASES

pytestmark = [pytest.mark.peer, pytest.mark.slow]
POOL = "pool.lab.example"
FE_ALERT, RMX_ALERT = Sender.FE, Sender.RMX


@dataclass
class Lab:
    """The lab PKI as files, the healthy RMX client spec and a Kamailio Front End."""

    pki: LabPKI
    dir: Path
    ca: Path
    spec: mtls.ClientSpec
    fe: Fe


@pytest.fixture(scope="module")
def lab(lab_pki: LabPKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Given the lab PKI written to files and Kamailio trusting the lab CA and the RMX name."""
    d = tmp_path_factory.mktemp("real-peers")
    ca = lab_pki.ca_bundle(d)
    paths = lab_pki.rmx.write(d, "rmx")
    spec = mtls.ClientSpec(cert=paths["cert"], key=paths["key"], chain=paths["chain"], ca_bundle=ca)
    with kamailio_registrar(d / "kam", lab_pki.fe, ca, trusted_cn=lab_pki.fqdn) as fe:
        yield Lab(lab_pki, d, ca, spec, fe)


def _run(port: int, spec: mtls.ClientSpec, *, host: str = "127.0.0.1", sni: str | None = POOL,
         sip: bool = False, timeout: float = 3.0, nameserver: tuple[str, int] | None = None) -> ProbeOutcome:
    return mtls.probe([Registrar(host=host, port=port, sni=sni, sip_options=sip, tls_min=spec.tls_min,
                                 tls_max=spec.tls_max)], spec, deadline=time.monotonic() + timeout,
                      nameserver=nameserver)


def _tls12(lab: Lab) -> mtls.ClientSpec:
    return replace(lab.spec, tls_max="1.2")


def _client(lab: Lab, name: str, **kw: object) -> mtls.ClientSpec:
    """The lab spec presenting a client certificate issued with ``kw`` (an RMX certificate flaw)."""
    issued = pki.issue(pki.name(lab.pki.fqdn), lab.pki.issuing, **kw).write(lab.dir / name, "rmx")  # type: ignore[arg-type]
    return replace(lab.spec, cert=issued["cert"], key=issued["key"], chain=issued["chain"])


def _fe_cert(**kw: object) -> Callable[[Lab], pki.Issued]:
    """A Front End certificate factory (CN fe01, SAN the pool FQDN unless ``kw`` says otherwise)."""
    def make(lab: Lab) -> pki.Issued:
        args: dict[str, object] = {"sans": [POOL]}
        args.update(kw)
        subject = pki.name(str(args.pop("cn", "fe01.lab.example")))
        return pki.issue(subject, lab.pki.issuing, **args)  # type: ignore[arg-type]
    return make


@contextlib.contextmanager
def _s_server(lab: Lab, extra: list[str], server: pki.Issued | None = None, verify: bool = True) -> Iterator[int]:
    with peers.s_server(lab.dir, server or lab.pki.fe, extra, verify_ca=lab.ca if verify else None) as port:
        yield port


def _relay_case(extra: list[str], **hooks: peers.RecordHook) -> Callable[[Lab], ProbeOutcome]:
    def produce(lab: Lab) -> ProbeOutcome:
        with _s_server(lab, ["-tls1_2", *extra]) as port, peers.tls12_relay(port, **hooks) as relay:
            return _run(relay, _tls12(lab))
    return produce


def _on_message(msg_type: int, change: Callable[[bytearray], None]) -> peers.RecordHook:
    """Apply ``change`` to the body of handshake message ``msg_type`` where it passes."""
    return lambda record: (Edit(forward=edit_message(record, msg_type, change))
                           if msg_type in handshake_types(record) else None)


def _flip_last(body: bytearray) -> None:
    body[-1] ^= 0xFF


def _break_length(body: bytearray) -> None:
    body[0] ^= 0x01


def _server_case(extra: list[str], spec: Callable[[Lab], mtls.ClientSpec] | None = None,
                 server: Callable[[Lab], pki.Issued] | None = None, sni: str = POOL,
                 verify: bool = True) -> Callable[[Lab], ProbeOutcome]:
    def produce(lab: Lab) -> ProbeOutcome:
        with _s_server(lab, extra, server(lab) if server else None, verify) as port:
            return _run(port, spec(lab) if spec else lab.spec, sni=sni)
    return produce


def _kamailio(spec: Callable[[Lab], mtls.ClientSpec] | None = None) -> Callable[[Lab], ProbeOutcome]:
    return lambda lab: _run(lab.fe.port, spec(lab) if spec else lab.spec, sip=True)


def _dns(answer: bool) -> Callable[[Lab], ProbeOutcome]:
    def produce(lab: Lab) -> ProbeOutcome:
        with dns_server(answer=answer) as ns:
            return _run(5061, lab.spec, host="fe.lab.example", sni=None, timeout=1.5, nameserver=ns)
    return produce


def _weak_dh(lab: Lab) -> ProbeOutcome:
    dh = lab.dir / "dh1024.pem"
    if not dh.exists():
        subprocess.run(["openssl", "dhparam", "-out", str(dh), "1024"], check=True, capture_output=True, timeout=120)
    return _server_case(["-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0", "-dhparam", str(dh)])(lab)


def _revoked(lab: Lab) -> ProbeOutcome:
    now = dt.datetime.now(dt.UTC)
    revoked = x509.RevokedCertificateBuilder().serial_number(lab.pki.rmx.cert.serial_number).revocation_date(
        now - dt.timedelta(hours=1)).build()
    crl = (x509.CertificateRevocationListBuilder().issuer_name(lab.pki.issuing.cert.subject)
           .last_update(now - dt.timedelta(hours=1)).next_update(now + dt.timedelta(days=7))
           .add_revoked_certificate(revoked).sign(lab.pki.issuing.key, hashes.SHA256()))
    path = lab.dir / "issuing.crl.pem"
    path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return _server_case(["-tls1_2", "-crl_check", "-CRL", str(path)])(lab)


def _scripted(reply: bytes, hold: float = 10.0, reset: bool = False,
              timeout: float = 3.0) -> Callable[[Lab], ProbeOutcome]:
    def produce(lab: Lab) -> ProbeOutcome:
        with peers.scripted_tcp(reply, hold, reset) as port:
            return _run(port, lab.spec, timeout=timeout)
    return produce


def _tls_server(context: Callable[[Lab], contextlib.AbstractContextManager[int]],
                timeout: float = 3.0) -> Callable[[Lab], ProbeOutcome]:
    def produce(lab: Lab) -> ProbeOutcome:
        with context(lab) as port:
            return _run(port, lab.spec, sip=True, timeout=timeout)
    return produce


def _blackhole(lab: Lab) -> ProbeOutcome:
    with peers.syn_blackhole() as port:
        return _run(port, lab.spec, timeout=1.0)


def _tarpit(lab: Lab) -> ProbeOutcome:
    with peers.tarpit() as port:
        return _run(port, lab.spec, timeout=1.0)


def _silent_sip(lab: Lab) -> ProbeOutcome:
    with _s_server(lab, []) as port:
        return _run(port, lab.spec, sip=True, timeout=1.5)


def _other_ca_client(lab: Lab) -> mtls.ClientSpec:
    other = pki.issue(pki.name(lab.pki.fqdn), lab.pki.other_root).write(lab.dir / "other", "rmx")
    return replace(lab.spec, cert=other["cert"], key=other["key"], chain=other["chain"])


def _stranger(lab: Lab) -> mtls.ClientSpec:
    stranger = pki.issue(pki.name("stranger.lab.example"), lab.pki.issuing).write(lab.dir / "stranger", "rmx")
    return replace(lab.spec, cert=stranger["cert"], key=stranger["key"], chain=stranger["chain"])


def _untrusted(lab: Lab) -> ProbeOutcome:
    only_other = lab.dir / "only-other.pem"
    only_other.write_bytes(pki.pem(lab.pki.other_root.cert))
    with _s_server(lab, []) as port:
        return _run(port, replace(lab.spec, ca_bundle=only_other))


_NOW = dt.datetime.now(dt.UTC)
_SIP_503 = (b"SIP/2.0 503 Service Unavailable\r\nServer: RTC/6.0\r\n"
            b'ms-diagnostics: 5000;reason="Server internal error";source="fe01.lab.example"\r\n'
            b"Content-Length: 0\r\n\r\n")
_INJECT = {n: on_client_certificate(Edit(end="close", reply=alert_record(n))) for n in (49, 71)}


@dataclass(frozen=True)
class Real:
    """One real way to end a probe, and the MTLS_CASES row it must produce."""

    name: str
    produce: Callable[[Lab], ProbeOutcome]
    stage: Stage
    reason: Reason
    alert: int | None = None
    sender: Sender | None = None


REAL: tuple[Real, ...] = (
    Real("nxdomain", _dns(True), Stage.RESOLVE, Reason.DNS_FAILURE),
    Real("silent_resolver", _dns(False), Stage.RESOLVE, Reason.DNS_TIMEOUT),
    Real("closed_port", lambda lab: _run(peers.closed_port(), lab.spec), Stage.CONNECT, Reason.REFUSED),
    Real("syn_dropped", _blackhole, Stage.CONNECT, Reason.TIMEOUT),
    Real("broadcast_address", lambda lab: _run(5061, lab.spec, host="255.255.255.255", sni=POOL),
         Stage.CONNECT, Reason.UNREACHABLE),
    Real("link_local_without_scope", lambda lab: _run(5061, lab.spec, host="fe80::1", sni=POOL),
         Stage.CONNECT, Reason.CONNECT_ERROR),
    Real("tarpit", _tarpit, Stage.TLS, Reason.NO_TLS_ANSWER),
    Real("stall_mid_handshake", _scripted(b"\x16\x03\x03\x00\x40\x02\x00\x00", timeout=1.0),
         Stage.TLS, Reason.STALLED),
    Real("plain_sip_port", _scripted(b"SIP/2.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
         Stage.TLS, Reason.NOT_TLS),
    Real("fin_to_client_hello", _scripted(b"", hold=0), Stage.TLS, Reason.CLOSED),
    Real("rst_to_client_hello", _scripted(b"", hold=0, reset=True), Stage.TLS, Reason.RESET),
    Real("fin_after_client_cert", _relay_case([], client=on_client_certificate(Edit(end="close"))),
         Stage.TLS, Reason.CLOSED_AFTER_CLIENT_CERT),
    Real("rst_after_client_cert", _relay_case([], client=on_client_certificate(Edit(end="reset"))),
         Stage.TLS, Reason.RESET_AFTER_CLIENT_CERT),
    Real("no_common_cipher", _server_case(["-tls1_2", "-cipher", "CAMELLIA256-SHA"]),
         Stage.TLS, Reason.ALERT_HANDSHAKE_FAILURE, 40, FE_ALERT),
    Real("client_sigalgs_sha1_only", _server_case(["-tls1_2", "-client_sigalgs", "RSA+SHA1",
                                                   "-cipher", "DEFAULT:@SECLEVEL=0"]),
         Stage.TLS, Reason.ALERT_HANDSHAKE_FAILURE, 40, FE_ALERT),
    Real("client_cert_not_yet_valid", _server_case(["-tls1_2"], lambda lab: _client(
        lab, "nyv", not_before=_NOW + dt.timedelta(days=5), not_after=_NOW + dt.timedelta(days=50))),
         Stage.TLS, Reason.ALERT_BAD_CERTIFICATE, 42, FE_ALERT),
    Real("client_cert_server_auth_only", _server_case(["-tls1_2"], lambda lab: _client(
        lab, "sa", ekus=[pki.SERVER_AUTH])), Stage.TLS, Reason.ALERT_UNSUPPORTED_CERTIFICATE, 43, FE_ALERT),
    Real("client_cert_revoked", _revoked, Stage.TLS, Reason.ALERT_CERTIFICATE_REVOKED, 44, FE_ALERT),
    Real("client_cert_expired", _server_case(["-tls1_2"], lambda lab: _client(
        lab, "exp", not_before=_NOW - dt.timedelta(days=400), not_after=_NOW - dt.timedelta(days=10))),
         Stage.TLS, Reason.ALERT_CERTIFICATE_EXPIRED, 45, FE_ALERT),
    Real("client_cert_without_required_policy", _server_case(["-tls1_2", "-explicit_policy"]),
         Stage.TLS, Reason.ALERT_CERTIFICATE_UNKNOWN, 46, FE_ALERT),
    Real("client_cert_unknown_ca", _kamailio(_other_ca_client),
         Stage.TLS, Reason.ALERT_UNKNOWN_CA, 48, FE_ALERT),
    Real("access_denied_injected", _relay_case([], client=_INJECT[49]),
         Stage.TLS, Reason.ALERT_ACCESS_DENIED, 49, FE_ALERT),
    Real("certificate_verify_tampered", _relay_case([], client=_on_message(15, _flip_last)),
         Stage.TLS, Reason.ALERT_DECRYPT_ERROR, 51, FE_ALERT),
    Real("tls13_only_server", _server_case(["-tls1_3"], _tls12), Stage.TLS, Reason.ALERT_PROTOCOL_VERSION,
         70, FE_ALERT),
    Real("insufficient_security_injected", _relay_case([], client=_INJECT[71]),
         Stage.TLS, Reason.ALERT_INSUFFICIENT_SECURITY, 71, FE_ALERT),
    Real("no_client_cert_tls13", _kamailio(lambda lab: replace(lab.spec, cert=None, key=None, chain=None)),
         Stage.TLS, Reason.ALERT_CERTIFICATE_REQUIRED, 116, FE_ALERT),
    Real("client_key_exchange_broken", _relay_case([], client=_on_message(16, _break_length)),
         Stage.TLS, Reason.ALERT_OTHER, 50, FE_ALERT),
    Real("fe_root_unknown_to_us", _untrusted, Stage.TLS, Reason.SERVER_CERT_UNTRUSTED, 48,
         RMX_ALERT),
    Real("fe_cert_without_the_pool_name", _server_case([], server=_fe_cert(sans=["fe01.lab.example"])),
         Stage.TLS, Reason.SERVER_CERT_NAME_MISMATCH, 42, RMX_ALERT),
    Real("fe_cert_pool_in_cn_not_in_san", _server_case([], server=_fe_cert(cn=POOL, sans=["fe01.lab.example"])),
         Stage.TLS, Reason.SERVER_CERT_NAME_MISMATCH, 42, RMX_ALERT),
    Real("fe_cert_expired", _server_case([], server=_fe_cert(not_before=_NOW - dt.timedelta(days=400),
                                                             not_after=_NOW - dt.timedelta(days=30))),
         Stage.TLS, Reason.SERVER_CERT_EXPIRED, 45, RMX_ALERT),
    Real("fe_cert_not_yet_valid", _server_case([], server=_fe_cert(not_before=_NOW + dt.timedelta(days=5),
                                                                   not_after=_NOW + dt.timedelta(days=50))),
         Stage.TLS, Reason.SERVER_CERT_NOT_YET_VALID, 42, RMX_ALERT),
    Real("fe_cert_client_auth_only", _server_case([], server=_fe_cert(ekus=[pki.CLIENT_AUTH])),
         Stage.TLS, Reason.SERVER_CERT_INVALID, 43, RMX_ALERT),
    Real("server_picks_tls10_below_our_min", _server_case(["-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"],
                                                          lambda lab: replace(lab.spec, tls_min="1.1", tls_max="1.2")),
         Stage.TLS, Reason.LOCAL_VERSION_REFUSED, 70, RMX_ALERT),
    Real("fe_cert_sha1_signed", _server_case(["-cipher", "DEFAULT:@SECLEVEL=0"], server=_fe_cert(hash_name="sha1")),
         Stage.TLS, Reason.LOCAL_POLICY_REFUSED, 42, RMX_ALERT),
    Real("fe_cert_rsa1024", _server_case(["-cipher", "DEFAULT:@SECLEVEL=0"],
                                         server=_fe_cert(key=pki.new_key(size=1024))),
         Stage.TLS, Reason.LOCAL_POLICY_REFUSED, 42, RMX_ALERT),
    Real("fe_weak_dh_group", _weak_dh, Stage.TLS, Reason.LOCAL_POLICY_REFUSED, 40, RMX_ALERT),
    Real("server_key_exchange_tampered", _relay_case([], server=_on_message(12, _flip_last)),
         Stage.TLS, Reason.HANDSHAKE_ERROR, 51, RMX_ALERT),
    Real("kamailio_200", _kamailio(), Stage.SIP, Reason.OK),
    Real("kamailio_403_untrusted_name", _kamailio(_stranger), Stage.SIP, Reason.NOT_TRUSTED),
    Real("sip_503", _tls_server(lambda lab: peers.drip_sip_server(lab.pki.fe, lab.dir / "e503", interval=0,
                                                                  answer=_SIP_503)),
         Stage.SIP, Reason.ERROR_RESPONSE),
    Real("http_answer", _tls_server(lambda lab: peers.drip_sip_server(
        lab.pki.fe, lab.dir / "http", interval=0, answer=b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")),
         Stage.SIP, Reason.BAD_RESPONSE),
    Real("silent_after_handshake", _silent_sip, Stage.SIP, Reason.TIMEOUT),
    Real("fin_instead_of_answer", _tls_server(lambda lab: peers.tls_then_close(lab.pki.fe, lab.dir)),
         Stage.SIP, Reason.CLOSED),
)


def _registrar(out: ProbeOutcome) -> RegistrarResult:
    assert isinstance(out.result, mtls.MtlsResult)
    return out.result.registrars[0]


def _citing(out: ProbeOutcome, hints: tuple[Hint, ...]) -> list[Hint]:
    line = evidence_line(out.probe, out.findings[0])
    return [h for h in hints if line in h.evidence]


def test_every_reason_is_produced_by_a_real_peer() -> None:
    # Given the real cases, Then every Reason of the outcome enum is among them (but `overloaded`:
    # rmxdiag's own load, no peer's doing; test_run_at_scale starves a probe of a real Front End for it)
    assert {r.reason for r in REAL} == set(Reason) - {Reason.OVERLOADED}


@pytest.mark.parametrize("case", REAL, ids=[r.name for r in REAL])
def test_real_outcome_through_the_diagnosis(lab: Lab, case: Real) -> None:
    """Given a real peer that ends the probe this way, When the probe's actual outcome is diagnosed,
    Then it is the documented row (stage, reason, alert, sender) and its hint is the finding's own code."""
    out = case.produce(lab)
    r = _registrar(out)
    seen = (r.stage, r.reason, r.alert, r.alert_direction)
    assert seen == (case.stage, case.reason, case.alert, case.sender), r.describe()
    assert any((c.stage, c.reason, c.alert, c.sender) == seen for c in MTLS_CASES), "a row of the routing table"
    hints = diagnose([out])
    if r.reason is Reason.OK:
        assert out.findings[0].code == "MTLS_OK" and hints == ()
        return
    finding = out.findings[0]
    (hint,) = _citing(out, hints)
    assert hint.code == finding.code == (r.hint.code if r.hint else None)
    assert hint.severity is finding.severity and hint.remediation


def test_a_row_per_real_case_alert_sender_included() -> None:
    # Given the routing table's mtls rows, Then each one with an alert is produced by some real case
    real = {(r.stage, r.reason, r.alert, r.sender) for r in REAL}
    rows = {(c.stage, c.reason, c.alert, c.sender) for c in MTLS_CASES}
    assert rows - real == {(Stage.SIP, Reason.RESET, None, None)}  # see the module docstring


# --- the five misroutes of the issue, with their fixes ---------------------------------------------

def _only_hint(out: ProbeOutcome) -> Hint:
    (hint,) = diagnose([out])
    return hint


@pytest.mark.parametrize("name", ["fe_cert_without_the_pool_name", "fe_cert_pool_in_cn_not_in_san"])
def test_fe_cert_without_the_pool_name_says_so(lab: Lab, name: str) -> None:
    """Given an FE certificate that does not carry the pool FQDN (verify 62, we send alert 42), Then
    REGISTRAR_CERT_NAME_MISMATCH with its fix (point at the name / reissue), not "add the FE root"."""
    out = next(r for r in REAL if r.name == name).produce(lab)
    assert _registrar(out).verify_code == 62
    hint = _only_hint(out)
    assert hint.code == "REGISTRAR_CERT_NAME_MISMATCH" and hint.severity is Severity.CRITICAL
    assert "pool FQDN" in hint.remediation[0] and not any("Trusted Certificates" in s for s in hint.remediation)


def test_fe_cert_not_yet_valid_is_expired_or_not_yet_valid(lab: Lab) -> None:
    """Given an FE certificate valid only from next week (verify 9, we send 42), Then
    REGISTRAR_CERT_EXPIRED (expired or not yet valid) with renew + NTP, not untrusted."""
    out = next(r for r in REAL if r.name == "fe_cert_not_yet_valid").produce(lab)
    assert _registrar(out).verify_code == 9
    hint = _only_hint(out)
    assert hint.code == "REGISTRAR_CERT_EXPIRED" and "not yet valid" in hint.title
    assert any("NTP" in step for step in hint.remediation)


def test_fe_cert_without_server_auth_is_invalid_not_untrusted(lab: Lab) -> None:
    """Given an FE certificate with only the Client Authentication EKU (verify 26 invalid purpose, we
    send 43), Then REGISTRAR_CERT_INVALID with "reissue with Server Authentication", not "add the FE
    root to the RMX" (the root is already trusted)."""
    out = next(r for r in REAL if r.name == "fe_cert_client_auth_only").produce(lab)
    assert _registrar(out).verify_code == 26
    hint = _only_hint(out)
    assert hint.code == "REGISTRAR_CERT_INVALID" and hint.severity is Severity.CRITICAL
    assert "Server Authentication" in hint.remediation[0]
    assert not any("Trusted Certificates" in s for s in hint.remediation)


@pytest.mark.parametrize(("name", "verify_code"), [("fe_cert_sha1_signed", 68), ("fe_cert_rsa1024", 66),
                                                   ("fe_weak_dh_group", None)])
def test_our_own_policy_is_a_local_policy_warning(lab: Lab, name: str, verify_code: int | None) -> None:
    """Given an FE our security level refuses (SHA-1 signature, RSA-1024 key: verify 68/66, alert 42
    from us; a 1024-bit DH group: alert 40 from us), Then TLS_LOCAL_POLICY at warning (exit 1),
    never REGISTRAR_CERT_UNTRUSTED or TLS_HANDSHAKE_FAILURE."""
    out = next(r for r in REAL if r.name == name).produce(lab)
    r = _registrar(out)
    assert r.verify_code == verify_code and r.alert_direction is Sender.RMX
    hint = _only_hint(out)
    assert (hint.code, hint.severity) == ("TLS_LOCAL_POLICY", Severity.WARNING)
    assert "--tls-min 1.0" in hint.remediation[0]
    assert Report(now_utc(), (TargetReport("rmx", (out,), (hint,)),)).exit_code == 1


def test_reset_with_an_email_and_serial_issuer_is_not_an_unknown_ca(lab: Lab) -> None:
    """Given an RMX certificate whose issuer's name holds emailAddress= and serialNumber= (rendered
    differently by cryptography and by the wire parser), a Front End that lists that issuer and
    resets right after the RMX certificate, When the certificate and mtls probes are diagnosed
    together, Then no "CA list lacks the issuer" is invented: CLIENT_CERT_REJECTED, not UNKNOWN_CA."""
    subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "rmxdiag lab"),
                         x509.NameAttribute(NameOID.SERIAL_NUMBER, "CA-0042"),
                         x509.NameAttribute(NameOID.EMAIL_ADDRESS, "pki@lab.example"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "rmxdiag Mail Issuing CA")])
    issuing = pki.issue(subject, lab.pki.root, ca=True, path_length=0, ekus=None)
    rmx = pki.issue(pki.name(lab.pki.fqdn), issuing, cdp=["http://127.0.0.1:9/lab.crl"]).write(lab.dir / "mail", "rmx")
    trust = lab.dir / "mail-trust.pem"
    trust.write_bytes(pki.pem(lab.pki.root.cert) + pki.pem(issuing.cert) + pki.pem(lab.pki.issuing.cert))
    spec = replace(lab.spec, cert=rmx["cert"], key=rmx["key"], chain=rmx["chain"], tls_max="1.2")
    with peers.s_server(lab.dir, lab.pki.fe, ["-tls1_2"], verify_ca=trust) as port, \
            peers.reset_after_client_cert(port) as relay:
        out = _run(relay, spec)
    r = _registrar(out)
    assert r.reason is Reason.RESET_AFTER_CLIENT_CERT and r.rmx_issuer_listed is True
    assert r.rmx_issuer is not None and "1.2.840.113549.1.9.1=" in r.rmx_issuer, "cryptography's rendering"
    assert any("emailAddress=pki@lab.example" in name for name in r.ca_names or ()), "the wire parser's"
    certificate = run_probe("certificate", Target("rmx", fqdn=lab.pki.fqdn, ca_bundle=trust, certificate=
                                                  CertificateSource("pem", path=rmx["cert"], key=rmx["key"],
                                                                    chain=rmx["chain"])),
                            Settings(), ProbeContext(now=dt.datetime.now(dt.UTC), deadline=time.monotonic() + 10))
    hints = diagnose([certificate, out])
    codes = [h.code for h in hints]
    assert "CLIENT_CERT_UNKNOWN_CA" not in codes and "CAPTURE_TRUNCATED_CA_LIST" not in codes
    assert codes[0] == "CLIENT_CERT_REJECTED", codes
    assert not any("not the RMX issuer" in line for h in hints for line in h.evidence)
