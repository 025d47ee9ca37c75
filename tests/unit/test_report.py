"""The shared model, the report document, text rendering and exit codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from daemon.diagnosis.catalogue import CATALOGUE, Firmware, remediation
from daemon.diagnosis.diagnose import diagnose
from daemon.report import Report, TargetReport, TargetStatus, render_json, render_text
from probes.model import ErrorKind, Finding, ProbeOutcome, ProbeStatus, Severity, failed

DESIGN_CODES = """CERT_SELF_SIGNED CERT_IS_REQUEST CERT_CN_MISMATCH CERT_SAN_PRESENT CERT_DNS_MISMATCH
CERT_EKU_MISSING CERT_EXPIRED CERT_NOT_YET_VALID CERT_EXPIRING_SOON CERT_WEAK_KEY
CERT_SIGNATURE_UNSUPPORTED CERT_KEY_MISMATCH CERT_CHAIN_INCOMPLETE CERT_NO_CDP
CERT_REVOCATION_UNREACHABLE PFX_BAD_PASSWORD REGISTRAR_DNS_FAILURE REGISTRAR_UNREACHABLE
REGISTRAR_TLS_TIMEOUT REGISTRAR_CERT_UNTRUSTED REGISTRAR_CERT_NAME_MISMATCH CLIENT_CERT_NOT_REQUESTED
CLIENT_CERT_UNKNOWN_CA CLIENT_CERT_REJECTED TLS_VERSION_MISMATCH TLS_HANDSHAKE_FAILURE SIP_NOT_TRUSTED
SIP_NO_RESPONSE SIP_ERROR_RESPONSE RMX_ALARM_REGISTRATION RMX_ALARM_CERTIFICATE ALARM_UNCORROBORATED
CAPTURE_TLS_ALERT CAPTURE_EMPTY_CLIENT_CERT CAPTURE_RESET_AFTER_CLIENT_CERT CAPTURE_NO_SERVER_RESPONSE
CAPTURE_TRUNCATED_CA_LIST""".split()

WHEN = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _outcome(*findings: Finding, status: ProbeStatus = ProbeStatus.OK) -> ProbeOutcome:
    return ProbeOutcome("certificate", status, 0.01, tuple(findings))


def test_catalogue_holds_every_design_code() -> None:
    # Given the hint catalogue, then every code is present with remediation steps
    missing = [c for c in DESIGN_CODES if c not in CATALOGUE]
    assert missing == []
    assert all(CATALOGUE[c].steps for c in DESIGN_CODES)


def test_remediation_names_the_firmware_menu() -> None:
    # Given the same hint, When rendered for 7.x and 8.x, Then the menus differ as the RMX does
    v7 = " ".join(remediation("CERT_SELF_SIGNED", Firmware.V7))
    v8 = " ".join(remediation("CERT_SELF_SIGNED", Firmware.V8))
    assert "SIP Servers tab" in v7 and "Certification Repository" not in v7
    assert "Certification Repository" in v8
    assert "{" not in v7 + v8


def test_json_document_matches_the_contract() -> None:
    # Given one critical finding, When diagnosed and rendered, Then the document has the DESIGN shape
    finding = Finding("CERT_EXPIRED", Severity.CRITICAL, "expired", {"not_after": "2020-01-01"})
    outcomes = (_outcome(finding),)
    report = Report(WHEN, (TargetReport("rmx-hq", outcomes, diagnose(outcomes)),))
    doc = json.loads(render_json(report))
    assert doc["schema"] == 1 and doc["generated_at"] == "2026-11-26T12:00:00Z"
    target = doc["targets"][0]
    assert target["status"] == "critical"
    assert target["probes"][0]["findings"][0]["evidence"] == {"not_after": "2020-01-01"}
    hint = target["hints"][0]
    # the schema 1 keys stay; keys are only ever added
    assert {"code", "severity", "title", "evidence", "remediation"} <= set(hint)
    assert hint["fix_on"] == ["ca", "rmx"] and hint["sentences"] == ["Certificate check: Expired."]
    assert hint["confidence"] == {"probes": ["certificate"], "agreeing": 1, "ran": 1}
    assert hint["code"] == "CERT_EXPIRED" and "not_after=2020-01-01" in hint["evidence"][0]
    assert report.exit_code == 2


def test_exit_codes_follow_nagios() -> None:
    # Given reports of each kind, Then 0 ok, 1 warning, 2 critical, 3 could not run
    warn = Finding("CERT_EXPIRING_SOON", Severity.WARNING, "soon")
    cases = [
        ((_outcome(),), 0, TargetStatus.OK),
        ((_outcome(warn),), 1, TargetStatus.WARNING),
        ((failed("certificate", ErrorKind.BAD_INPUT, "empty"),), 3, TargetStatus.UNKNOWN),
    ]
    for outcomes, code, status in cases:
        target = TargetReport("t", outcomes, diagnose(outcomes))
        assert target.status is status
        assert Report(WHEN, (target,)).exit_code == code


def test_text_puts_verdict_first_then_fix_steps() -> None:
    # Given a critical and a warning hint, When rendered as text, Then verdict, most severe first
    outcomes = (_outcome(Finding("CERT_SAN_PRESENT", Severity.WARNING, "SAN present"),
                         Finding("CERT_SELF_SIGNED", Severity.CRITICAL, "self-signed")),)
    report = Report(WHEN, (TargetReport("rmx", outcomes, diagnose(outcomes)),))
    text = render_text(report)
    lines = text.splitlines()
    assert lines[0].startswith("CRITICAL: rmx: The RMX uses a self-signed certificate")
    assert text.index("CERT_SELF_SIGNED") < text.index("CERT_SAN_PRESENT")
    assert "Fix:" in text and "\x1b[" not in text  # no colour when not a TTY


def test_a_probe_that_could_not_run_is_not_hidden_behind_a_warning() -> None:
    # Given a warning from one probe while another could not run at all
    outcomes = (_outcome(Finding("CERT_NO_CDP", Severity.WARNING, "no CDP")),
                failed("mtls", ErrorKind.BAD_INPUT, "rmx.key: unreadable"))
    target = TargetReport("rmx", outcomes, diagnose(outcomes))
    # Then the verdict is unknown (exit 3), not a plain warning; a critical hint still wins
    assert target.status is TargetStatus.UNKNOWN and Report(WHEN, (target,)).exit_code == 3
    critical = (*outcomes, _outcome(Finding("CERT_EXPIRED", Severity.CRITICAL, "expired")))
    assert TargetReport("rmx", critical, diagnose(critical)).status is TargetStatus.CRITICAL
