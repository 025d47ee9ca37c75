"""The one RMX alarm model and its classification, shared by every alarm source.

Classification is ONE table (:data:`RULES`): a regular expression over the *normalised* alarm
text (lower case, every dash variant and every run of punctuation/space folded into one space),
the category it means, and what such an alarm usually means on an RMX registered with Lync/SfB
(from the RMX administrator's guides and field reports). A new firmware wording is one more
line in that table. First match wins, so
specific wordings come before generic ones.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class AlarmCategory(enum.StrEnum):
    """Our classification of an alarm text (label-safe: used as a metric label value)."""

    REGISTRATION = "registration"  # registration / transport towards the Front End
    CERTIFICATE = "certificate"
    ICE = "ice"
    REVOCATION = "revocation"
    OTHER = "other"


class AlarmState(enum.StrEnum):
    """Whether a source says the alarm was raised or cleared."""

    RAISED = "raised"
    CLEARED = "cleared"


class AlarmSource(enum.StrEnum):
    """Where an alarm was read."""

    REPORT = "report"  # saved Active Alarms / System Alerts .txt
    SNMP = "snmp"  # snmptrapd log of POLYCOM-RMX-MIB traps
    SYSLOG = "syslog"  # RFC 3164 / RFC 5424 lines
    XML_API = "xml_api"  # RMX XML API (counts only: texts are not documented there)


@dataclass(frozen=True, slots=True)
class Rule:
    """One line of the classification table."""

    name: str  # stable short name (shown in JSON), e.g. "registration_handshake_failure"
    pattern: re.Pattern[str]  # searched in the normalised text
    category: AlarmCategory
    meaning: str  # what this alarm usually means


def _r(name: str, regex: str, category: AlarmCategory, meaning: str) -> Rule:
    return Rule(name, re.compile(regex), category, meaning)


_REG, _CERT, _ICE, _REV = (AlarmCategory.REGISTRATION, AlarmCategory.CERTIFICATE, AlarmCategory.ICE,
                           AlarmCategory.REVOCATION)

# THE table. Regexes see normalised text ("SIP TLS: Registration handshake failure" ->
# "sip tls registration handshake failure"); "can ?not" accepts "cannot" and "can not".
RULES: tuple[Rule, ...] = (
    _r("registration_handshake_failure", r"registration handshake fail", _REG,
       "The TLS handshake with the Front End failed: usually the Front End does not trust the RMX "
       "certificate's issuer (root/intermediate missing on the Front End), or a certificate content "
       "problem (EKU, signature)."),
    _r("registration_transport_error", r"registration transport error", _REG,
       "The RMX could not reach the registrar: wrong SIP server IP/port, Front End services stopped, "
       "or a firewall on 5061."),
    _r("registration_server_not_responding", r"registration server not respond", _REG,
       "The registrar did not answer: the RMX FQDN is usually not a trusted application computer of "
       "the pool, or DNS is wrong; restarting the pool may be needed after a topology change."),
    _r("registration_no_response", r"no response from (the )?registration server", _REG,
       "The registrar (the cs id names which SIP server entry) did not answer: reachability, DNS or "
       "trusted-application configuration."),
    _r("registrar_connection_failed", r"can ?not (establish|open) (a )?connection (with|to) (the )?sip registrar",
       _REG, "No connection to the SIP registrar at all: address/port, Front End down or firewall."),
    _r("registration_failed_conference", r"registration failed for (some|a|one) conference", _REG,
       "Some conferences/meeting rooms could not register: a registrar-side refusal (the RMX is not "
       "a trusted application, or a name mismatch) or transport trouble."),
    # Missing or unreadable certificate files (before "secured SIP failed", which such texts may also contain).
    _r("certificate_file_unreadable",
       r"certificate files? (is |are )?(missing|not found|not exist|unreadable|not readable|corrupt|invalid|empty)"
       r"|(missing|unreadable|no|can ?not (read|open|find|load)|fail(ed|ure)? to (read|open|find)|error reading)"
       r" (the )?(sip tls |tls |ssl )?certificate files?",
       _CERT, "The RMX cannot find or read its SIP TLS certificate files (cert.pem, pkey.pem, rootCA.pem, "
       "certPassword.txt, or the PFX): they were never installed, were lost in an upgrade or restore, or are "
       "corrupt. Import the certificate again."),
    _r("secured_sip_failed", r"secured sip communication fail", _REG,
       "SIP over TLS with the registrar failed: look at the certificate and trust hints."),
    _r("certificate_load_failed", r"fail(ed)? to load or verify certificate", _CERT,
       "The RMX could not load its SIP TLS certificate files: wrong password, a CSR pasted instead of "
       "the certificate, a key that does not match, or a missing CA."),
    _r("certificate_expired", r"certificate (has )?expired", _CERT,
       "The certificate has expired (or the RMX clock is wrong): renew it and check NTP."),
    _r("certificate_expiring", r"certificate (is )?about to expire", _CERT,
       "The certificate expires soon: renew it before it does."),
    _r("certificate_subject_invalid", r"certificate subject name (is )?not valid|dns failed to resolve", _CERT,
       "The certificate CN/SAN does not match the RMX signaling FQDN, or that FQDN does not resolve."),
    _r("sip_tls_certificate", r"sip tls certificate", _CERT,
       "A SIP TLS certificate problem reported by the RMX."),
    _r("ice_failure", r"\bice failure", _ICE,
       "ICE with the Edge (A/V Edge, MRAS) failed: remote/federated calls lose media, registration "
       "itself may be fine."),
    _r("ocsp_not_responding", r"ocsp (responder|server)? ?(is )?not respond|ocsp.*(unreachable|fail)", _REV,
       "The OCSP responder did not answer: handshakes can stall; check the RMX revocation method and "
       "responder URL."),
    _r("revocation", r"revocation|\bcrl\b", _REV,
       "A revocation check problem (CRL/OCSP): an unreachable CDP stalls handshakes (~30 s)."),
)

MEANINGS: dict[AlarmCategory, str] = {
    AlarmCategory.REGISTRATION: "The RMX cannot register with the Lync/SfB Front End over SIP TLS "
    "(transport, handshake or trusted-application problem).",
    AlarmCategory.CERTIFICATE: "The RMX's SIP TLS certificate is missing, unloadable, expired/expiring "
    "or names the wrong FQDN.",
    AlarmCategory.ICE: "Media traversal through the Edge failed; it does not block registration.",
    AlarmCategory.REVOCATION: "Revocation checking (CRL/OCSP) is failing; handshakes may stall.",
    AlarmCategory.OTHER: "Not related to the Lync/SfB integration as far as rmxdiag knows.",
}

# Every dash a text editor or a firmware may produce: hyphen, en/em dash, minus, figure dash...
_DASHES = str.maketrans({c: "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"})
_NON_WORD = re.compile(r"[^a-z0-9]+")
_CS_ID = re.compile(r"\bcs ?id ?(\d{1,6})\b")
_EXPIRED = re.compile(r"\bexpired\b")


def normalise(text: str) -> str:
    """Lower case, dashes unified, punctuation and whitespace folded to single spaces."""
    return _NON_WORD.sub(" ", text.translate(_DASHES).lower()).strip()


@dataclass(frozen=True, slots=True)
class Classification:
    """The category of a text, the rule that matched (None: no rule) and the cs id if any."""

    category: AlarmCategory
    rule: Rule | None
    cs_id: int | None


@functools.lru_cache(maxsize=4096)  # alarm texts repeat: classify each distinct text once
def classify(text: str) -> Classification:
    """Classify one alarm text through :data:`RULES` (first match wins; none -> ``other``)."""
    norm = normalise(text)
    cs = _CS_ID.search(norm)
    cs_id = int(cs.group(1)) if cs else None
    for rule in RULES:
        if rule.pattern.search(norm):
            return Classification(rule.category, rule, cs_id)
    return Classification(AlarmCategory.OTHER, None, cs_id)


def says_expired(text: str) -> bool:
    """True when a certificate alarm says the certificate HAS expired (not 'about to expire')."""
    return bool(_EXPIRED.search(normalise(text)))


@dataclass(frozen=True, slots=True)
class Alarm:
    """One RMX alarm as read from any source.

    ``alarm_id`` is the report's ID column or the trap's rmxActiveAlarmIndex (None: the source
    has none). ``time``/``gmt_time`` are the texts as the source wrote them (None: absent).
    ``rmx_category``/``level`` are the RMX's own Category/Level columns (None: absent).
    ``category``/``rule``/``cs_id`` are our classification. ``file``/``line`` locate the text.
    """

    source: AlarmSource
    description: str
    category: AlarmCategory
    rule: str | None = None
    alarm_id: str | None = None
    time: str | None = None
    gmt_time: str | None = None
    rmx_category: str | None = None
    level: str | None = None
    cs_id: int | None = None
    state: AlarmState = AlarmState.RAISED
    file: str | None = None
    line: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        """Identity in the active set: the RMX index when known, else the normalised text."""
        if self.alarm_id:
            return ("id", self.alarm_id)
        return ("text", normalise(self.description))

    @property
    def meaning(self) -> str:
        """What this alarm usually means."""
        rule = next((r for r in RULES if r.name == self.rule), None)
        return rule.meaning if rule else MEANINGS[self.category]

    def to_json(self) -> dict[str, Any]:
        """JSON shape of one alarm (None fields omitted)."""
        doc = {"source": str(self.source), "description": self.description, "category": str(self.category),
               "rule": self.rule, "id": self.alarm_id, "time": self.time, "gmt_time": self.gmt_time,
               "rmx_category": self.rmx_category, "level": self.level, "cs_id": self.cs_id,
               "state": str(self.state), "file": self.file, "line": self.line}
        return {k: v for k, v in doc.items() if v is not None}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Alarm:
        """Inverse of :meth:`to_json` (used by the follower's persisted active set)."""
        return cls(AlarmSource(doc["source"]), str(doc["description"]), AlarmCategory(doc["category"]),
                   doc.get("rule"), doc.get("id"), doc.get("time"), doc.get("gmt_time"),
                   doc.get("rmx_category"), doc.get("level"), doc.get("cs_id"),
                   AlarmState(doc.get("state", "raised")), doc.get("file"), doc.get("line"))


def make_alarm(source: AlarmSource, description: str, **fields: Any) -> Alarm:
    """Build an alarm from a source's fields and classify its text."""
    text = description.strip()
    c = classify(text)
    return Alarm(source, text, c.category, c.rule.name if c.rule else None, cs_id=c.cs_id, **fields)


class ActiveSet:
    """The currently active alarms: raised ones added, cleared ones removed (bounded)."""

    def __init__(self, limit: int = 10_000) -> None:
        self._active: dict[tuple[str, str], Alarm] = {}
        self.limit = limit
        self.dropped = 0  # raised alarms not kept because the set was full

    def apply(self, alarm: Alarm) -> bool:
        """Apply a raise/clear; True when the alarm is NEW in the active set.

        A repeated raise keeps the first one (its time says since when the alarm is active).
        """
        key = alarm.key
        if alarm.state is AlarmState.CLEARED:
            self._active.pop(key, None)
            # A clear that carries an index also clears a same-text alarm known without one.
            if key[0] == "id":
                self._active.pop(("text", normalise(alarm.description)), None)
            return False
        if key in self._active:
            return False
        if len(self._active) >= self.limit:
            self.dropped += 1
            return False
        self._active[key] = alarm
        return True

    def extend(self, alarms: Iterable[Alarm]) -> None:
        """Apply many alarms in order."""
        for alarm in alarms:
            self.apply(alarm)

    def has(self, key: tuple[str, str]) -> bool:
        """True when an alarm with this key is active."""
        return key in self._active

    def drop(self, key: tuple[str, str]) -> None:
        """Clear by key (no-op when not active)."""
        self._active.pop(key, None)

    def alarms(self) -> tuple[Alarm, ...]:
        """The active alarms, in the order they were first raised."""
        return tuple(self._active.values())

    def __len__(self) -> int:
        return len(self._active)
