"""The ONE mapping of the mtls probe: errors -> (stage, reason) -> catalogue hint."""

from __future__ import annotations

import errno
import socket

import pytest

from daemon.diagnosis.catalogue import CATALOGUE
from probes.mtls import outcome as oc
from probes.mtls.outcome import Reason, Stage
from probes.resolve import ResolveError


@pytest.mark.parametrize("stage", list(Stage))
@pytest.mark.parametrize("reason", [r for r in Reason if r not in (Reason.OK, Reason.OVERLOADED)])
def test_every_outcome_maps_to_a_catalogue_hint_with_its_severity(stage: Stage, reason: Reason) -> None:
    """Given any failing (stage, reason), When mapped, Then a catalogue code with the catalogue's severity."""
    for after_cert in (False, True):
        hint = oc.hint_for(stage, reason, after_client_cert=after_cert)
        assert hint is not None and hint.code in CATALOGUE
        assert hint.severity is CATALOGUE[hint.code].severity


@pytest.mark.parametrize("stage", list(Stage))
def test_an_overloaded_probe_maps_to_no_hint(stage: Stage) -> None:
    """Given a probe that ran out of time because rmxdiag was busy, When mapped, Then no hint (no verdict)."""
    assert oc.hint_for(stage, Reason.OVERLOADED) is None
    assert oc.hint_for(stage, Reason.OVERLOADED, after_client_cert=True) is None


@pytest.mark.parametrize(("alert", "code"), [(40, "TLS_HANDSHAKE_FAILURE"), (42, "CLIENT_CERT_REJECTED"),
                                             (45, "CLIENT_CERT_REJECTED"), (46, "CLIENT_CERT_REJECTED"),
                                             (48, "CLIENT_CERT_UNKNOWN_CA"), (70, "TLS_VERSION_MISMATCH"),
                                             (116, "CLIENT_CERT_REJECTED"), (99, "TLS_HANDSHAKE_FAILURE")])
def test_alert_numbers(alert: int, code: str) -> None:
    """Given an FE alert before our certificate, When mapped, Then the hint the symptom table names."""
    hint = oc.hint_for(Stage.TLS, oc.alert_reason(alert))
    assert hint is not None and hint.code == code


def test_handshake_failure_after_our_certificate_is_a_client_cert_rejection() -> None:
    """Given alert 40 after our Certificate flight, When mapped, Then CLIENT_CERT_REJECTED."""
    hint = oc.hint_for(Stage.TLS, Reason.ALERT_HANDSHAKE_FAILURE, after_client_cert=True)
    assert hint is not None and hint.code == "CLIENT_CERT_REJECTED"


@pytest.mark.parametrize(("code", "reason"), [(20, Reason.SERVER_CERT_UNTRUSTED), (19, Reason.SERVER_CERT_UNTRUSTED),
                                              (10, Reason.SERVER_CERT_EXPIRED), (9, Reason.SERVER_CERT_NOT_YET_VALID),
                                              (62, Reason.SERVER_CERT_NAME_MISMATCH),
                                              (68, Reason.LOCAL_POLICY_REFUSED), (999, Reason.SERVER_CERT_INVALID)])
def test_verify_codes(code: int, reason: Reason) -> None:
    """Given an X509_V_ERR code of our verification, When mapped, Then the reason."""
    assert oc.verify_reason(code) is reason


@pytest.mark.parametrize(("name", "expected"), [("UNSUPPORTED_PROTOCOL", Reason.LOCAL_VERSION_REFUSED),
                                                ("CA_MD_TOO_WEAK", Reason.LOCAL_POLICY_REFUSED),
                                                ("WRONG_VERSION_NUMBER", Reason.NOT_TLS),
                                                ("TLSV1_ALERT_UNKNOWN_CA", None), (None, None)])
def test_openssl_reason_names(name: str | None, expected: Reason | None) -> None:
    """Given an OpenSSL reason name, When classified, Then local policy / not TLS / neither."""
    assert oc.ssl_reason_class(name) is expected


def test_received_alert_reason_names_give_the_number() -> None:
    """Given OpenSSL's 'alert received' reason names, When mapped, Then the alert number."""
    assert oc.alert_from_ssl_reason("TLSV13_ALERT_CERTIFICATE_REQUIRED") == 116
    assert oc.alert_from_ssl_reason("TLSV1_ALERT_UNKNOWN_CA") == 48
    assert oc.alert_from_ssl_reason("CERTIFICATE_VERIFY_FAILED") is None


def test_errno_and_resolver_errors() -> None:
    """Given connect errnos and resolver errors, When mapped, Then refused/unreachable/timeout, dns_failure/timeout."""
    assert oc.connect_reason(errno.ECONNREFUSED) is Reason.REFUSED
    assert oc.connect_reason(errno.ENETUNREACH) is Reason.UNREACHABLE
    assert oc.connect_reason(errno.ETIMEDOUT) is Reason.TIMEOUT
    assert oc.connect_reason(errno.EACCES) is Reason.CONNECT_ERROR
    assert oc.resolve_reason(ResolveError("fe", "no such name", errno=socket.EAI_NONAME)) is Reason.DNS_FAILURE
    assert oc.resolve_reason(ResolveError("fe", "no answer", timeout=True)) is Reason.DNS_TIMEOUT
    assert oc.hint_for(Stage.CONNECT, Reason.TIMEOUT).code == "REGISTRAR_UNREACHABLE"  # type: ignore[union-attr]
    assert oc.hint_for(Stage.SIP, Reason.TIMEOUT).code == "SIP_NO_RESPONSE"  # type: ignore[union-attr]


@pytest.mark.parametrize(("status", "reason", "code"), [(200, Reason.OK, None),
                                                        (403, Reason.NOT_TRUSTED, "SIP_NOT_TRUSTED"),
                                                        (401, Reason.NOT_TRUSTED, "SIP_NOT_TRUSTED"),
                                                        (504, Reason.ERROR_RESPONSE, "SIP_ERROR_RESPONSE")])
def test_sip_status(status: int, reason: Reason, code: str | None) -> None:
    """Given a SIP final status, When mapped, Then ok / not_trusted / error_response and their hints."""
    assert oc.sip_reason(status) is reason
    hint = oc.hint_for(Stage.SIP, reason)
    assert (hint.code if hint else None) == code


@pytest.mark.parametrize(("sent", "reason"), [(70, Reason.LOCAL_VERSION_REFUSED), (40, Reason.LOCAL_POLICY_REFUSED),
                                              (71, Reason.LOCAL_POLICY_REFUSED), (50, Reason.HANDSHAKE_ERROR),
                                              (None, Reason.HANDSHAKE_ERROR)])
def test_alerts_we_sent(sent: int | None, reason: Reason) -> None:
    """Given the alert OUR side sent (OpenSSL named no reason), When mapped, Then local policy only for 70/40/71."""
    assert oc.sent_alert_reason(sent) is reason
