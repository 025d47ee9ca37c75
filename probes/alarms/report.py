"""Saved RMX Active Alarms / System Alerts reports (.txt from RMX Manager or the web UI).

The columns are ID, Time, GMT Time, Category, Level, Description, separated by tabs or aligned
with spaces; the header's case and spacing vary and some exports put a title line (or several)
above it. Everything before the header is a title; after it, each row is one active alarm.
Rows that do not parse are skipped and counted with their line numbers. Pure: never raises.
"""

from __future__ import annotations

import re

from probes.alarms.lines import ParseResult, decode_line, split_lines
from probes.alarms.model import Alarm, AlarmSource, make_alarm

# "ID  Time  GMT Time  Category  Level  Description" in any case, tabs or spaces, "GMT_Time" too.
_HEADER = re.compile(
    r"^\s*id\s+time\s+gmt[\s_-]*time\s+category\s+level\s+description\s*$", re.IGNORECASE)

_DT = r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}[ T]+\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:\s*[AaPp]\.?[Mm]\.?)?"
_SPACED_ROW = re.compile(rf"^\s*(?P<id>\S+)\s+(?P<time>{_DT})\s+(?P<gmt>{_DT})\s+(?P<rest>\S.*?)\s*$")
_WIDE_GAP = re.compile(r"\s{2,}")
_MAX_REPORT = 16 * 1024 * 1024  # a saved alarm list is kilobytes; refuse to hold more


def is_header(text: str) -> bool:
    """True for a report column header line in any of its variants."""
    return bool(_HEADER.match(text))


def looks_like_report(data: bytes) -> bool:
    """True when a header appears among the first lines (used by format auto-detection)."""
    data = _transcode(data[:65536])
    for n, raw in enumerate(split_lines(data)):
        if n > 20:
            break
        text = raw.decode("utf-8", "replace")
        if is_header(text):
            return True
    return False


def _transcode(data: bytes) -> bytes:
    """Windows tools may save the list as UTF-16 with a BOM: turn it into UTF-8 first."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", "replace").encode("utf-8")
    return data


def parse_report(data: bytes, file: str | None = None) -> ParseResult:
    """Parse a saved alarm report held in memory (capped at 16 MiB)."""
    result = ParseResult()
    if len(data) > _MAX_REPORT:
        data = data[:_MAX_REPORT]
        result.skips.overlong += 1  # the cut-off tail counts as one skipped (over-long) piece
    tabbed = False
    for line_no, raw in enumerate(split_lines(_transcode(data)), 1):
        result.lines = line_no
        text = decode_line(raw, result.skips)
        if text is None:
            result.skip(line_no)
            continue
        if not result.recognised:
            if is_header(text):
                result.recognised, tabbed = True, "\t" in text
            continue  # a title line (or nothing) above the header
        if not text.strip() or is_header(text):
            continue  # blank separators, a repeated header (concatenated exports)
        alarm = _row(text, tabbed, file, line_no)
        if alarm is None:
            result.skips.unrecognised += 1
            result.skip(line_no)
        else:
            result.add(alarm)
    return result


def _row(text: str, tabbed: bool, file: str | None, line_no: int) -> Alarm | None:
    cells = _tab_cells(text) if tabbed or "\t" in text else None
    if cells is None:
        cells = _spaced_cells(text)
    if cells is None:
        return None
    alarm_id, time, gmt, rmx_category, level, description = cells
    if not description or not alarm_id:
        return None
    return make_alarm(AlarmSource.REPORT, description, alarm_id=alarm_id, time=time or None,
                      gmt_time=gmt or None, rmx_category=rmx_category or None, level=level or None,
                      file=file, line=line_no)


def _tab_cells(text: str) -> tuple[str, str, str, str, str, str] | None:
    cells = [c.strip() for c in text.split("\t")]
    if len(cells) != 6:  # tab runs used for alignment: fall back to non-empty cells
        cells = [c.strip() for c in re.split(r"\t+", text.strip())]
        if len(cells) > 6:
            cells = [*cells[:5], " ".join(cells[5:])]
    if len(cells) != 6:
        return None
    a, b, c, d, e, f = cells
    return a, b, c, d, e, f


def _spaced_cells(text: str) -> tuple[str, str, str, str, str, str] | None:
    m = _SPACED_ROW.match(text)
    if m is None:
        return None
    parts = _WIDE_GAP.split(m.group("rest"), maxsplit=2)
    if len(parts) < 3:  # single spaces between Category, Level and Description
        parts = m.group("rest").split(None, 2)
    if len(parts) < 3:
        return None
    return m.group("id"), m.group("time"), m.group("gmt"), parts[0], parts[1], parts[2]
