"""Diagnosis rules, table-driven with hand-built findings: one case (at least) per hint code.

Each case lists the outcomes of the probes of one target and the hints expected, in order, as
(code, severity, probes cited in the evidence). Correlated findings must give ONE hint that
cites every probe that saw the root cause. The findings carry the typed facts the probes attach
(alert number and sender, DER names, ms-diagnostics ids, a drop after the client certificate):
the rules read those, never the evidence text. What the probes really emit from real peers goes
through the diagnosis in tests/integration/test_diagnosis_real_peers.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from cryptography import x509

from daemon.diagnosis.catalogue import CATALOGUE, Firmware
from daemon.diagnosis.diagnose import diagnose
from daemon.report import Report, TargetReport, now_utc
from probes.model import NO_FACTS, ErrorKind, Facts, Finding, ProbeOutcome, ProbeStatus, Severity, failed
from probes.tlswire import Alert, Sender

C, W, INF = Severity.CRITICAL, Severity.WARNING, Severity.INFO
HANDSHAKE_ALARM = "SIP TLS: Registration handshake failure"
ISSUER = "CN=Lab Issuing CA,O=rmxdiag lab"


def f(code: str, severity: Severity = C, facts: Facts = NO_FACTS, **evidence: Any) -> Finding:
    """A finding with a readable message, its evidence and its typed facts."""
    return Finding(code, severity, code.lower().replace("_", " "), evidence, facts)


def der(name: str) -> bytes:
    """The DER encoding of an RFC 4514 name."""
    return x509.Name.from_rfc4514_string(name).public_bytes()


def diag(*ids: int, status: int) -> dict[str, Any]:
    """Evidence and facts of a SIP answer with these ms-diagnostics ids."""
    return {"sip_status": status, "ms_diagnostics": [{"id": i, "reason": "x"} for i in ids],
            "facts": Facts(ms_diagnostics=ids)}


def out(probe: str, *findings: Finding, failure: tuple[str, str] | None = None) -> ProbeOutcome:
    """An ok outcome of ``probe`` carrying ``findings``."""
    return ProbeOutcome(probe, ProbeStatus.OK, 0.01, tuple(findings), failure=failure)


def alarm(text: str = HANDSHAKE_ALARM, code: str = "RMX_ALARM_REGISTRATION", severity: Severity = C) -> Finding:
    """An RMX alarm finding as the alarms probe reports it."""
    return f(code, severity, alarm_texts=[text], alarm_category="registration")


def cap_alert(number: int, direction: str = "from_fe", after_cert: bool = False) -> Finding:
    """A capture alert finding."""
    typed = Alert(number, Sender(direction))
    return f("CAPTURE_TLS_ALERT", C, Facts(alert=typed, after_client_cert=after_cert), **typed.evidence(),
             connection="10.0.0.5:40000 -> 10.0.0.9:5061")


def mtls_alert(code: str, number: int, sender: Sender = Sender.FE, severity: Severity = C,
               after_cert: bool = False, **evidence: Any) -> Finding:
    """An mtls probe finding for an alert received from the Front End (or sent by the probe)."""
    typed = Alert(number, sender)
    return f(code, severity, Facts(alert=typed, after_client_cert=after_cert), registrar="fe:5061", stage="tls",
             **typed.evidence(), **evidence)


MTLS_OK = f("MTLS_OK", INF, registrar="fe:5061", tls_version="TLSv1.2", sip_status=200)
UNKNOWN_CA = mtls_alert("CLIENT_CERT_UNKNOWN_CA", 48)
DROPPED = Facts(after_client_cert=True, dropped_after_client_cert=True)
MTLS_RESET = f("CLIENT_CERT_REJECTED", C, DROPPED, registrar="fe:5061", stage="tls", reason="reset_after_client_cert")
CAP_RESET = f("CAPTURE_RESET_AFTER_CLIENT_CERT", C, DROPPED, connection="10.0.0.5:40000 -> 10.0.0.9:5061",
              reason="reset", direction="from_fe")


@dataclass(frozen=True)
class Case:
    """Outcomes in, hints out: [(code, severity, probes cited)]."""

    name: str
    outcomes: tuple[ProbeOutcome, ...]
    expected: tuple[tuple[str, Severity, frozenset[str]], ...]


def case(name: str, outcomes: list[ProbeOutcome], *expected: tuple[str, Severity, str]) -> Case:
    """Build a case; the probes cited are given as 'certificate,mtls'."""
    return Case(name, tuple(outcomes), tuple((c, s, frozenset(p.split(","))) for c, s, p in expected))


CASES = [
    # --- the correlations of the issue ------------------------------------------------------------
    case("alarm+mtls48+capture48+truncated_list->one_unknown_ca",
         [out("mtls", UNKNOWN_CA), out("alarms", alarm()),
          out("capture", cap_alert(48), f("CAPTURE_TRUNCATED_CA_LIST", W, Facts(rmx_issuer=der(ISSUER),
                                                                                 ca_list=(der("CN=Other"),)),
                                          rmx_issuer=ISSUER, ca_names=["CN=Other"]))],
         ("CLIENT_CERT_UNKNOWN_CA", C, "mtls,capture,alarms")),
    case("issuer_missing_from_the_mtls_ca_list_is_derived_evidence",
         [out("certificate", f("CERT_SUMMARY", INF, Facts(rmx_issuer=der(ISSUER)), subject="CN=rmx.lab.example",
                               issuer=ISSUER)),
          out("mtls", f("CLIENT_CERT_UNKNOWN_CA", C, Facts(alert=Alert(48, Sender.FE), ca_list=(der("CN=Other Root"),)),
                        alert=48, ca_names=["CN=Other Root"])),
          out("capture", cap_alert(48)), out("alarms", alarm())],
         ("CLIENT_CERT_UNKNOWN_CA", C, "mtls,capture,alarms,certificate+mtls")),
    case("capture_alert48_alone_is_unknown_ca", [out("capture", cap_alert(48))],
         ("CLIENT_CERT_UNKNOWN_CA", C, "capture")),
    case("reset_with_chain_incomplete_is_unknown_ca",
         [out("certificate", f("CERT_CHAIN_INCOMPLETE")), out("mtls", MTLS_RESET), out("capture", CAP_RESET)],
         ("CLIENT_CERT_UNKNOWN_CA", C, "certificate,mtls,capture")),
    case("capture_reset+mtls_reset->one_rejected", [out("mtls", MTLS_RESET), out("capture", CAP_RESET)],
         ("CLIENT_CERT_REJECTED", C, "mtls,capture")),
    case("capture_alert70+mtls_version->one", [out("mtls", mtls_alert("TLS_VERSION_MISMATCH", 70)),
                                               out("capture", cap_alert(70))],
         ("TLS_VERSION_MISMATCH", C, "mtls,capture")),
    case("eku_missing_explains_alert46",
         [out("certificate", f("CERT_EKU_MISSING", ekus=["serverAuth"])),
          out("mtls", mtls_alert("CLIENT_CERT_REJECTED", 46)), out("capture", cap_alert(46))],
         ("CERT_EKU_MISSING", C, "certificate,mtls,capture")),
    case("eku_missing_explains_openssl_alert43",
         [out("certificate", f("CERT_EKU_MISSING")), out("mtls", mtls_alert("CLIENT_CERT_REJECTED", 43))],
         ("CERT_EKU_MISSING", C, "certificate,mtls")),
    case("self_signed_explains_unknown_ca",
         [out("certificate", f("CERT_SELF_SIGNED", subject="OU=Self Signed Certificate,O=Polycom MCU"),
              f("CERT_NO_CDP", W)), out("mtls", UNKNOWN_CA), out("alarms", alarm())],
         ("CERT_SELF_SIGNED", C, "certificate,mtls,alarms")),
    case("expired_explains_alert45",
         [out("certificate", f("CERT_EXPIRED", not_after="2020-01-01T00:00:00Z")),
          out("mtls", mtls_alert("CLIENT_CERT_REJECTED", 45)), out("capture", cap_alert(45))],
         ("CERT_EXPIRED", C, "certificate,mtls,capture")),
    case("alarm_with_healthy_probes_is_uncorroborated",
         [out("certificate"), out("mtls", MTLS_OK), out("alarms", alarm())],
         ("ALARM_UNCORROBORATED", INF, "alarms,mtls")),
    case("probe_policy_refusal_neither_confirms_nor_refutes_an_alarm",
         [out("mtls", f("TLS_LOCAL_POLICY", W, reason="local_policy_refused")), out("alarms", alarm())],
         ("RMX_ALARM_REGISTRATION", C, "alarms"), ("TLS_LOCAL_POLICY", W, "mtls")),
    case("sip_error_warning_corroborates_the_alarm",
         [out("mtls", f("SIP_ERROR_RESPONSE", W, sip_status=500)), out("alarms", alarm())],
         ("SIP_ERROR_RESPONSE", C, "mtls,alarms")),
    case("alarm_without_an_mtls_probe_stays_critical", [out("alarms", alarm())],
         ("RMX_ALARM_REGISTRATION", C, "alarms")),
    case("alarm_with_a_failed_mtls_probe_stays_critical",
         [failed("mtls", ErrorKind.DEADLINE, "no result"), out("alarms", alarm())],
         ("RMX_ALARM_REGISTRATION", C, "alarms")),
    # --- one case per remaining hint code -----------------------------------------------------
    case("is_request", [out("certificate", f("CERT_IS_REQUEST"))], ("CERT_IS_REQUEST", C, "certificate")),
    case("ca_given_explains_its_name_eku_and_the_alert",
         [out("certificate", f("CERT_IS_CA"), f("CERT_CN_MISMATCH"), f("CERT_EKU_MISSING"), f("CERT_SELF_SIGNED")),
          out("mtls", f("CLIENT_CERT_UNKNOWN_CA", alert=48, direction="from_fe"))],
         ("CERT_IS_CA", C, "certificate,mtls")),
    case("cn_mismatch_explains_not_trusted",
         [out("certificate", f("CERT_CN_MISMATCH", subject="CN=rmx-old")),
          out("mtls", f("SIP_NOT_TRUSTED", **diag(1000, status=403)))],
         ("CERT_CN_MISMATCH", C, "certificate,mtls")),
    case("san_present", [out("certificate", f("CERT_SAN_PRESENT", W))], ("CERT_SAN_PRESENT", W, "certificate")),
    case("dns_mismatch", [out("certificate", f("CERT_DNS_MISMATCH"))], ("CERT_DNS_MISMATCH", C, "certificate")),
    case("not_yet_valid_explains_1013",
         [out("certificate", f("CERT_NOT_YET_VALID")),
          out("mtls", f("SIP_ERROR_RESPONSE", W, **diag(1013, status=504)))],
         ("CERT_NOT_YET_VALID", C, "certificate,mtls")),
    case("expiring_soon", [out("certificate", f("CERT_EXPIRING_SOON", W))], ("CERT_EXPIRING_SOON", W, "certificate")),
    case("weak_key", [out("certificate", f("CERT_WEAK_KEY", W))], ("CERT_WEAK_KEY", W, "certificate")),
    case("sha512_breaking_the_handshake_becomes_critical",
         [out("certificate", f("CERT_SIGNATURE_UNSUPPORTED", W)), out("mtls", mtls_alert("CLIENT_CERT_REJECTED", 42))],
         ("CERT_SIGNATURE_UNSUPPORTED", C, "certificate,mtls")),
    case("key_mismatch_explains_alert51",
         [out("certificate", f("CERT_KEY_MISMATCH")), out("capture", cap_alert(51, "from_fe"))],
         ("CERT_KEY_MISMATCH", C, "certificate,capture")),
    case("chain_incomplete", [out("certificate", f("CERT_CHAIN_INCOMPLETE"))],
         ("CERT_CHAIN_INCOMPLETE", C, "certificate")),
    case("no_cdp", [out("certificate", f("CERT_NO_CDP", W))], ("CERT_NO_CDP", W, "certificate")),
    case("unreachable_cdp_explains_the_tls_stall",
         [out("certificate", f("CERT_REVOCATION_UNREACHABLE", W)), out("mtls", f("REGISTRAR_TLS_TIMEOUT"))],
         ("CERT_REVOCATION_UNREACHABLE", C, "certificate,mtls")),
    case("pfx_bad_password", [out("certificate", f("PFX_BAD_PASSWORD"))], ("PFX_BAD_PASSWORD", C, "certificate")),
    case("pfx_aes_refused_by_the_rmx", [out("certificate", f("PFX_ENCRYPTION_UNSUPPORTED"))],
         ("PFX_ENCRYPTION_UNSUPPORTED", C, "certificate")),
    case("registrar_dns", [out("mtls", f("REGISTRAR_DNS_FAILURE"))], ("REGISTRAR_DNS_FAILURE", C, "mtls")),
    case("unreachable+capture_syn+alarm->one",
         [out("mtls", f("REGISTRAR_UNREACHABLE", stage="connect", reason="refused")),
          out("capture", f("CAPTURE_NO_SERVER_RESPONSE")),
          out("alarms", alarm("SIP TLS: Registration transport error"))],
         ("REGISTRAR_UNREACHABLE", C, "mtls,capture,alarms")),
    case("tls_timeout", [out("mtls", f("REGISTRAR_TLS_TIMEOUT"))], ("REGISTRAR_TLS_TIMEOUT", C, "mtls")),
    case("fe_cert_untrusted+capture_alert_from_rmx",
         [out("mtls", f("REGISTRAR_CERT_UNTRUSTED")), out("capture", cap_alert(48, "from_rmx"))],
         ("REGISTRAR_CERT_UNTRUSTED", C, "mtls,capture")),
    case("fe_name_mismatch", [out("mtls", f("REGISTRAR_CERT_NAME_MISMATCH"))],
         ("REGISTRAR_CERT_NAME_MISMATCH", C, "mtls")),
    case("fe_cert_expired", [out("mtls", f("REGISTRAR_CERT_EXPIRED"))], ("REGISTRAR_CERT_EXPIRED", C, "mtls")),
    case("not_requested", [out("mtls", f("CLIENT_CERT_NOT_REQUESTED", W))], ("CLIENT_CERT_NOT_REQUESTED", W, "mtls")),
    case("rejected_alert116", [out("mtls", mtls_alert("CLIENT_CERT_REJECTED", 116))],
         ("CLIENT_CERT_REJECTED", C, "mtls")),
    case("handshake_failure+capture40", [out("mtls", mtls_alert("TLS_HANDSHAKE_FAILURE", 40)),
                                         out("capture", cap_alert(40))],
         ("TLS_HANDSHAKE_FAILURE", C, "mtls,capture")),
    case("not_trusted+alarm->one",
         [out("mtls", f("SIP_NOT_TRUSTED", **diag(4005, status=403))),
          out("alarms", alarm())],
         ("SIP_NOT_TRUSTED", C, "mtls,alarms")),
    case("sip_no_response", [out("mtls", f("SIP_NO_RESPONSE"))], ("SIP_NO_RESPONSE", C, "mtls")),
    case("sip_error", [out("mtls", f("SIP_ERROR_RESPONSE", W, sip_status=500))], ("SIP_ERROR_RESPONSE", W, "mtls")),
    case("certificate_alarm_alone",
         [out("alarms", alarm("SIP TLS: Certificate is about to expire", "RMX_ALARM_CERTIFICATE", W))],
         ("RMX_ALARM_CERTIFICATE", W, "alarms")),
    case("certificate_alarm_folds_into_expiry",
         [out("certificate", f("CERT_EXPIRED")),
          out("alarms", alarm("SIP TLS: Certificate has expired", "RMX_ALARM_CERTIFICATE", C))],
         ("CERT_EXPIRED", C, "certificate,alarms")),
    case("certificate_alarm_contradicted",
         [out("certificate"), out("alarms", alarm("SIP TLS: Certificate has expired", "RMX_ALARM_CERTIFICATE", C))],
         ("ALARM_UNCORROBORATED", INF, "alarms,certificate")),
    case("expired_alarm_refuted_by_a_valid_certificate_even_with_other_warnings",
         [out("certificate", f("CERT_SUMMARY", INF, not_after="2030-01-01T00:00:00Z"), f("CERT_NO_CDP", W)),
          out("alarms", alarm("SIP TLS: Certificate has expired", "RMX_ALARM_CERTIFICATE", C))],
         ("CERT_NO_CDP", W, "certificate"), ("ALARM_UNCORROBORATED", INF, "alarms,certificate")),
    case("subject_name_alarm_folds_into_the_name_mismatch_not_the_first_cert_problem",
         [out("certificate", f("CERT_WEAK_KEY", W), f("CERT_DNS_MISMATCH")),
          out("alarms", alarm("SIP TLS: Certificate subject name is not valid or DNS failed to resolve this name",
                              "RMX_ALARM_CERTIFICATE", W))],
         ("CERT_DNS_MISMATCH", C, "certificate,alarms"), ("CERT_WEAK_KEY", W, "certificate")),
    case("unknown_certificate_alarm_text_with_no_certificate_probe_stays",
         [out("alarms", alarm("SIP TLS: certificate trouble of a new kind", "RMX_ALARM_CERTIFICATE", W))],
         ("RMX_ALARM_CERTIFICATE", W, "alarms")),
    case("capture_alert_the_table_does_not_know", [out("capture", cap_alert(99))], ("CAPTURE_TLS_ALERT", C, "capture")),
    case("capture_alert80_is_a_handshake_failure_like_the_probe's", [out("capture", cap_alert(80))],
         ("TLS_HANDSHAKE_FAILURE", C, "capture")),
    case("empty_client_cert_explains_truncated_list_and_116",
         [out("capture", f("CAPTURE_EMPTY_CLIENT_CERT"), f("CAPTURE_TRUNCATED_CA_LIST", W), cap_alert(116))],
         ("CAPTURE_EMPTY_CLIENT_CERT", C, "capture")),
    case("capture_reset_alone", [out("capture", CAP_RESET)], ("CAPTURE_RESET_AFTER_CLIENT_CERT", C, "capture")),
    case("capture_no_server_response", [out("capture", f("CAPTURE_NO_SERVER_RESPONSE"))],
         ("CAPTURE_NO_SERVER_RESPONSE", C, "capture")),
    case("capture_clear_text_on_the_tls_port", [out("capture", f("TLS_PORT_NOT_TLS", direction="from_rmx"))],
         ("TLS_PORT_NOT_TLS", C, "capture")),
    case("truncated_list_alone", [out("capture", f("CAPTURE_TRUNCATED_CA_LIST", W))],
         ("CAPTURE_TRUNCATED_CA_LIST", W, "capture")),
    case("two_independent_causes_stay_two",
         [out("certificate", f("CERT_EXPIRING_SOON", W)), out("mtls", f("SIP_NOT_TRUSTED", sip_status=403))],
         ("SIP_NOT_TRUSTED", C, "mtls"), ("CERT_EXPIRING_SOON", W, "certificate")),
    case("probe_policy_refusal", [out("mtls", f("TLS_LOCAL_POLICY", W, reason="local_policy_refused"))],
         ("TLS_LOCAL_POLICY", W, "mtls")),
    case("alert40_after_client_cert_seen_by_probe_and_capture->one_rejected",
         [out("mtls", mtls_alert("CLIENT_CERT_REJECTED", 40, after_cert=True)), out("capture", cap_alert(40))],
         ("CLIENT_CERT_REJECTED", C, "mtls,capture")),
    case("healthy_target_has_no_hint", [out("certificate"), out("mtls", MTLS_OK)]),
    # --- a specific finding keeps its code, whatever alert it carries (the issue's misroutes) --------
    case("fe_name_mismatch_with_our_alert42_stays_name_mismatch",
         [out("mtls", mtls_alert("REGISTRAR_CERT_NAME_MISMATCH", 42, Sender.RMX, verify_code=62))],
         ("REGISTRAR_CERT_NAME_MISMATCH", C, "mtls")),
    case("fe_not_yet_valid_with_our_alert42_stays_expired",
         [out("mtls", mtls_alert("REGISTRAR_CERT_EXPIRED", 42, Sender.RMX, verify_code=9))],
         ("REGISTRAR_CERT_EXPIRED", C, "mtls")),
    case("fe_cert_without_server_auth_with_our_alert43_is_invalid_not_untrusted",
         [out("mtls", mtls_alert("REGISTRAR_CERT_INVALID", 43, Sender.RMX, verify_code=26))],
         ("REGISTRAR_CERT_INVALID", C, "mtls")),
    case("our_policy_refusing_a_sha1_fe_cert_stays_a_local_policy_warning",
         [out("mtls", mtls_alert("TLS_LOCAL_POLICY", 42, Sender.RMX, W, verify_code=68))],
         ("TLS_LOCAL_POLICY", W, "mtls")),
    case("our_policy_alert40_is_not_a_handshake_failure",
         [out("mtls", mtls_alert("TLS_LOCAL_POLICY", 40, Sender.RMX, W, ssl_reason="DH_KEY_TOO_SMALL"))],
         ("TLS_LOCAL_POLICY", W, "mtls")),
    case("our_policy_alert71_is_not_a_handshake_failure",
         [out("mtls", mtls_alert("TLS_LOCAL_POLICY", 71, Sender.RMX, W))], ("TLS_LOCAL_POLICY", W, "mtls")),
    case("fe_name_mismatch_and_the_capture_of_its_alert->one",
         [out("mtls", mtls_alert("REGISTRAR_CERT_NAME_MISMATCH", 42, Sender.RMX)),
          out("capture", cap_alert(42, "from_rmx"))],
         ("REGISTRAR_CERT_NAME_MISMATCH", C, "mtls,capture")),
    case("capture_alert42_from_the_rmx_alone_is_untrusted", [out("capture", cap_alert(42, "from_rmx"))],
         ("REGISTRAR_CERT_UNTRUSTED", C, "capture")),
    case("capture_alert45_from_the_rmx_alone_is_fe_expired", [out("capture", cap_alert(45, "from_rmx"))],
         ("REGISTRAR_CERT_EXPIRED", C, "capture")),
    case("capture_alert51_from_the_fe_alone_is_a_rejection_like_the_probe's", [out("capture", cap_alert(51))],
         ("CLIENT_CERT_REJECTED", C, "capture")),
    case("capture_alert49_from_the_fe_alone_is_a_rejection_like_the_probe's", [out("capture", cap_alert(49))],
         ("CLIENT_CERT_REJECTED", C, "capture")),
    case("capture_alert40_after_the_client_cert_is_a_rejection", [out("capture", cap_alert(40, after_cert=True))],
         ("CLIENT_CERT_REJECTED", C, "capture")),
    # --- a partial capture never reads as OK --------------------------------------------------------
    case("capture_incomplete_alone_is_a_warning",
         [out("capture", f("CAPTURE_INCOMPLETE", W, reason="incomplete"), f("CAPTURE_SUMMARY", INF))],
         ("CAPTURE_INCOMPLETE", W, "capture")),
    case("capture_incomplete_stays_beside_the_critical_root",
         [out("capture", f("CAPTURE_INCOMPLETE", W, reason="incomplete"), cap_alert(48))],
         ("CLIENT_CERT_UNKNOWN_CA", C, "capture"), ("CAPTURE_INCOMPLETE", W, "capture")),
]


def _cited(evidence: tuple[str, ...]) -> frozenset[str]:
    return frozenset(line.split(":", 1)[0] for line in evidence)


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_rule(c: Case) -> None:
    # Given the outcomes of the probes of one target, When diagnosed
    hints = diagnose(c.outcomes, Firmware.V8)
    # Then exactly the expected root causes, each citing every probe that saw it
    assert [(h.code, h.severity, _cited(h.evidence)) for h in hints] == list(c.expected)
    for hint in hints:
        assert hint.remediation and hint.title == CATALOGUE[hint.code].title


def test_every_hint_code_has_a_rule_case() -> None:
    # Given the catalogue, Then each code is the outcome of at least one case above
    produced = {code for c in CASES for code, _s, _p in c.expected}
    assert sorted(set(CATALOGUE) - produced) == []


def test_the_issue_correlation_cites_all_four_pieces() -> None:
    # Given the alarm, the probe's alert 48, the capture's alert 48 and the CA list without the issuer
    hints = diagnose(CASES[1].outcomes)
    # Then one hint holds four evidence lines, one of them the derived CA-list fact
    (hint,) = hints
    assert hint.code == "CLIENT_CERT_UNKNOWN_CA" and len(hint.evidence) == 4
    assert hint.evidence[0].startswith("mtls: ") and "alert=48" in hint.evidence[0]
    assert any("not the RMX issuer" in line and ISSUER in line for line in hint.evidence)
    assert any(HANDSHAKE_ALARM in line for line in hint.evidence)
    assert any("direction=from_fe" in line for line in hint.evidence)


def test_an_issuer_in_the_ca_list_adds_no_evidence() -> None:
    # Given the CA list holds the issuer's DER name, rendered differently by the two probes (the
    # certificate probe's cryptography prints emailAddress as an OID, the wire parser by name)
    issuer = "CN=Lab Issuing CA,O=rmxdiag lab,1.2.840.113549.1.9.1=pki@lab.example"
    hints = diagnose([out("certificate", f("CERT_SUMMARY", INF, Facts(rmx_issuer=der(issuer)), issuer=issuer)),
                      out("mtls", f("CLIENT_CERT_REJECTED", C, Facts(ca_list=(der(issuer),), after_client_cert=True,
                                                                     dropped_after_client_cert=True),
                                    reason="reset_after_client_cert",
                                    ca_names=["emailAddress=pki@lab.example,CN=Lab Issuing CA,O=rmxdiag lab"]))])
    # Then no "CA list lacks the issuer" fact is invented: the reset stays a rejection, citing only the probe
    assert [(h.code, len(h.evidence)) for h in hints] == [("CLIENT_CERT_REJECTED", 1)]


def test_an_issuer_missing_from_the_ca_list_is_derived_from_der_names() -> None:
    # Given the same reset, but the CA list names another CA
    hints = diagnose([out("certificate", f("CERT_SUMMARY", INF, Facts(rmx_issuer=der(ISSUER)), issuer=ISSUER)),
                      out("mtls", f("CLIENT_CERT_REJECTED", C, Facts(ca_list=(der("CN=Other Root"),),
                                                                     after_client_cert=True,
                                                                     dropped_after_client_cert=True),
                                    reason="reset_after_client_cert", ca_names=["CN=Other Root"]))])
    # Then the derived fact explains the reset as an unknown CA, and names both CAs as text
    (hint,) = hints
    assert hint.code == "CLIENT_CERT_UNKNOWN_CA"
    assert any(line.startswith("certificate+mtls: ") and ISSUER in line and "CN=Other Root" in line
               for line in hint.evidence)


def test_uncorroborated_alarm_keeps_the_run_ok() -> None:
    # Given a registration alarm contradicted by a clean handshake + SIP 200
    outcomes = (out("mtls", MTLS_OK), out("alarms", alarm()))
    report = Report(now_utc(), (TargetReport("rmx", outcomes, diagnose(outcomes)),))
    # Then the verdict is OK (info hint only) and the evidence shows both sides
    assert report.exit_code == 0
    (hint,) = report.targets[0].hints
    assert any("sip_status=200" in line for line in hint.evidence)


def test_remediation_names_the_firmware_menus() -> None:
    # Given the same findings, When diagnosed for 7.x and 8.x
    outcomes = [out("certificate", f("CERT_SELF_SIGNED"))]
    v7 = " ".join(diagnose(outcomes, Firmware.V7)[0].remediation)
    v8 = " ".join(diagnose(outcomes, Firmware.V8)[0].remediation)
    # Then 7.x points at the SIP Servers tab and 8.x at the Certification Repository
    assert "SIP Servers tab" in v7 and "Certification Repository" not in v7
    assert "Certification Repository" in v8


def test_trusted_application_fix_names_the_cmdlets_in_order() -> None:
    # Given an RMX that is not a trusted application
    (hint,) = diagnose([out("mtls", f("SIP_NOT_TRUSTED", sip_status=403))])
    text = " ".join(hint.remediation)
    # Then the steps create pool, computer, application, then publish the topology
    positions = [text.index(c) for c in ("New-CsTrustedApplicationPool", "New-CsTrustedApplicationComputer",
                                         "New-CsTrustedApplication ", "Enable-CsTopology")]
    assert positions == sorted(positions)


def test_fix_steps_name_this_rmx_and_its_issuer() -> None:
    # Given the certificate probe's summary and a Front End that refuses the RMX
    summary = f("CERT_SUMMARY", INF, Facts(rmx_issuer=der(ISSUER)), subject="CN=rmx-hq.corp.example,O=Corp",
                issuer=ISSUER)
    (not_trusted,) = diagnose([out("certificate", summary), out("mtls", f("SIP_NOT_TRUSTED", sip_status=403))])
    (unknown,) = diagnose([out("certificate", summary), out("mtls", UNKNOWN_CA)])
    # Then the cmdlets name the certificate's CN and the trust step names the issuer
    assert "New-CsTrustedApplicationComputer -Identity rmx-hq.corp.example -Pool" in " ".join(not_trusted.remediation)
    assert unknown.remediation[0].endswith(f"The RMX certificate here is issued by {ISSUER}.")
