"""Redaction by value: no secret rmxdiag read from a file is repeated in what it derives from answers.

Every value read from a secret file (:meth:`probes.target.SecretFile.read` registers it) is
replaced by :data:`MARK` wherever it appears in text: in fields parsed from a remote answer (an
RMX XML API that echoes the password in GET_STATE or LOGOUT), in findings, reports, stored runs
and log lines. It works on values, not on known field names, so a secret quoted where nobody
expected it is caught as well. Besides the raw value, its XML-escaped and URL-encoded forms are
replaced (the forms in which an HTTP peer echoes it).

A value shorter than :data:`MIN_INSIDE` characters is replaced only where it stands as a word of
its own (not inside a longer word or number): a three-character password replaced inside every
word would make logs unreadable while protecting nothing a guess would not find.
"""

from __future__ import annotations

import logging
import re
import threading
import urllib.parse
from collections.abc import Iterable
from typing import Any
from xml.sax.saxutils import escape

MARK = "[redacted]"
MIN_INSIDE = 4  # shorter values are replaced as whole words only
_MAX_VALUES = 256  # rotated secrets accumulate; keep the newest

_lock = threading.Lock()
_values: dict[str, None] = {}  # ordered set of registered texts
_pattern: re.Pattern[str] | None = None


def _forms(value: str) -> set[str]:
    return {value, escape(value, {'"': "&quot;", "'": "&apos;"}), urllib.parse.quote(value, safe=""),
            urllib.parse.quote_plus(value)}


def remember(secret: bytes | str) -> None:
    """Register a secret's value (bytes are read as UTF-8; an empty value is ignored)."""
    global _pattern  # noqa: PLW0603 (one process-wide registry)
    text = secret.decode("utf-8", "replace") if isinstance(secret, bytes) else secret
    if not text.strip():
        return
    forms = _forms(text) | _forms(text.strip())
    with _lock:
        if all(f in _values for f in forms):
            return
        for form in forms:
            _values.pop(form, None)
            _values[form] = None
        while len(_values) > _MAX_VALUES:
            del _values[next(iter(_values))]
        _pattern = _compile(_values)


def _compile(values: Iterable[str]) -> re.Pattern[str] | None:
    parts = []
    for value in sorted(values, key=len, reverse=True):  # longest first: a value inside another one
        quoted = re.escape(value)
        parts.append(quoted if len(value) >= MIN_INSIDE else rf"(?<!\w){quoted}(?!\w)")
    return re.compile("|".join(parts)) if parts else None


def redact(text: str) -> str:
    """``text`` with every registered secret value replaced by MARK."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MARK, text)


def redact_doc(doc: Any) -> Any:
    """A JSON-like document (dicts, lists, strings...) with every string redacted; other values kept."""
    if _pattern is None:
        return doc
    if isinstance(doc, str):
        return redact(doc)
    if isinstance(doc, dict):
        return {redact(k) if isinstance(k, str) else k: redact_doc(v) for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return [redact_doc(v) for v in doc]
    return doc


class LogFilter(logging.Filter):
    """Redacts each record's message (arguments merged in) and its traceback text."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops one."""
        if _pattern is None:
            return True
        record.msg = redact(record.getMessage())
        record.args = ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install(logger: logging.Logger | None = None) -> None:
    """Put a LogFilter on every handler of ``logger`` (the root logger by default)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, LogFilter) for f in handler.filters):
            handler.addFilter(LogFilter())
