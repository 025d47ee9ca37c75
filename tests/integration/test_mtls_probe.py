"""The mtls probe against real peers on loopback: one test per outcome reason (hint code + evidence)."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.lab import pki
from probes.model import ProbeOutcome
from probes.mtls import probe as mtls
from probes.mtls.result import RegistrarResult
from probes.target import Registrar
from tests.conftest import LabPKI
from tests.support import mtls as peers
from tests.support.kamailio import MS_DIAG_REASON, kamailio_registrar
from tests.support.kamailio import Registrar as Fe

pytestmark = pytest.mark.peer
POOL = "pool.lab.example"


@dataclass
class Lab:
    """The lab PKI written to files, with the client spec of the healthy RMX."""

    pki: LabPKI
    dir: Path
    ca: Path
    spec: mtls.ClientSpec


@pytest.fixture(scope="module")
def lab(lab_pki: LabPKI, tmp_path_factory: pytest.TempPathFactory) -> Lab:
    """Given the lab PKI as files (FE trust anchors, RMX cert/key/chain)."""
    d = tmp_path_factory.mktemp("mtls")
    ca = lab_pki.ca_bundle(d)
    paths = lab_pki.rmx.write(d, "rmx")
    return Lab(lab_pki, d, ca, mtls.ClientSpec(cert=paths["cert"], key=paths["key"], chain=paths["chain"],
                                                ca_bundle=ca))


@pytest.fixture(scope="module")
def fe(lab: Lab) -> Iterator[Fe]:
    """Given a Kamailio Front End that trusts the lab CA and the RMX name."""
    with kamailio_registrar(lab.dir / "kam", lab.pki.fe, lab.ca, trusted_cn=lab.pki.fqdn) as registrar:
        yield registrar


def _probe(port: int, spec: mtls.ClientSpec, *, sni: str | None = POOL, timeout: float = 3.0,
           host: str = "127.0.0.1", sip_options: bool = True) -> tuple[ProbeOutcome, RegistrarResult, float]:
    start = time.monotonic()
    out = mtls.probe([Registrar(host=host, port=port, sni=sni, sip_options=sip_options, tls_min=spec.tls_min,
                                tls_max=spec.tls_max)], spec, deadline=start + timeout)
    elapsed = time.monotonic() - start
    assert isinstance(out.result, mtls.MtlsResult)
    return out, out.result.registrars[0], elapsed


def _overhead(lab: Lab) -> float:
    """What one probe costs on this machine right now: a probe of a closed port (refused at once)."""
    return _probe(peers.closed_port(), lab.spec)[2]


def _within(deadline: float, lab: Lab) -> float:
    """A bound for a probe that must stop at ``deadline``: plus a generous multiple of the overhead."""
    return deadline + max(0.3, 10 * _overhead(lab))


def _quick(lab: Lab) -> float:
    """A bound for a probe that must fail fast (not wait for its deadline): a generous multiple of the overhead."""
    return max(0.5, 20 * _overhead(lab))


def _codes(out: ProbeOutcome) -> list[str]:
    return [f.code for f in out.findings]


def test_healthy_kamailio_answers_200(fe: Fe, lab: Lab) -> None:
    """Given the healthy RMX cert, When probed, Then MTLS_OK with TLS version, 200 and both chains."""
    out, r, _ = _probe(fe.port, lab.spec)
    assert out.failure is None and out.healthy
    assert _codes(out) == ["MTLS_OK"]
    assert r.sip_status == 200 and r.tls_version == "TLSv1.3" and r.client_cert_requested
    assert r.server_chain[0].subject == "CN=fe01.lab.example"
    assert set(out.result.phases) == {"resolve", "connect", "tls", "sip"}  # type: ignore[union-attr]
    roles = {(role, pos) for role, pos, _ in out.result.cert_not_after}  # type: ignore[union-attr]
    assert ("client", 0) in roles and ("server", 0) in roles
    assert r.rmx_issuer_listed is True and any("Issuing CA" in n for n in r.ca_names or ())


def test_cli_healthy_exits_0_and_json(fe: Fe, lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    """Given the CLI, When it probes the healthy Kamailio with --format json, Then exit 0 and MTLS_OK."""
    spec = lab.spec
    code = main(["probe", f"127.0.0.1:{fe.port}", "--sni", POOL, "--cert", str(spec.cert), "--key", str(spec.key),
                 "--chain", str(spec.chain), "--ca-bundle", str(lab.ca), "--format", "json", "--timeout", "3"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    probe = doc["targets"][0]["probes"][0]
    assert probe["findings"][0]["code"] == "MTLS_OK"
    assert probe["result"]["registrars"][0]["sip_status"] == 200


def test_cli_text_ladder_and_pfx(fe: Fe, lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    """Given a PFX + password file, When probing in text, Then the ladder shows both directions."""
    pfx = lab.dir / "rmx.pfx"
    pfx.write_bytes(lab.pki.rmx.pfx(b"s3cret-pw"))
    pw = lab.dir / "pw.txt"
    pw.write_text("s3cret-pw\n")
    pw.chmod(0o600)
    code = main(["probe", f"127.0.0.1:{fe.port}", "--sni", POOL, "--pfx", str(pfx), "--password-file", str(pw),
                 "--ca-bundle", str(lab.ca), "--timeout", "3"])
    text = capsys.readouterr().out
    assert code == 0
    assert "RMX ──▶ FE  ClientHello" in text and "RMX ◀── FE  SIP 200 OK" in text
    assert "s3cret-pw" not in text


def test_cli_bad_password_exits_3(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    """Given a wrong PFX password, When probing, Then one error line naming the file, exit 3, no secret."""
    pfx = lab.dir / "rmx2.pfx"
    pfx.write_bytes(lab.pki.rmx.pfx(b"right-pw"))
    pw = lab.dir / "wrong.txt"
    pw.write_text("wrong-pw\n")
    pw.chmod(0o600)
    code = main(["probe", "127.0.0.1:1", "--pfx", str(pfx), "--password-file", str(pw)])
    err = capsys.readouterr().err
    assert code == 3 and str(pfx) in err and "wrong-pw" not in err and err.count("\n") == 1


def test_unknown_client_ca_gets_alert_48(fe: Fe, lab: Lab) -> None:
    """Given an RMX cert from an unrelated CA, When probed, Then CLIENT_CERT_UNKNOWN_CA with alert 48 from_fe."""
    other = pki.issue(pki.name(lab.pki.fqdn), lab.pki.other_root).write(lab.dir / "other", "rmx")
    spec = replace(lab.spec, cert=other["cert"], key=other["key"], chain=other["chain"])
    out, r, _ = _probe(fe.port, spec)
    assert out.failure == ("tls", "alert_unknown_ca")
    finding = out.findings[0]
    assert finding.code == "CLIENT_CERT_UNKNOWN_CA"
    assert finding.evidence["alert"] == 48 and finding.evidence["direction"] == "from_fe"
    assert r.server_chain, "the FE chain is reported even though the client cert failed"
    assert "CAPTURE_TRUNCATED_CA_LIST" in _codes(out)  # the unrelated issuer is not in the FE's CA list


def test_no_client_cert_gets_certificate_required(fe: Fe, lab: Lab) -> None:
    """Given no client certificate at all, When probed over TLS 1.3, Then alert 116 -> CLIENT_CERT_REJECTED."""
    out, r, _ = _probe(fe.port, replace(lab.spec, cert=None, key=None, chain=None))
    assert out.failure == ("tls", "alert_certificate_required")
    assert out.findings[0].code == "CLIENT_CERT_REJECTED"
    assert r.client_cert_empty and r.alert == 116 and r.after_handshake


def test_wrong_trusted_name_gets_403_with_ms_diagnostics(fe: Fe, lab: Lab) -> None:
    """Given a valid cert whose CN is not the trusted app, When probed, Then SIP_NOT_TRUSTED quoting ms-diagnostics."""
    stranger = pki.issue(pki.name("stranger.lab.example"), lab.pki.issuing).write(lab.dir / "stranger", "rmx")
    spec = replace(lab.spec, cert=stranger["cert"], key=stranger["key"], chain=stranger["chain"])
    out, _, _ = _probe(fe.port, spec)
    assert out.failure == ("sip", "not_trusted")
    finding = out.findings[0]
    assert finding.code == "SIP_NOT_TRUSTED" and finding.evidence["sip_status"] == 403
    assert finding.evidence["ms_diagnostics"][0] == {"id": 1010, "sub": None, "reason": MS_DIAG_REASON,
                                                     "source": "fe01.lab.example"}
    assert "ms-diagnostics: 1010" in finding.message


def test_tls13_only_server_vs_tls12_max(lab: Lab) -> None:
    """Given a TLS 1.3-only server, When the RMX range ends at 1.2, Then FE alert 70: TLS_VERSION_MISMATCH."""
    with peers.s_server(lab.dir, lab.pki.fe, ["-tls1_3"], verify_ca=lab.ca) as port:
        out, r, _ = _probe(port, replace(lab.spec, tls_max="1.2"))
    assert out.failure == ("tls", "alert_protocol_version")
    assert out.findings[0].code == "TLS_VERSION_MISMATCH" and r.alert_direction == "from_fe"


def test_tls10_server_refuses_modern_client(lab: Lab) -> None:
    """Given a TLS 1.0-only server, When our range is 1.2-1.3, Then the FE's alert 70 -> TLS_VERSION_MISMATCH.

    Measured: OpenSSL as server answers alert 70 when 1.3 is offered, alert 40 when 1.2 at most is;
    with --tls-min 1.0 (legacy mode) the same server completes the handshake.
    """
    with peers.s_server(lab.dir, lab.pki.fe, ["-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"], verify_ca=lab.ca) as port:
        out, r, _ = _probe(port, lab.spec)
        legacy, lr, _ = _probe(port, replace(lab.spec, tls_min="1.0"), sip_options=False)
    assert out.failure == ("tls", "alert_protocol_version") and r.alert_direction == "from_fe"
    assert out.findings[0].code == "TLS_VERSION_MISMATCH"
    assert legacy.failure is None and lr.tls_version == "TLSv1", "legacy mode reaches the TLS 1.0 server"


def test_local_policy_refuses_sha1_fe_certificate(lab: Lab) -> None:
    """Given an FE cert signed with SHA-1, When probed at the default level, Then OUR policy refused."""
    server = pki.issue(pki.name("fe01.lab.example"), lab.pki.issuing, sans=[POOL], hash_name="sha1")
    # The server itself must run at security level 0 to load a SHA-1 certificate at all.
    with peers.s_server(lab.dir, server, ["-cipher", "DEFAULT:@SECLEVEL=0"], verify_ca=lab.ca) as port:
        out, r, _ = _probe(port, lab.spec)
        legacy, _, _ = _probe(port, replace(lab.spec, tls_min="1.0"), sip_options=False)
    assert out.failure == ("tls", "local_policy_refused")
    assert out.findings[0].code == "TLS_LOCAL_POLICY" and r.verify_code == 68
    assert r.alert_direction == "from_rmx", "we sent the alert, not the Front End"
    assert legacy.failure is None, "legacy mode (SECLEVEL 0) accepts the SHA-1 certificate"


def test_no_certificate_request(lab: Lab) -> None:
    """Given a server that does not ask for a client cert, When probed, Then CLIENT_CERT_NOT_REQUESTED."""
    with peers.s_server(lab.dir, lab.pki.fe, []) as port:
        out, r, _ = _probe(port, lab.spec, sip_options=False)
    assert r.client_cert_requested is False and not r.client_cert_sent
    assert "CLIENT_CERT_NOT_REQUESTED" in _codes(out)


def test_silent_after_handshake_is_sip_no_response(lab: Lab) -> None:
    """Given a server that never answers SIP, When probed, Then SIP_NO_RESPONSE within the deadline."""
    with peers.s_server(lab.dir, lab.pki.fe, [], verify_ca=lab.ca) as port:
        out, r, elapsed = _probe(port, lab.spec, timeout=1.5)
    assert out.failure == ("sip", "timeout") and out.findings[0].code == "SIP_NO_RESPONSE"
    assert r.tls_version is not None and elapsed < _within(1.5, lab)


def test_without_sip_options_a_close_after_an_accepted_handshake_is_no_sip_failure(lab: Lab) -> None:
    """Given a TLS 1.3 Front End that verifies the RMX certificate, accepts it and closes at once
    When probed with SIP OPTIONS off, several times (the close may come with the tickets or after)
    Then every probe is OK: no SIP stage, never SIP_NO_RESPONSE, the close named in the detail."""
    with peers.accept_then_close(lab.pki.fe, lab.dir, lab.ca) as port:
        probes = [_probe(port, lab.spec, sip_options=False) for _ in range(8)]
    for out, r, _ in probes:
        assert out.failure is None and str(r.stage) != "sip", (r.stage, r.reason, r.detail)
        assert "SIP_NO_RESPONSE" not in _codes(out) and r.client_cert_sent and r.tls_version == "TLSv1.3"
    closes = [r.detail for _, r, _ in probes if r.detail]
    assert all("no SIP request was sent" in d for d in closes), closes


def test_an_oversized_front_end_chain_is_the_probes_own_limit(lab: Lab) -> None:
    """Given a real TLS server sending a Certificate message over OpenSSL's 100 KB limit
    When probed
    Then TLS_LOCAL_POLICY (the probe's own limit, a warning), not TLS_HANDSHAKE_FAILURE."""
    with peers.oversized_chain(lab.pki.fe, lab.dir) as port:
        out, r, _ = _probe(port, lab.spec, sip_options=False)
    assert r.ssl_reason == "EXCESSIVE_MESSAGE_SIZE", (r.reason, r.ssl_reason, r.detail)
    assert out.failure == ("tls", "local_policy_refused")
    assert [f.code for f in out.findings][:1] == ["TLS_LOCAL_POLICY"]


def test_tls13_late_rejection_seen_after_handshake(lab: Lab) -> None:
    """Given -Verify with a CA that does not know the RMX, When probed over 1.3 without SIP, Then late alert 48."""
    other_ca = lab.dir / "other-ca.pem"
    other_ca.write_bytes(pki.pem(lab.pki.other_root.cert))
    with peers.s_server(lab.dir, lab.pki.fe, ["-tls1_3"], verify_ca=other_ca) as port:
        out, r, _ = _probe(port, lab.spec, sip_options=False)
    assert out.failure == ("tls", "alert_unknown_ca"), "a probe that stops at the handshake would say ok"
    assert r.after_handshake and out.findings[0].evidence["after_handshake"] is True


def test_reset_after_client_certificate(lab: Lab) -> None:
    """Given a relay that RSTs on the RMX Certificate (Schannel style), When probed over 1.2, Then reset after cert."""
    with peers.s_server(lab.dir, lab.pki.fe, [], verify_ca=lab.ca) as port, \
            peers.reset_after_client_cert(port) as relay:
        out, r, _ = _probe(relay, replace(lab.spec, tls_max="1.2"))
    assert out.failure == ("tls", "reset_after_client_cert")
    assert out.findings[0].code == "CLIENT_CERT_REJECTED" and r.client_cert_sent and r.alert is None


@pytest.mark.parametrize(("case", "reason", "code"), [
    ("untrusted", "server_cert_untrusted", "REGISTRAR_CERT_UNTRUSTED"),
    ("wrong_name", "server_cert_name_mismatch", "REGISTRAR_CERT_NAME_MISMATCH"),
    ("expired", "server_cert_expired", "REGISTRAR_CERT_EXPIRED"),
])
def test_fe_certificate_failures(lab: Lab, case: str, reason: str, code: str) -> None:
    """Given a bad FE certificate, When probed, Then OUR verification fails, chain shown."""
    server = lab.pki.fe
    spec, sni = lab.spec, POOL
    if case == "untrusted":
        other_ca = lab.dir / "only-other.pem"
        other_ca.write_bytes(pki.pem(lab.pki.other_root.cert))
        spec = replace(spec, ca_bundle=other_ca)
    elif case == "wrong_name":
        sni = "elsewhere.lab.example"
    else:
        past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
        server = pki.issue(pki.name("fe01.lab.example"), lab.pki.issuing, sans=[POOL],
                           not_before=past - dt.timedelta(days=365), not_after=past)
    with peers.s_server(lab.dir, server, [], verify_ca=lab.ca) as port:
        out, r, _ = _probe(port, spec, sni=sni)
    assert out.failure == ("tls", reason)
    assert out.findings[0].code == code and r.verify_code is not None
    assert r.server_chain[0].subject == "CN=fe01.lab.example"
    assert out.findings[0].evidence["not_after"] == r.server_chain[0].not_after


def test_tarpit_is_tls_timeout_within_deadline(lab: Lab) -> None:
    """Given a listener that never speaks, When probed with 1 s, Then REGISTRAR_TLS_TIMEOUT (no_answer) in time."""
    with peers.tarpit() as port:
        out, _, elapsed = _probe(port, lab.spec, timeout=1.0)
    assert out.failure == ("tls", "no_answer") and out.findings[0].code == "REGISTRAR_TLS_TIMEOUT"
    assert 0.9 <= elapsed < _within(1.0, lab)


def test_server_that_stalls_mid_handshake(lab: Lab) -> None:
    """Given a server that sends a ServerHello record header and then nothing, When probed, Then stalled."""
    with peers.scripted_tcp(b"\x16\x03\x03\x00\x40\x02\x00\x00") as port:
        out, _, elapsed = _probe(port, lab.spec, timeout=1.0)
    assert out.failure == ("tls", "stalled") and out.findings[0].code == "REGISTRAR_TLS_TIMEOUT"
    assert elapsed < _within(1.0, lab)


def test_plain_sip_port_is_not_tls(lab: Lab) -> None:
    """Given a plain SIP-over-TCP port, When probed with TLS, Then not_tls (wrong port), not a timeout."""
    with peers.scripted_tcp(b"SIP/2.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n") as port:
        out, r, elapsed = _probe(port, lab.spec, timeout=2.0)
    assert out.failure == ("tls", "not_tls") and r.ssl_reason == "WRONG_VERSION_NUMBER"
    # Named as what it is (not "TCP connects but TLS never answers"), and at once, not at the 2 s deadline
    assert out.findings[0].code == "TLS_PORT_NOT_TLS" and elapsed < min(1.9, _quick(lab))


def test_closed_port_is_unreachable(lab: Lab) -> None:
    """Given a closed port, When probed, Then REGISTRAR_UNREACHABLE (refused)."""
    out, r, _ = _probe(peers.closed_port(), lab.spec)
    assert out.failure == ("connect", "refused") and out.findings[0].code == "REGISTRAR_UNREACHABLE"
    assert r.errno == 111


def test_syn_timeout_is_unreachable(lab: Lab) -> None:
    """Given a port whose SYNs are dropped, When probed with 1 s, Then connect timeout -> REGISTRAR_UNREACHABLE."""
    with peers.syn_blackhole() as port:
        out, r, elapsed = _probe(port, lab.spec, timeout=1.0)
    assert out.failure == ("connect", "timeout") and out.findings[0].code == "REGISTRAR_UNREACHABLE"
    assert r.tls_version is None and 0.9 <= elapsed < _within(1.0, lab)


@pytest.mark.parametrize(("flaw", "alert", "reason"), [
    ("expired", 45, "alert_certificate_expired"),
    ("not_yet_valid", 42, "alert_bad_certificate"),
    ("server_auth_only", 43, "alert_unsupported_certificate"),
])
@pytest.mark.parametrize("tls_max", ["1.2", "1.3"])
def test_client_certificate_flaws_get_alerts(lab: Lab, flaw: str, alert: int, reason: str, tls_max: str) -> None:
    """Given an RMX cert with a flaw, When an OpenSSL FE verifies it, Then its alert -> CLIENT_CERT_REJECTED."""
    now = dt.datetime.now(dt.UTC)
    kw: dict[str, object] = {
        "expired": {"not_before": now - dt.timedelta(days=400), "not_after": now - dt.timedelta(days=10)},
        "not_yet_valid": {"not_before": now + dt.timedelta(days=5), "not_after": now + dt.timedelta(days=50)},
        "server_auth_only": {"ekus": [pki.SERVER_AUTH]},
    }[flaw]
    bad = pki.issue(pki.name(lab.pki.fqdn), lab.pki.issuing, **kw).write(lab.dir / flaw, "rmx")  # type: ignore[arg-type]
    with peers.s_server(lab.dir, lab.pki.fe, [], verify_ca=lab.ca) as port:
        out, r, _ = _probe(port, replace(lab.spec, cert=bad["cert"], key=bad["key"], chain=bad["chain"],
                                         tls_max=tls_max), sip_options=False)
    assert out.failure == ("tls", reason) and r.alert == alert and r.alert_direction == "from_fe"
    assert out.findings[0].code == "CLIENT_CERT_REJECTED" and out.findings[0].evidence["alert"] == alert


def test_invalid_name_is_dns_failure(lab: Lab) -> None:
    """Given an unresolvable .invalid name, When probed, Then REGISTRAR_DNS_FAILURE."""
    out, _, elapsed = _probe(5061, lab.spec, host="fe.rmxdiag.invalid", sni=None, timeout=3.0)
    assert out.failure is not None and out.failure[0] == "resolve"
    assert out.findings[0].code == "REGISTRAR_DNS_FAILURE" and elapsed < _within(3.0, lab)


def test_drip_server_bounded_by_overall_deadline(lab: Lab) -> None:
    """Given a server dripping its SIP answer a byte per 0.2 s, When probed with 1 s, Then SIP timeout at ~1 s."""
    with peers.drip_sip_server(lab.pki.fe, lab.dir / "drip") as port:
        out, _, elapsed = _probe(port, lab.spec, timeout=1.0)
    assert out.failure == ("sip", "timeout") and out.findings[0].code == "SIP_NO_RESPONSE"
    assert elapsed < _within(1.0, lab)


def test_other_sip_error_is_sip_error_response(lab: Lab) -> None:
    """Given a TLS peer answering 503 with ms-diagnostics 5000, When probed, Then SIP_ERROR_RESPONSE quoting it."""
    answer = (b"SIP/2.0 503 Service Unavailable\r\nServer: RTC/6.0\r\n"
              b'ms-diagnostics: 5000;reason="Server internal error";source="fe01.lab.example"\r\n'
              b"Content-Length: 0\r\n\r\n")
    with peers.drip_sip_server(lab.pki.fe, lab.dir / "e503", interval=0, answer=answer) as port:
        out, r, _ = _probe(port, lab.spec)
    assert out.failure == ("sip", "error_response") and out.findings[0].code == "SIP_ERROR_RESPONSE"
    assert r.sip_status == 503 and r.sip_server == "RTC/6.0"
    assert out.findings[0].evidence["ms_diagnostics"][0]["id"] == 5000
    assert out.healthy, "a warning-level hint keeps probe_success at 1"


def test_no_common_cipher_gets_handshake_failure(lab: Lab) -> None:
    """Given a TLS 1.2 server that only accepts CAMELLIA256-SHA (outside the RMX client's suites),
    Then the FE's alert 40 handshake_failure -> TLS_HANDSHAKE_FAILURE with the alert as evidence."""
    with peers.s_server(lab.dir, lab.pki.fe, ["-tls1_2", "-cipher", "CAMELLIA256-SHA"],
                        verify_ca=lab.ca) as port:
        out, r, elapsed = _probe(port, lab.spec)
    assert out.failure == ("tls", "alert_handshake_failure")
    assert r.alert == 40 and r.alert_direction == "from_fe"
    finding = out.findings[0]
    assert finding.code == "TLS_HANDSHAKE_FAILURE"
    assert finding.evidence["alert"] == 40 and finding.evidence["direction"] == "from_fe"
    assert elapsed < min(2.9, _quick(lab) + 1.0)  # an alert, not the 3 s deadline (s_server answers slower)
