"""Reading alarm files: format detection, whole-file parsing for the CLI, following for the daemon.

The I/O half of the alarms probe; the parsers it calls are pure.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from probes.alarms.follow import Follower
from probes.alarms.lines import PREFILTER, ParseResult, decode_line, iter_stream_lines
from probes.alarms.model import ActiveSet, Alarm
from probes.alarms.report import looks_like_report, parse_report
from probes.alarms.snmp import TrapLogParser, feed_trap_lines, looks_like_snmptrapd
from probes.alarms.syslog import looks_like_syslog, parse_syslog_file, parse_syslog_line
from probes.fileio import open_regular
from probes.model import ErrorKind, InputError

log = logging.getLogger(__name__)

_HEAD = 65536
MAX_REPORT_FILE = 16 * 1024 * 1024


class FileFormat(enum.StrEnum):
    """The alarm file formats rmxdiag reads."""

    REPORT = "report"
    SNMPTRAPD = "snmptrapd"
    SYSLOG = "syslog"


def detect(head: bytes) -> FileFormat | None:
    """Which alarm format the first bytes of a file are, or None."""
    if looks_like_report(head):
        return FileFormat.REPORT
    if looks_like_snmptrapd(head):
        return FileFormat.SNMPTRAPD
    if looks_like_syslog(head):
        return FileFormat.SYSLOG
    return None


def read_file(path: Path, fmt: FileFormat | None = None) -> tuple[FileFormat, ParseResult]:
    """Parse a whole alarm file (format auto-detected unless given); InputError for bad input."""
    fd = open_regular(path, "alarm file")
    with os.fdopen(fd, "rb") as stream:
        try:
            head = stream.read(_HEAD)
            if not head:
                raise InputError(f"{path}: the file is empty")
            # Classic Mac OS line ends (CR only), as some report exports still have: read as lines.
            cr_only = b"\n" not in head and b"\r" in head
            if cr_only:
                head = head.replace(b"\r", b"\n")
            found = fmt or detect(head)
            if fmt is not None and b"\0" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")) \
                    and detect(head) is None:
                # --as forces the parser, not the content: NUL bytes are a binary file (or UTF-16
                # without its BOM), which would otherwise read as "no alarm", i.e. OK.
                raise InputError(f"{path}: binary content (NUL bytes), not a {fmt} file; a UTF-16 export "
                                 "needs its byte order mark, or save it as UTF-8")
            if found is None:
                raise InputError(f"{path}: not an RMX alarm file (no Active Alarms report header, no "
                                 "snmptrapd RMX trap, no syslog line found in its first 64 KiB)")
            stream.seek(0)
            name = str(path)
            if found is FileFormat.REPORT:
                data = stream.read(MAX_REPORT_FILE + 1)
                return found, parse_report(data.replace(b"\r", b"\n") if cr_only else data, name)
            if found is FileFormat.SYSLOG:
                return found, parse_syslog_file(path)
            return found, _parse_trap_stream(stream, name)
        except OSError as exc:
            raise InputError(f"{path}: read error ({exc.strerror or type(exc).__name__})",
                             ErrorKind.FILE_UNREADABLE) from None


def _parse_trap_stream(stream: object, name: str) -> ParseResult:
    from typing import BinaryIO, cast

    result = ParseResult()
    return feed_trap_lines(result, iter_stream_lines(cast(BinaryIO, stream), result.skips), TrapLogParser(file=name))


@dataclass
class FollowedSource:
    """A followed log (snmptrapd or syslog) with its active alarm set, kept across daemon runs."""

    fmt: FileFormat
    follower: Follower
    active: ActiveSet
    trap_parser: TrapLogParser
    lines: int = 0

    @classmethod
    def open(cls, fmt: FileFormat, path: Path, state_dir: Path | None, target: str) -> FollowedSource:
        """A follower whose state (offset + active set) lives in ``state_dir`` when it is usable."""
        state_file = None
        if state_dir is not None:
            digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
            state_file = state_dir / "alarms" / f"{target}-{fmt}-{digest}.json"
        follower = Follower(path, state_file)
        active = ActiveSet()
        for doc in follower.state.extra.get("active", []):
            try:
                active.apply(Alarm.from_json(doc))
            except (KeyError, ValueError, TypeError):
                log.warning("%s: dropped an unreadable saved alarm", state_file)
        return cls(fmt, follower, active, TrapLogParser(file=str(path)))

    def poll(self) -> tuple[list[Alarm], ParseResult]:
        """Read new lines, update the active set; returns the NEWLY raised alarms and this poll's counts."""
        result = ParseResult()
        new: list[Alarm] = []
        name = str(self.follower.path)
        for raw in self.follower.poll():
            result.lines += 1
            for alarm in self._parse(raw, result, name):
                result.add(alarm)
                if self.active.apply(alarm) and len(new) < 1000:
                    new.append(alarm)
        result.skips.overlong += self.follower.skips.overlong
        self.follower.skips.overlong = 0
        self.lines += result.lines
        self.follower.state.extra["active"] = [a.to_json() for a in self.active.alarms()]
        try:
            self.follower.save()
        except OSError as exc:
            log.warning("%s: cannot save follower state (%s)", self.follower.state_file, exc.strerror)
        return new, result

    def _parse(self, raw: bytes, result: ParseResult, name: str) -> list[Alarm]:
        if self.fmt is FileFormat.SYSLOG:
            low = raw.lower()
            if not any(lit in low for lit in PREFILTER):
                result.ignored += 1
                return []
        text = decode_line(raw, result.skips)
        if text is None:
            return []
        if self.fmt is FileFormat.SYSLOG:
            framed, alarm = parse_syslog_line(text, name)
            result.recognised = result.recognised or framed
            if alarm is None:
                result.ignored += 1
            return [alarm] if alarm else []
        # A trap still waiting for wrapped hex lines completes with its next line (snmptrapd
        # writes a trap in one go), so nothing is held back across polls in practice.
        recognised, alarms = self.trap_parser.feed(text)
        result.recognised = result.recognised or recognised
        if not recognised and text.strip():
            result.skips.unrecognised += 1
        return alarms
