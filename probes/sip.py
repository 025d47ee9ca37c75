"""SIP over a stream: build an OPTIONS request, frame and parse the response (RFC 3261 §7, §18.3).

Pure functions on bytes (no I/O). On a stream transport a message ends after the blank line plus
``Content-Length`` body bytes (§18.3); header names are case-insensitive and have compact forms
(``l`` for Content-Length). ``ms-diagnostics`` (MS-OCER) is parsed into id, sub-code, reason, source.
"""

from __future__ import annotations

import functools
import re
import secrets
from dataclasses import dataclass
from typing import Any

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 256 * 1024
_COMPACT = {"l": "content-length", "i": "call-id", "f": "from", "t": "to", "v": "via", "c": "content-type"}
_STATUS_LINE = re.compile(rb"^SIP/2\.0 ([1-6][0-9]{2})(?: (.*))?$")
_CONTENT_LENGTH = re.compile(rb"\r\n(?:[Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Ll][Ee][Nn][Gg][Tt][Hh]|[Ll])[ \t]*:([^\r\n]*)")
_DIAG = re.compile(r"^\s*(\d+)(?:\.(\d+))?\s*(?:;(.*))?$", re.S)
_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))\s*;?')


class SipParseError(ValueError):
    """The bytes are not a well-formed SIP response (the message names what is wrong)."""


@dataclass(frozen=True)
class MsDiagnostic:
    """One ``ms-diagnostics`` or ``ms-diagnostics-public`` header value."""

    id: int
    sub: int | None
    reason: str
    source: str | None
    public: bool = False
    raw: str = ""
    parsed: bool = True  # False: the value was not <id>[.<sub>];... (kept whole as ``reason``)

    def to_json(self) -> dict[str, Any]:
        """The evidence shape of the brief: id, sub, reason, source."""
        return {"id": self.id, "sub": self.sub, "reason": self.reason, "source": self.source}


@dataclass(frozen=True)
class SipResponse:
    """A parsed SIP response: status, reason phrase, headers in order, body."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive, compact forms understood)."""
        key = _canonical(name)
        return [header[1] for k, header in zip(self._keys, self.headers, strict=True) if k == key]

    @functools.cached_property
    def _keys(self) -> tuple[str, ...]:
        return tuple(_canonical(k) for k, _ in self.headers)

    @property
    def server(self) -> str | None:
        """The ``Server`` header (the FE's product and version)."""
        return self.header("Server")

    @property
    def diagnostics(self) -> tuple[MsDiagnostic, ...]:
        """Every ms-diagnostics and ms-diagnostics-public entry, in order."""
        out = [parse_ms_diagnostics(v) for v in self.all("ms-diagnostics")]
        out += [parse_ms_diagnostics(v, public=True) for v in self.all("ms-diagnostics-public")]
        return tuple(out)


def _canonical(name: str) -> str:
    low = name.strip().lower()
    return _COMPACT.get(low, low)


def build_options(target_host: str, local: str, from_host: str, port: int = 5061,
                  call_id: str | None = None) -> bytes:
    """An OPTIONS request to ``sip:target_host:port`` with strict CRLF framing and no body.

    ``local`` is our "ip:port" (Via sent-by); ``from_host`` the RMX FQDN (or our name).
    """
    branch = "z9hG4bK" + secrets.token_hex(8)
    tag = secrets.token_hex(4)
    call = call_id or secrets.token_hex(12)
    uri = f"sip:{target_host}:{port};transport=tls"
    lines = [
        f"OPTIONS {uri} SIP/2.0",
        f"Via: SIP/2.0/TLS {local};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:{from_host}>;tag={tag}",
        f"To: <{uri}>",
        f"Call-ID: {call}",
        "CSeq: 1 OPTIONS",
        f"Contact: <sip:{from_host};transport=tls>",
        "Accept: application/sdp",
        "User-Agent: rmxdiag",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def frame(buffer: bytes) -> int | None:
    """Length of the first complete message in ``buffer`` (None: need more bytes).

    Raises SipParseError when the head is too big or Content-Length is missing/invalid on a
    stream (where it is mandatory, RFC 3261 §18.3).
    """
    stripped = len(buffer) - len(buffer.lstrip(b"\r\n"))  # keep-alive CRLFs before a message
    end = buffer.find(b"\r\n\r\n", stripped)
    if end < 0:
        if len(buffer) > MAX_HEADER_BYTES:
            raise SipParseError(f"no end of SIP headers within {MAX_HEADER_BYTES} bytes")
        return None
    found = _CONTENT_LENGTH.findall(buffer, stripped, end + 2)
    if len(found) > 1 and len(set(found)) > 1:
        raise SipParseError("conflicting Content-Length headers")
    length = None
    if found:
        try:
            length = int(found[0].strip())
        except ValueError as exc:
            raise SipParseError(f"invalid Content-Length {found[0].strip()[:20]!r}") from exc
    if length is None or length < 0 or length > MAX_BODY_BYTES:
        raise SipParseError("missing or out-of-range Content-Length on a stream transport")
    total = end + 4 + length
    return total if len(buffer) >= total else None


def parse_response(message: bytes) -> SipResponse:
    """Parse one complete framed response (as :func:`frame` delimited it)."""
    message = message.lstrip(b"\r\n")
    end = message.find(b"\r\n\r\n")
    if end < 0:
        raise SipParseError("no blank line after the SIP headers")
    lines = message[:end].split(b"\r\n")
    match = _STATUS_LINE.match(lines[0])
    if not match:
        raise SipParseError(f"not a SIP response status line: {lines[0][:60]!r}")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t") and headers:  # folded continuation line (RFC 3261 §7.3.1)
            prev_name, prev_value = headers[-1]
            headers[-1] = (prev_name, prev_value + " " + line.strip().decode("utf-8", "replace"))
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            raise SipParseError(f"header line without a colon: {line[:60]!r}")
        headers.append((name.strip().decode("latin-1"), value.strip().decode("utf-8", "replace")))
    return SipResponse(int(match.group(1)), (match.group(2) or b"").decode("utf-8", "replace"),
                       tuple(headers), message[end + 4:])


def parse_ms_diagnostics(value: str, public: bool = False) -> MsDiagnostic:
    """``<id>[.<sub>];reason="...";source="..."``; an unparsable value keeps its text as reason."""
    match = _DIAG.match(value)
    if not match:
        return MsDiagnostic(0, None, value.strip(), None, public, value, parsed=False)
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else (m.group(3) or "").strip())
              for m in _PARAM.finditer(match.group(3) or "")}
    reason = params.get("reason", "").replace('\\"', '"')
    sub = int(match.group(2)) if match.group(2) else None
    return MsDiagnostic(int(match.group(1)), sub, reason, params.get("source"), public, value)
