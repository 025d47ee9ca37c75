"""Bounded line reading shared by the alarm parsers: caps, skip counters and the literal prefilter.

Every alarm file is untrusted: lines over :data:`MAX_LINE` bytes, lines with binary control
bytes and lines that are not UTF-8 are skipped and *counted* (never fatal), and no reader ever
holds more than one chunk plus one capped line in memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

from probes.alarms.model import ActiveSet, Alarm

MAX_LINE = 4096  # bytes; longer lines are skipped (an RMX alarm text is at most 255 bytes in the MIB)
CHUNK = 1 << 20

# C0 controls except TAB, LF, CR, FF; DEL. Their presence means binary garbage, not a log line.
_BINARY = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f\x7f]")

# Lower-case literals, one of which every alarm line of interest contains (see RULES in
# alarms_model; tests check that every rule's example passes). Bulk readers search these in C
# (bytes.find) and only hand matching lines to Python.
# Every literal costs one C scan of each chunk, so the list stays short.
PREFILTER: tuple[bytes, ...] = (b"registra", b"certificate", b"secured", b"ocsp", b"revocation",
                                b"ice failure", b"ice-failure")
KEEP_EVENTS = 1000  # events kept verbatim per parse (the active set and counts cover all of them)


@dataclass
class Skips:
    """How many lines a parser skipped, and why."""

    overlong: int = 0  # longer than MAX_LINE
    binary: int = 0  # control bytes (binary garbage)
    undecodable: int = 0  # not UTF-8
    unrecognised: int = 0  # readable, but not a line of this format

    @property
    def total(self) -> int:
        """All skipped lines."""
        return self.overlong + self.binary + self.undecodable + self.unrecognised

    def add(self, other: Skips) -> None:
        """Add another counter set into this one."""
        self.overlong += other.overlong
        self.binary += other.binary
        self.undecodable += other.undecodable
        self.unrecognised += other.unrecognised

    def to_json(self) -> dict[str, int]:
        """JSON shape."""
        return {"overlong": self.overlong, "binary": self.binary, "undecodable": self.undecodable,
                "unrecognised": self.unrecognised}

    def describe(self) -> str:
        """One human line, e.g. '2 over 4 KiB, 1 binary' (empty when nothing was skipped)."""
        parts = [f"{n} {what}" for n, what in ((self.overlong, "over 4 KiB"), (self.binary, "binary"),
                                               (self.undecodable, "not UTF-8"),
                                               (self.unrecognised, "not alarm lines")) if n]
        return ", ".join(parts)


def binary_bytes(data: bytes) -> bool:
    """True when ``data`` holds control bytes that no text log line contains."""
    return _BINARY.search(data) is not None


def decode_line(raw: bytes, skips: Skips) -> str | None:
    """The text of one raw line (without its line ending), or None when it must be skipped."""
    if len(raw) > MAX_LINE:
        skips.overlong += 1
        return None
    if _BINARY.search(raw):
        skips.binary += 1
        return None
    try:
        return raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        skips.undecodable += 1
        return None


def split_lines(data: bytes) -> Iterator[bytes]:
    """The lines of an in-memory buffer (no line endings); a UTF-8 BOM is dropped."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    start = 0
    size = len(data)
    while start < size:
        end = data.find(b"\n", start)
        if end < 0:
            end = size
        yield data[start:end]
        start = end + 1


def iter_stream_lines(stream: IO[bytes], skips: Skips, chunk: int = CHUNK) -> Iterator[bytes]:
    """Complete lines of a stream in bounded memory; an over-long line is dropped and counted."""
    carry = b""
    dropping = False  # inside a line already known to be over MAX_LINE
    while True:
        block = stream.read(chunk)
        if not block:
            break
        data = carry + block if carry else block
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            if dropping:
                dropping = False
            else:
                yield data[start:end]
            start = end + 1
        carry = data[start:]
        if len(carry) > MAX_LINE:
            if not dropping:
                skips.overlong += 1
            dropping, carry = True, b""
    if carry and not dropping:
        yield carry


def iter_prefiltered(stream: IO[bytes], skips: Skips, literals: tuple[bytes, ...] = PREFILTER,
                     chunk: int = CHUNK) -> Iterator[tuple[list[bytes], int]]:
    """Per chunk: (candidate lines in file order, lines in the chunk)."""
    carry = b""
    dropping = False
    while True:
        block = stream.read(chunk)
        final = not block
        data = carry + block
        if final:
            cut = len(data)
        else:
            cut = data.rfind(b"\n") + 1
            if cut == 0:  # no line end in carry + block yet
                if dropping or len(data) > MAX_LINE:
                    skips.overlong += 0 if dropping else 1
                    dropping, carry = True, b""
                else:
                    carry = data
                continue
        body, carry = data[:cut], data[cut:]
        if len(carry) > MAX_LINE:  # a partial line already too long: drop it up to its newline
            skips.overlong += 1
            carry = b""
            dropping_next = True
        else:
            dropping_next = False
        if dropping:  # the rest of an over-long line ends at the first newline of this body
            first = body.find(b"\n")
            body = body[first + 1:] if first >= 0 else b""
            dropping = False
        if body:
            yield _candidates(body, literals), body.count(b"\n") + (0 if body.endswith(b"\n") else 1)
        if final:
            return
        dropping = dropping_next


def _candidates(body: bytes, literals: tuple[bytes, ...]) -> list[bytes]:
    low = body.lower()
    size = len(low)
    find = low.find
    ends: set[int] = set()  # a line is identified by the offset of its newline
    for lit in literals:
        pos = find(lit)
        while pos >= 0:
            end = find(b"\n", pos)
            if end < 0:
                ends.add(size)
                break
            ends.add(end)
            pos = find(lit, end)  # one hit per line is enough
    rfind = low.rfind
    return [body[rfind(b"\n", 0, end) + 1:end] for end in sorted(ends)]


@dataclass
class ParseResult:
    """What one parser made of one input: events in input order, the active set, what it skipped.

    ``alarms`` keeps the first :data:`KEEP_EVENTS` raise/clear events verbatim (memory stays flat
    on huge logs); ``events`` counts all of them and ``active`` has applied all of them in order.
    """

    alarms: list[Alarm] = field(default_factory=list)
    events: int = 0
    active: ActiveSet = field(default_factory=ActiveSet)
    lines: int = 0
    lines_known: bool = True  # False: only prefiltered lines were seen (grep accelerator)
    skips: Skips = field(default_factory=Skips)
    recognised: bool = False  # the input looked like this format at all (header / trap / syslog)
    ignored: int = 0  # readable lines of this format that carry no alarm (other syslog traffic)
    matched: int = 0  # lines that passed the literal prefilter (bulk syslog reading)
    skipped_at: list[int] = field(default_factory=list)  # first few skipped line numbers (1-based)

    def add(self, alarm: Alarm) -> None:
        """Record one raise/clear event."""
        self.events += 1
        if len(self.alarms) < KEEP_EVENTS:
            self.alarms.append(alarm)
        self.active.apply(alarm)

    def skip(self, line_no: int) -> None:
        """Remember where a line was skipped (only the first few, to stay bounded)."""
        if len(self.skipped_at) < 5:
            self.skipped_at.append(line_no)
