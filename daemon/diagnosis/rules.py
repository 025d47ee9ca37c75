"""The correlation rules of the diagnosis: which root cause explains which observations.

Each :class:`Rule` names a root-cause hint code, the observations that show it is present
(``fires``) and the other observations it explains (``explains``), which become evidence of that
one hint instead of hints of their own. Every matcher names the finding codes it may take
(:class:`Take`), and the catalogue's ``FOLDS_INTO`` says which roots may take which codes: a
unit test holds the rules to it, so a rule can fold a generic symptom (a capture alert, a reset,
an ms-diagnostics id) into its cause but never turn one specific cause into another. Rules act
on typed facts only (:class:`probes.model.Facts`: an alert's number and sender, DER names), never
on rendered evidence text.

Rules run in order and an observation belongs to the first rule that takes it, so a certificate
defect (self-signed, expired, wrong EKU) is named before the handshake symptom it causes
(symptom -> cause -> fix). Pure data and predicates: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from daemon.diagnosis.catalogue import HintCode
from probes.model import Facts, Finding
from probes.tlswire import Alert, Sender, alert_hint

_C = HintCode
FE, RMX = Sender.FE, Sender.RMX


@dataclass(frozen=True)
class Seen:
    """One finding with the probe that made it and that probe's (stage, reason) failure pair."""

    probe: str
    finding: Finding
    failure: tuple[str, str] | None = None

    @property
    def code(self) -> str:
        """The finding's code."""
        return self.finding.code

    @property
    def facts(self) -> Facts:
        """The finding's typed facts."""
        return self.finding.facts

    @property
    def alert(self) -> Alert | None:
        """The finding's fatal alert (number and sender), if any."""
        return self.finding.facts.alert

    def get(self, key: str) -> Any:
        """A rendered evidence value, for the report text only (None when absent)."""
        return self.finding.evidence.get(key)


Predicate = Callable[[Seen], bool]


@dataclass(frozen=True)
class Take:
    """Findings whose code is one of ``codes`` and for which ``when`` holds (always when None)."""

    codes: frozenset[str]
    when: Predicate | None = None

    def __call__(self, s: Seen) -> bool:
        return s.code in self.codes and (self.when is None or self.when(s))


def take(*codes: HintCode, when: Predicate | None = None) -> Take:
    """A matcher for findings with one of ``codes`` (and ``when``)."""
    return Take(frozenset(codes), when)


def alert(*numbers: int, sender: Sender) -> Predicate:
    """Findings whose fatal alert is one of ``numbers`` sent by ``sender``."""
    return lambda s: s.alert is not None and s.alert.number in numbers and s.alert.sender is sender


def ms_diagnostics(*ids: int) -> Predicate:
    """SIP answers whose ms-diagnostics header carries one of ``ids``."""
    return lambda s: any(i in ids for i in s.facts.ms_diagnostics)


def dropped_after_client_cert(s: Seen) -> bool:
    """The Front End reset or closed the connection right after the RMX's certificate, without an alert."""
    return s.facts.dropped_after_client_cert


def points_to(root: HintCode) -> Predicate:
    """Alerts the one alert table (:func:`probes.tlswire.alert_hint`) sends to ``root``."""
    return lambda s: s.alert is not None and alert_hint(s.alert, after_client_cert=s.facts.after_client_cert) == root


def same_alert(fired: Iterable[Seen]) -> Take:
    """Capture alerts citing an alert one of ``fired`` cites: one event seen twice (e.g. the probe's
    alert 40 after its certificate and the capture's alert 40 from the Front End)."""
    cited = {s.alert for s in fired if s.alert is not None}
    return take(_C.CAPTURE_TLS_ALERT, when=lambda s: s.alert in cited)


@dataclass(frozen=True)
class Rule:
    """A root cause: present when a ``fires`` finding is unclaimed (and ``requires`` is seen)."""

    root: HintCode
    fires: tuple[Take, ...]
    explains: tuple[Take, ...] = ()
    requires: Take | None = None

    def codes(self) -> frozenset[str]:
        """Every finding code this rule may take (same-alert capture alerts included)."""
        return frozenset({_C.CAPTURE_TLS_ALERT}).union(*(t.codes for t in (*self.fires, *self.explains)))


def own(code: HintCode, *explains: Take, requires: Take | None = None) -> Rule:
    """The rule of a finding code that is its own root cause (and what else it explains)."""
    return Rule(code, (take(code),), explains, requires)


def capture_alerts(root: HintCode) -> Take:
    """The capture's alerts that the one alert table sends to ``root``."""
    return take(_C.CAPTURE_TLS_ALERT, when=points_to(root))


