"""The correlation rules of the diagnosis: which root cause explains which observations.

Each :class:`Rule` names a root-cause hint code, the observations that show it is present
(``fires``) and the other observations it explains (``explains``), which become evidence of that
one hint instead of hints of their own. Rules run in order and an observation belongs to the
first rule that takes it, so a certificate defect (self-signed, expired, wrong EKU) is named
before the handshake symptom it causes (symptom -> cause -> fix). Pure data and predicates: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from probes.model import Finding

FE = "from_fe"  # sent by the Front End (the TLS server)
RMX = "from_rmx"  # sent by the RMX (the TLS client)


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

    def get(self, key: str) -> Any:
        """An evidence value (None when absent)."""
        return self.finding.evidence.get(key)


Match = Callable[[Seen], bool]


def code(*codes: str) -> Match:
    """Findings with one of ``codes``."""
    return lambda s: s.code in codes


def alert(*numbers: int, sent_by: str | None = None) -> Match:
    """Findings citing one of the TLS alert ``numbers`` (any code).

    ``sent_by=FE`` also accepts findings without a direction: the mtls probe is the client, so an
    alert it reports (other than its own verdict on the FE certificate) came from the Front End.
    """
    def match(s: Seen) -> bool:
        number = s.get("alert")
        if not isinstance(number, int) or number not in numbers:
            return False
        direction = s.get("direction")
        if sent_by == FE:
            return direction == FE or (direction is None and not s.code.startswith("REGISTRAR_"))
        return sent_by is None or direction == sent_by
    return match


def ms_diagnostics(*ids: int) -> Match:
    """SIP answers whose ms-diagnostics header carries one of ``ids``."""
    def match(s: Seen) -> bool:
        entries = s.get("ms_diagnostics")
        return isinstance(entries, list) and any(
            isinstance(e, dict) and e.get("id") in ids for e in entries)
    return match


def reset_after_client_cert(s: Seen) -> bool:
    """A connection reset/closed by the Front End right after the RMX sent its certificate.

    The capture says so with its own code; the mtls probe reports CLIENT_CERT_REJECTED without an
    alert and a reason naming the reset/close (Schannel often resets instead of alerting).
    """
    if s.code == "CAPTURE_RESET_AFTER_CLIENT_CERT":
        return True
    if s.code != "CLIENT_CERT_REJECTED" or s.get("alert") is not None:
        return False
    # The mtls probe's closed reasons: reset_after_client_cert / closed_after_client_cert.
    reasons = [str(s.get("reason") or "")] + ([s.failure[1]] if s.failure else [])
    return any(r.endswith("_after_client_cert") for r in reasons)


def same_alert(fired: list[Seen]) -> Match:
    """Findings citing an alert one of ``fired`` cites, sent the same way: one event seen twice
    (e.g. the probe's alert 40 after its certificate and the capture's alert 40 from the FE)."""
    cited = {(s.get("alert"), s.get("direction")) for s in fired if isinstance(s.get("alert"), int)}

    def match(s: Seen) -> bool:
        number, direction = s.get("alert"), s.get("direction")
        return any(number == n and (direction is None or d is None or direction == d) for n, d in cited)
    return match


def any_of(*matches: Match) -> Match:
    """True when one of ``matches`` is."""
    return lambda s: any(m(s) for m in matches)


@dataclass(frozen=True)
class Rule:
    """A root cause: present when a ``fires`` finding is unclaimed (and ``requires`` is seen)."""

    root: str
    fires: Match
    explains: tuple[Match, ...] = ()
    requires: Match | None = None


# The handshake symptoms a client-certificate defect produces on the Front End side.
_TRUST_SYMPTOMS = (code("CLIENT_CERT_UNKNOWN_CA", "CERT_CHAIN_INCOMPLETE", "CAPTURE_TRUNCATED_CA_LIST",
                        "CAPTURE_EMPTY_CLIENT_CERT"),
                   alert(42, 48, sent_by=FE), reset_after_client_cert, ms_diagnostics(1010, 1047))
_ISSUER_NOT_LISTED = code("CERT_CHAIN_INCOMPLETE", "CAPTURE_TRUNCATED_CA_LIST")

RULES: tuple[Rule, ...] = (
    # The factory certificate: every other defect of that certificate and every trust symptom
    # disappears with the one fix (install a CA-issued certificate).
    # A CA certificate given as the RMX's: its name, EKUs, key and self-signature are the CA's, so
    # every other certificate defect and trust symptom goes away with the right certificate.
    Rule("CERT_IS_CA", code("CERT_IS_CA"),
         (*_TRUST_SYMPTOMS, code("CERT_SELF_SIGNED", "CERT_CN_MISMATCH", "CERT_NO_CDP", "CERT_EKU_MISSING",
                                 "CERT_KEY_MISMATCH", "CERT_SAN_PRESENT", "SIP_NOT_TRUSTED"))),
    Rule("CERT_SELF_SIGNED", code("CERT_SELF_SIGNED"),
         (*_TRUST_SYMPTOMS, code("CERT_CN_MISMATCH", "CERT_NO_CDP", "CERT_EKU_MISSING", "CERT_WEAK_KEY",
                                 "CERT_SIGNATURE_UNSUPPORTED", "CERT_EXPIRING_SOON", "SIP_NOT_TRUSTED"))),
    Rule("CERT_IS_REQUEST", code("CERT_IS_REQUEST")),
    Rule("PFX_BAD_PASSWORD", code("PFX_BAD_PASSWORD")),
    # Alert 51 decrypt_error: the RMX signed CertificateVerify with a key that is not the cert's.
    Rule("CERT_KEY_MISMATCH", code("CERT_KEY_MISMATCH"), (alert(51),)),
    # Alert 45 covers expired AND not-yet-valid; ms-diagnostics 1013 is the Lync side's time skew.
    Rule("CERT_EXPIRED", code("CERT_EXPIRED"),
         (alert(45, sent_by=FE), ms_diagnostics(1013), code("CERT_EXPIRING_SOON"))),
    Rule("CERT_NOT_YET_VALID", code("CERT_NOT_YET_VALID"), (alert(45, sent_by=FE), ms_diagnostics(1013))),
    # Alert 46 certificate_unknown (or 42) is how Schannel refuses a cert without clientAuth;
    # OpenSSL-based peers answer 43 unsupported_certificate.
    Rule("CERT_EKU_MISSING", code("CERT_EKU_MISSING"), (alert(46, 42, 43, sent_by=FE),)),
    Rule("CERT_SIGNATURE_UNSUPPORTED", code("CERT_SIGNATURE_UNSUPPORTED"), (alert(42, 46, sent_by=FE),)),
    # The FE takes the peer's name from its certificate: a wrong name is not a trusted computer.
    Rule("CERT_CN_MISMATCH", code("CERT_CN_MISMATCH"), (code("SIP_NOT_TRUSTED", "SIP_NO_RESPONSE"),)),
    Rule("CLIENT_CERT_UNKNOWN_CA", any_of(code("CLIENT_CERT_UNKNOWN_CA"), alert(48, sent_by=FE)),
         (alert(48, sent_by=FE), _ISSUER_NOT_LISTED, reset_after_client_cert, ms_diagnostics(1010))),
    # A reset after the client certificate plus evidence that the FE cannot chain the RMX issuer:
    # the reset is Schannel's way of saying unknown_ca (field traces show WSAECONNRESET, ms-diagnostics 1047).
    Rule("CLIENT_CERT_UNKNOWN_CA", reset_after_client_cert,
         (_ISSUER_NOT_LISTED, reset_after_client_cert, ms_diagnostics(1010, 1047)), requires=_ISSUER_NOT_LISTED),
    # An unreachable CDP/OCSP stalls the FE's check of the RMX certificate (~30 s, then RST).
    Rule("CERT_REVOCATION_UNREACHABLE", code("CERT_REVOCATION_UNREACHABLE"),
         (code("REGISTRAR_TLS_TIMEOUT"), reset_after_client_cert)),
    Rule("CAPTURE_EMPTY_CLIENT_CERT", code("CAPTURE_EMPTY_CLIENT_CERT"),
         (code("CAPTURE_TRUNCATED_CA_LIST"), alert(116, 40, sent_by=FE))),
    Rule("CLIENT_CERT_REJECTED", any_of(code("CLIENT_CERT_REJECTED"), alert(42, 43, 44, 45, 46, 116, sent_by=FE)),
         (alert(42, 43, 44, 45, 46, 116, sent_by=FE), reset_after_client_cert, ms_diagnostics(1047))),
    Rule("TLS_VERSION_MISMATCH", any_of(code("TLS_VERSION_MISMATCH"), alert(70)), (alert(70),)),
    Rule("TLS_HANDSHAKE_FAILURE", any_of(code("TLS_HANDSHAKE_FAILURE"), alert(40, 71)), (alert(40, 71),)),
    Rule("REGISTRAR_CERT_UNTRUSTED", any_of(code("REGISTRAR_CERT_UNTRUSTED"), alert(48, 42, sent_by=RMX)),
         (alert(48, 42, sent_by=RMX),)),
    Rule("REGISTRAR_UNREACHABLE", code("REGISTRAR_UNREACHABLE"), (code("CAPTURE_NO_SERVER_RESPONSE"),)),
    Rule("REGISTRAR_TLS_TIMEOUT", code("REGISTRAR_TLS_TIMEOUT"), (code("CAPTURE_NO_SERVER_RESPONSE"),)),
)

# Alarm codes are folded into probe root causes after the rules ran (see daemon.diagnosis.diagnose).
REGISTRATION_ALARM = "RMX_ALARM_REGISTRATION"
CERTIFICATE_ALARM = "RMX_ALARM_CERTIFICATE"
UNCORROBORATED = "ALARM_UNCORROBORATED"


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
