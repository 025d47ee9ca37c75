"""Every log record is one line of rmxdiag's own words, with no secret in it.

A record may carry text a remote chose (an RMX's LOGOUT description, a client's malformed
request): a newline in it would start a forged entry (journald splits stderr per line and honours
a ``<N>`` priority prefix), an escape sequence would rewrite a terminal. So the formatter escapes
every control character of the formatted record (tracebacks included, so a record stays one line)
as ``\\n``, ``\\r``, ``\\t``, ``\\xHH`` or ``\\uHHHH``; writes an ``Authorization`` header's scheme
only, never its credentials (even cut or malformed); and redacts registered secrets by value
(:mod:`probes.redact`).
"""

from __future__ import annotations

import logging
import re
import sys

from probes import redact

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# C0 controls, DEL, C1 controls, and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# An Authorization (or Proxy-Authorization) header as a log message may quote it: the scheme is
# kept when one stands before a space; everything up to a quote or the end of the line goes.
_AUTHORIZATION = re.compile(r"\b((?:proxy-)?authorization\s*[:=]\s*)([a-z][a-z0-9-]{0,30}(?=[ \t]))?[^'\"\r\n]*",
                            re.IGNORECASE)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def _scheme_only(match: re.Match[str]) -> str:
    return match.group(1) + (f"{match.group(2)} " if match.group(2) else "") + redact.MARK


def one_line(text: str) -> str:
    """``text`` safe for a log line: credentials of Authorization headers and secrets replaced,
    control characters escaped."""
    return _CONTROL.sub(_escape, redact.redact(_AUTHORIZATION.sub(_scheme_only, text)))


class OneLineFormatter(logging.Formatter):
    """A Formatter whose every record is one line without credentials (see the module)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record formatted as usual, then made :func:`one_line`."""
        return one_line(super().format(record))


def configure(level: int) -> None:
    """Log to stderr at ``level`` through :class:`OneLineFormatter` (no-op when logging is configured)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter(FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