# Codes that carry the Front End's refusal of the RMX certificate (with an alert, or a drop).
_REFUSALS = (_C.CLIENT_CERT_REJECTED, _C.CLIENT_CERT_UNKNOWN_CA, _C.CAPTURE_TLS_ALERT)
_DROPS = take(_C.CLIENT_CERT_REJECTED, _C.CAPTURE_RESET_AFTER_CLIENT_CERT, when=dropped_after_client_cert)
_SIP = (_C.SIP_ERROR_RESPONSE, _C.SIP_NOT_TRUSTED)


def _refusal(*numbers: int) -> Take:
    """The Front End's alerts ``numbers`` refusing the RMX certificate, from the probe or a capture
    (the probe reports alert 48 as CLIENT_CERT_UNKNOWN_CA, every other one as CLIENT_CERT_REJECTED)."""
    codes = _REFUSALS if 48 in numbers else tuple(c for c in _REFUSALS if c is not _C.CLIENT_CERT_UNKNOWN_CA)
    return take(*codes, when=alert(*numbers, sender=FE))


# The handshake symptoms a client-certificate trust defect produces on the Front End side.
_TRUST_SYMPTOMS = (take(_C.CLIENT_CERT_UNKNOWN_CA, _C.CERT_CHAIN_INCOMPLETE, _C.CAPTURE_TRUNCATED_CA_LIST,
                        _C.CAPTURE_EMPTY_CLIENT_CERT),
                   _refusal(42, 48), _DROPS, take(*_SIP, when=ms_diagnostics(1010, 1047)))
_ISSUER_NOT_LISTED = take(_C.CERT_CHAIN_INCOMPLETE, _C.CAPTURE_TRUNCATED_CA_LIST)
# The other roots the alert table names (the client-certificate ones have their rules above).
_TABLE_ROOTS = (_C.REGISTRAR_CERT_EXPIRED, _C.REGISTRAR_CERT_UNTRUSTED, _C.TLS_VERSION_MISMATCH,
                _C.TLS_HANDSHAKE_FAILURE)

