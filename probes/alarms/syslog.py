"""RMX alarm texts carried by syslog lines (RFC 3164 and RFC 5424 framing, as files store them).

A syslog file holds mostly other traffic: only lines whose message classifies into a known
alarm category (registration, certificate, ICE, revocation) are alarms; the rest are counted as
ignored. Bulk reading finds candidate lines with a C-speed literal prefilter
(:data:`probes.alarms.lines.PREFILTER`) and parses only those. A message saying the alarm was
cleared ("... cleared", "alarm cleared: ...") marks it cleared. Pure: never raises.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from probes.alarms.lines import KEEP_EVENTS, MAX_LINE, ParseResult, Skips, binary_bytes, decode_line, iter_prefiltered
from probes.alarms.model import Alarm, AlarmCategory, AlarmSource, AlarmState, classify, make_alarm, normalise

log = logging.getLogger(__name__)

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


def _frame(text: str) -> tuple[bool, str | None, str]:
    """(framed as syslog, timestamp, message) of one line."""
    # Pick the likely framing first: "<PRI>1 " is RFC 5424 (saves a failed match per line).
    if text[4:7] == ">1 " or text[3:6] == ">1 " or text[2:5] == ">1 " or text.startswith("1 "):
        m = _RFC5424.match(text) or _RFC3164.match(text)
    else:
        m = _RFC3164.match(text) or _RFC5424.match(text)
    if m is None:  # be liberal: a bare alarm text without framing still counts
        return False, None, text.strip()
    return True, m.group("ts"), (m.group("msg") or "").lstrip("\ufeff").strip()


@dataclass(frozen=True, slots=True)
class _Meaning:
    """What a message text means, computed once per distinct text."""

    text: str  # the alarm text (a clear marker removed)
    state: AlarmState
    key: tuple[str, str]


_NOT_ALARM = _Meaning("", AlarmState.CLEARED, ("", ""))


_DIGITS = re.compile(r"\d+")


def _meaning(message: str, memo: dict[str, _Meaning]) -> _Meaning:
    """The meaning of a message, memoised; non-alarm messages are memoised with digits folded,
    so a stream of 'conference 1234 started' lines costs one classification, not thousands."""
    found = memo.get(message)
    if found is not None:
        return found
    folded = "#" + _DIGITS.sub("0", message)  # '#': never equal to a real message key
    if memo.get(folded) is _NOT_ALARM:
        return _NOT_ALARM
    if classify(message).category not in _ALARM_CATEGORIES:
        found, key = _NOT_ALARM, folded
    else:
        cleared = bool(_CLEARED.search(normalise(message)))
        text = _strip_clear(message) if cleared else message
        found = _Meaning(text, AlarmState.CLEARED if cleared else AlarmState.RAISED, ("text", normalise(text)))
        key = message
    if len(memo) >= 4096:  # bounded: distinct texts are few, but a hostile log could vary them
        memo.clear()
    memo[key] = found
    return found


def parse_syslog_line(text: str, file: str | None = None, line_no: int | None = None,
                      ) -> tuple[bool, Alarm | None]:
    """(framed as syslog, the alarm the line carries if any)."""
    framed, when, message = _frame(text)
    if not message:
        return framed, None
    meaning = _meaning(message, {})
    if meaning is _NOT_ALARM:
        return framed, None
    return framed, make_alarm(AlarmSource.SYSLOG, meaning.text, time=when, file=file, line=line_no,
                              state=meaning.state)


_CLEAR_WORDS = re.compile(r"^(alarm )?cleared\s*[:-]\s*|\s*[-:(]?\s*\(?cleared\)?\s*$", re.IGNORECASE)


def _strip_clear(message: str) -> str:
    """The alarm text without its 'cleared' marker, so it matches the raised text's key."""
    return _CLEAR_WORDS.sub("", message).strip() or message


def parse_syslog_stream(stream: BinaryIO, file: str | None = None) -> ParseResult:
    """Parse a syslog stream in bounded memory (one chunk, the kept events, the active set)."""
    result = ParseResult()
    _consume(result, iter_prefiltered(stream, result.skips), file)
    return result


