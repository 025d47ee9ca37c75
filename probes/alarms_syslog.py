"""RMX alarm texts carried by syslog lines (RFC 3164 and RFC 5424 framing, as files store them).

A syslog file holds mostly other traffic: only lines whose message classifies into a known
alarm category (registration, certificate, ICE, revocation) are alarms; the rest are counted as
ignored. Bulk reading finds candidate lines with a C-speed literal prefilter
(:data:`probes.alarms_lines.PREFILTER`) and parses only those. A message saying the alarm was
cleared ("... cleared", "alarm cleared: ...") marks it cleared. Pure: never raises.
"""

from __future__ import annotations

import io
import re
from typing import BinaryIO

from probes.alarms_lines import ParseResult, decode_line, iter_prefiltered
from probes.alarms_model import Alarm, AlarmCategory, AlarmSource, AlarmState, make_alarm, normalise

# RFC 5424: <PRI>VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]
_RFC5424 = re.compile(
    r"^(?:<(?P<pri>\d{1,3})>)?1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) \S+ \S+ "
    r"(?P<sd>-|(?:\[(?:[^\]\\]|\\.)*\])+)(?: (?P<msg>.*))?$")
# RFC 3164 (and the ISO-timestamp variant rsyslog writes): <PRI>TIMESTAMP HOSTNAME TAG[PID]: MSG
_RFC3164 = re.compile(
    r"^(?:<(?P<pri>\d{1,3})>)?(?P<ts>[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2}|\d{4}-\d{2}-\d{2}T\S+) "
    r"(?P<host>\S+) (?:(?P<app>[^\s:\[]+)(?:\[[^\]]*\])?: ?)?(?P<msg>.*)$")
_CLEARED = re.compile(r"\b(cleared|alarm clear|clear alarm)\b")
_ALARM_CATEGORIES = frozenset({AlarmCategory.REGISTRATION, AlarmCategory.CERTIFICATE, AlarmCategory.ICE,
                               AlarmCategory.REVOCATION})


def parse_syslog_line(text: str, file: str | None = None, line_no: int | None = None,
                      ) -> tuple[bool, Alarm | None]:
    """(framed as syslog, the alarm the line carries if any)."""
    m = _RFC5424.match(text) or _RFC3164.match(text)
    framed = m is not None
    if m is not None:
        message, when = (m.group("msg") or ""), m.group("ts")
    else:  # be liberal: a bare alarm text without framing still counts
        message, when = text, None
    message = message.lstrip("\ufeff").strip()
    if not message:
        return framed, None
    alarm = make_alarm(AlarmSource.SYSLOG, message, time=when, file=file, line=line_no)
    if alarm.category not in _ALARM_CATEGORIES:
        return framed, None
    if _CLEARED.search(normalise(message)):
        alarm = make_alarm(AlarmSource.SYSLOG, _strip_clear(message), time=when, file=file, line=line_no,
                           state=AlarmState.CLEARED)
    return framed, alarm


_CLEAR_WORDS = re.compile(r"^(alarm )?cleared\s*[:-]\s*|\s*[-:(]?\s*\(?cleared\)?\s*$", re.IGNORECASE)


def _strip_clear(message: str) -> str:
    """The alarm text without its 'cleared' marker, so it matches the raised text's key."""
    return _CLEAR_WORDS.sub("", message).strip() or message


def parse_syslog_stream(stream: BinaryIO, file: str | None = None) -> ParseResult:
    """Parse a syslog stream in bounded memory (one chunk + the alarms found)."""
    result = ParseResult([])
    for candidates, count in iter_prefiltered(stream, result.skips):
        for raw in candidates:
            text = decode_line(raw, result.skips)
            if text is None:
                continue
            framed, alarm = parse_syslog_line(text, file)
            result.recognised = result.recognised or framed
            if alarm is None:
                result.ignored += 1
            else:
                result.alarms.append(alarm)
        result.ignored += count - len(candidates)
        result.lines += count
    return result


def parse_syslog(data: bytes, file: str | None = None) -> ParseResult:
    """Parse syslog lines held in memory."""
    return parse_syslog_stream(io.BytesIO(data), file)


def looks_like_syslog(data: bytes) -> bool:
    """True when one of the first lines has syslog framing."""
    for raw in data[:65536].split(b"\n")[:50]:
        text = raw.decode("utf-8", "replace")
        if _RFC5424.match(text) or _RFC3164.match(text):
            return True
    return False