RULES: tuple[Rule, ...] = (
    # The factory certificate: every other defect of that certificate and every trust symptom
    # disappears with the one fix (install a CA-issued certificate).
    # A CA certificate given as the RMX's: its name, EKUs, key and self-signature are the CA's, so
    # every other certificate defect and trust symptom goes away with the right certificate.
    own(_C.CERT_IS_CA, *_TRUST_SYMPTOMS,
        take(_C.CERT_SELF_SIGNED, _C.CERT_CN_MISMATCH, _C.CERT_NO_CDP, _C.CERT_EKU_MISSING, _C.CERT_KEY_MISMATCH,
             _C.CERT_SAN_PRESENT, _C.SIP_NOT_TRUSTED)),
    own(_C.CERT_SELF_SIGNED, *_TRUST_SYMPTOMS,
        take(_C.CERT_CN_MISMATCH, _C.CERT_NO_CDP, _C.CERT_EKU_MISSING, _C.CERT_WEAK_KEY,
             _C.CERT_SIGNATURE_UNSUPPORTED, _C.CERT_EXPIRING_SOON, _C.SIP_NOT_TRUSTED)),
    own(_C.CERT_IS_REQUEST),
    own(_C.PFX_BAD_PASSWORD),
    # Alert 51 decrypt_error: the RMX signed CertificateVerify with a key that is not the cert's.
    own(_C.CERT_KEY_MISMATCH, _refusal(51)),
    # Alert 45 covers expired AND not-yet-valid; ms-diagnostics 1013 is the Lync side's time skew.
    own(_C.CERT_EXPIRED, _refusal(45), take(*_SIP, when=ms_diagnostics(1013)), take(_C.CERT_EXPIRING_SOON)),
    own(_C.CERT_NOT_YET_VALID, _refusal(45), take(*_SIP, when=ms_diagnostics(1013))),
    # Alert 46 certificate_unknown (or 42) is how Schannel refuses a cert without clientAuth;
    # OpenSSL-based peers answer 43 unsupported_certificate.
    own(_C.CERT_EKU_MISSING, _refusal(46, 42, 43)),
    own(_C.CERT_SIGNATURE_UNSUPPORTED, _refusal(42, 46)),
    # The FE takes the peer's name from its certificate: a wrong name is not a trusted computer.
    own(_C.CERT_CN_MISMATCH, take(_C.SIP_NOT_TRUSTED, _C.SIP_NO_RESPONSE)),
    Rule(_C.CLIENT_CERT_UNKNOWN_CA, (take(_C.CLIENT_CERT_UNKNOWN_CA), capture_alerts(_C.CLIENT_CERT_UNKNOWN_CA)),
         (_refusal(48), _ISSUER_NOT_LISTED, _DROPS, take(*_SIP, when=ms_diagnostics(1010)))),
    # A reset after the client certificate plus evidence that the FE cannot chain the RMX issuer:
    # the reset is Schannel's way of saying unknown_ca (field traces show WSAECONNRESET, ms-diagnostics 1047).
    Rule(_C.CLIENT_CERT_UNKNOWN_CA, (_DROPS,),
         (_ISSUER_NOT_LISTED, _DROPS, take(*_SIP, when=ms_diagnostics(1010, 1047))), requires=_ISSUER_NOT_LISTED),
    # An unreachable CDP/OCSP stalls the FE's check of the RMX certificate (~30 s, then RST).
    own(_C.CERT_REVOCATION_UNREACHABLE, take(_C.REGISTRAR_TLS_TIMEOUT), _DROPS),
    # No certificate sent: the Front End's alert 116/40, or its close right after, say just that.
    own(_C.CAPTURE_EMPTY_CLIENT_CERT, take(_C.CAPTURE_TRUNCATED_CA_LIST), _DROPS,
        take(_C.CLIENT_CERT_REJECTED, _C.TLS_HANDSHAKE_FAILURE, _C.CAPTURE_TLS_ALERT,
             when=alert(116, 40, sender=FE))),
    Rule(_C.CLIENT_CERT_REJECTED, (take(_C.CLIENT_CERT_REJECTED), capture_alerts(_C.CLIENT_CERT_REJECTED)),
         (_DROPS, take(*_SIP, when=ms_diagnostics(1047)))),
    # The probe's own verdicts on the Front End's certificate or offer: each keeps its code, and
    # the capture's record of the same alert joins it (they come before the alert-table rules below).
    own(_C.REGISTRAR_CERT_NAME_MISMATCH),
    own(_C.REGISTRAR_CERT_INVALID),
    own(_C.TLS_LOCAL_POLICY),
    *(own(code) for code in _TABLE_ROOTS),
    # What the one alert table makes of the remaining capture alerts.
    *(Rule(code, (capture_alerts(code),)) for code in _TABLE_ROOTS),
    own(_C.REGISTRAR_UNREACHABLE, take(_C.CAPTURE_NO_SERVER_RESPONSE)),
    own(_C.REGISTRAR_TLS_TIMEOUT, take(_C.CAPTURE_NO_SERVER_RESPONSE)),
    own(_C.TLS_PORT_NOT_TLS),
)

# Alarm codes are folded into probe root causes after the rules ran (see daemon.diagnosis.diagnose).
REGISTRATION_ALARM = _C.RMX_ALARM_REGISTRATION
CERTIFICATE_ALARM = _C.RMX_ALARM_CERTIFICATE
UNCORROBORATED = _C.ALARM_UNCORROBORATED


# What each RMX certificate alarm claims, as the certificate findings that would
# confirm it. Alarm texts are matched here only, loosely (field variants exist); checked in order.
_CERTIFICATE_ALARM_CLAIMS: tuple[tuple[str, frozenset[str]], ...] = (
    ("about to expire", frozenset({"CERT_EXPIRING_SOON", "CERT_EXPIRED"})),
    ("expired", frozenset({"CERT_EXPIRED", "CERT_NOT_YET_VALID"})),
    ("subject name", frozenset({"CERT_CN_MISMATCH", "CERT_DNS_MISMATCH"})),
    ("load or verify", frozenset({"PFX_BAD_PASSWORD", "CERT_KEY_MISMATCH", "CERT_CHAIN_INCOMPLETE",
                                  "CERT_IS_REQUEST", "CERT_SELF_SIGNED", "CERT_SIGNATURE_UNSUPPORTED",
                                  "CERT_EKU_MISSING", "CERT_WEAK_KEY", "CERT_IS_CA"})),
)


def certificate_alarm_claims(texts: object) -> frozenset[str] | None:
    """The certificate codes that would confirm these alarm texts (None: some text is unknown)."""
    if not isinstance(texts, list) or not texts:
        return None
    claims: set[str] = set()
    for text in texts:
        lowered = str(text).lower()
        match = next((codes for needle, codes in _CERTIFICATE_ALARM_CLAIMS if needle in lowered), None)
        if match is None:
            return None
        claims |= match
    return frozenset(claims)