def parse_syslog_file(path: Path) -> ParseResult:
    """Parse a syslog file; big files use grep for the prefilter when it is available.

    With grep, lines that match no literal are never seen, so ``lines`` counts the matching
    lines only and ``lines_known`` is False.
    """
    from probes.alarms.grep import MIN_SIZE, GrepFailed, grep_prefiltered

    if path.stat().st_size >= MIN_SIZE:
        result = ParseResult(lines_known=False)
        try:
            _consume(result, ((batch, len(batch)) for batch in grep_prefiltered(path, result.skips)), str(path))
            return result
        except GrepFailed as exc:
            log.info("%s: grep prefilter unavailable (%s): using the Python prefilter", path, exc)
    with path.open("rb") as stream:
        return parse_syslog_stream(stream, str(path))


# Both framings as ONE multi-line pattern: a whole batch is framed by one finditer in C (the
# same grammar as _RFC5424/_RFC3164 above; a test checks both give the same answers).
_BATCH_FRAME = re.compile(
    r"^(?:(?:<\d{1,3}>)?(?:"
    r"1 (?P<t5>\S+) \S+ \S+ \S+ \S+ (?:-|(?:\[(?:[^\]\\\n]|\\.)*\])+)(?: (?P<m5>[^\n]*))?"
    r"|(?P<t3>[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2}|\d{4}-\d{2}-\d{2}T\S+) \S+ "
    r"(?:[^\s:\[]+(?:\[[^\]\n]*\])?: ?)?(?P<m3>[^\n]*))"
    r"|(?P<bare>[^\n]*))$", re.MULTILINE)


def _decoded(lines: list[bytes], skips: Skips) -> list[str]:
    """The texts of a batch of lines: one C pass for a clean batch, else line by line (counted)."""
    if lines and max(map(len, lines)) <= MAX_LINE:
        joined = b"\n".join(lines)
        if not binary_bytes(joined):
            try:
                text = joined.decode("utf-8")
            except UnicodeDecodeError:
                pass
            else:
                lines_out = text.split("\n")
                return [t.rstrip("\r") for t in lines_out] if b"\r" in joined else lines_out
    return [t for t in (decode_line(raw, skips) for raw in lines) if t is not None]


def frames(lines: list[str]) -> Iterator[tuple[bool, str | None, str]]:
    """(framed, timestamp, message) of each line, like :func:`_frame`, in one regex pass."""
    if not lines:
        return  # "".join([]) would still yield one empty match
    for m in _BATCH_FRAME.finditer("\n".join(lines)):
        t5, m5, t3, m3, bare = m.groups()
        if t5 is not None:
            yield True, t5, (m5 or "").lstrip("\ufeff").strip()
        elif t3 is not None:
            yield True, t3, m3.lstrip("\ufeff").strip()
        else:
            yield False, None, bare.strip()


def _consume(result: ParseResult, batches: Iterable[tuple[list[bytes], int]], file: str | None) -> None:
    """Hot path for big logs: per candidate line only a dict lookup runs in Python (framing is
    one regex pass per batch); Alarm objects are built only for kept events and for alarms that
    become active."""
    memo: dict[str, _Meaning] = {}
    active = result.active
    keep = KEEP_EVENTS
    for candidates, count in batches:
        result.matched += len(candidates)
        result.lines += count
        ignored = count - len(candidates)
        for framed, when, message in frames(_decoded(candidates, result.skips)):
            if framed:
                result.recognised = True
            meaning = _meaning(message, memo) if message else _NOT_ALARM
            if meaning is _NOT_ALARM:
                ignored += 1
                continue
            result.events += 1
            if len(result.alarms) < keep:
                alarm = make_alarm(AlarmSource.SYSLOG, meaning.text, time=when, file=file, state=meaning.state)
                result.alarms.append(alarm)
                active.apply(alarm)
            elif meaning.state is AlarmState.CLEARED:
                active.drop(meaning.key)
            elif not active.has(meaning.key):
                active.apply(make_alarm(AlarmSource.SYSLOG, meaning.text, time=when, file=file))
        result.ignored += ignored


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
