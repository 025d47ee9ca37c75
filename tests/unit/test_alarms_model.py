"""Alarm classification: the one table, tolerant of case, punctuation, dashes and firmware variants."""

from __future__ import annotations

import pytest

from probes.alarms.lines import PREFILTER
from probes.alarms.model import (
    RULES,
    ActiveSet,
    AlarmCategory,
    AlarmSource,
    AlarmState,
    classify,
    make_alarm,
    normalise,
    says_expired,
)

REG, CERT, ICE, REV, OTHER = (AlarmCategory.REGISTRATION, AlarmCategory.CERTIFICATE, AlarmCategory.ICE,
                              AlarmCategory.REVOCATION, AlarmCategory.OTHER)

# (text as an RMX / a user reported it, category, rule name)
EXAMPLES = [
    ("SIP TLS: Registration handshake failure", REG, "registration_handshake_failure"),
    ("SIP TLS: Registration transport error", REG, "registration_transport_error"),
    ("SIP TLS: Registration server not responding", REG, "registration_server_not_responding"),
    ("SIP TLS: no response from Registration server (cs id1)", REG, "registration_no_response"),
    ("Can not establish connection with SIP registrar", REG, "registrar_connection_failed"),
    ("Cannot establish connection with the SIP registrar", REG, "registrar_connection_failed"),
    ("Registration failed for some conference", REG, "registration_failed_conference"),
    ("Secured SIP communication failed", REG, "secured_sip_failed"),
    ("SIP TLS: Failed to load or verify certificate files", CERT, "certificate_load_failed"),
    ("SIP TLS: Certificate files are missing", CERT, "certificate_file_unreadable"),
    ("Secured SIP communication failed: cannot read the certificate file", CERT, "certificate_file_unreadable"),
    ("SIP TLS: Certificate has expired", CERT, "certificate_expired"),
    ("SIP TLS: Certificate is about to expire", CERT, "certificate_expiring"),
    ("SIP TLS: Certificate subject name is not valid or DNS failed to resolve this name", CERT,
     "certificate_subject_invalid"),
    ("Security mode failed – Certificate expired", CERT, "certificate_expired"),
    ("ICE failure: Failed to register with OCS", ICE, "ice_failure"),
    ("ICE failure: A/V Edge server not reachable (MRAS)", ICE, "ice_failure"),
    ("OCSP responder not responding", REV, "ocsp_not_responding"),
    ("Low system memory", OTHER, None),
    ("Fan failure on slot 3", OTHER, None),
]


@pytest.mark.parametrize(("text", "category", "rule"), EXAMPLES)
def test_every_documented_text_classifies(text: str, category: AlarmCategory, rule: str | None) -> None:
    # Given a documented or field-reported alarm text, When classified, Then category and rule match
    result = classify(text)
    assert result.category is category
    assert (result.rule.name if result.rule else None) == rule


@pytest.mark.parametrize("variant", [
    "sip tls: registration HANDSHAKE failure",  # case
    "SIP-TLS - Registration handshake failure.",  # punctuation
    "SIP TLS:   Registration\thandshake   failure",  # spacing
    "SIP TLS – Registration handshake failed",  # en dash, firmware wording "failed"
    "SIP TLS — Registration handshake failure (cs id 2)",  # em dash, cs id with a space
])
def test_variants_of_one_alarm_land_in_the_same_rule(variant: str) -> None:
    # Given case/punctuation/dash/firmware variants, Then all hit the handshake rule
    assert classify(variant).rule is not None
    assert classify(variant).rule.name == "registration_handshake_failure"  # type: ignore[union-attr]


@pytest.mark.parametrize(("text", "cs_id"), [
    ("SIP TLS: no response from Registration server (cs id1)", 1),
    ("no response from registration server (CS ID 12)", 12),
    ("no response from registration server (cs-id3)", 3),
    ("SIP TLS: Registration handshake failure", None),
])
def test_cs_id_is_extracted(text: str, cs_id: int | None) -> None:
    assert classify(text).cs_id == cs_id


def test_expired_is_told_from_about_to_expire() -> None:
    assert says_expired("SIP TLS: Certificate has expired")
    assert says_expired("Security mode failed – Certificate expired")
    assert not says_expired("SIP TLS: Certificate is about to expire")


def test_every_rule_has_an_example_and_the_prefilter_sees_every_example() -> None:
    # Given the bulk readers only parse lines containing a PREFILTER literal,
    # Then every non-other example contains one, and every rule is exercised by an example
    for text, category, _rule in EXAMPLES:
        if category is not OTHER:
            assert any(lit in text.lower().encode() for lit in PREFILTER), text
    exercised = {rule for _t, _c, rule in EXAMPLES}
    assert {r.name for r in RULES} - exercised <= {"sip_tls_certificate", "revocation"}


def test_normalise_folds_dashes_and_punctuation() -> None:
    assert normalise("Security mode failed \u2013 Certificate expired!") == "security mode failed certificate expired"
    assert normalise("A\u2212B\u2014C") == "a b c"


def test_active_set_raise_then_clear_by_index_and_by_text() -> None:
    # Given raise events then clears, Then only still-raised alarms stay, and re-raises are not new
    active = ActiveSet()
    a = make_alarm(AlarmSource.SNMP, "SIP TLS: Registration transport error", alarm_id="7")
    b = make_alarm(AlarmSource.SYSLOG, "ICE failure: x")
    assert active.apply(a) and active.apply(b)
    assert not active.apply(a)  # already active: not new
    active.apply(make_alarm(AlarmSource.SNMP, "whatever text", alarm_id="7", state=AlarmState.CLEARED))
    active.apply(make_alarm(AlarmSource.SYSLOG, "ICE  FAILURE: x", state=AlarmState.CLEARED))
    assert len(active) == 0


def test_active_set_is_bounded() -> None:
    active = ActiveSet(limit=3)
    for i in range(5):
        active.apply(make_alarm(AlarmSource.SYSLOG, f"alarm {i}"))
    assert len(active) == 3 and active.dropped == 2
