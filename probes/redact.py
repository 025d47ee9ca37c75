"""Redaction by value: no secret rmxdiag read from a file is repeated in what it derives from answers.

Every value read from a secret file (:meth:`probes.target.SecretFile.read` registers it) is
replaced by :data:`MARK` wherever it appears in text: in fields parsed from a remote answer (an
RMX XML API that echoes the password in GET_STATE or LOGOUT), in findings, reports, stored runs
and log lines. It works on values, not on known field names, so a secret quoted where nobody
expected it is caught as well, in every form a peer may echo it in:

- in any letter case, each character raw or escaped as XML/HTML (``&amp;``, ``&#38;``,
  ``&#x26;``, escaped more than once), JSON (``\u0026``, ``\"``) or URL (``%26``, ``%2f``, ``+``),
  spaced out, or reversed;
- cut short: a prefix of at least :data:`MIN_PREFIX` characters (or a third of the value);
- base64 and base64url at each of the three byte alignments (so also inside the base64 of
  ``user:password``, of a Basic authorization or of a whole LOGIN body; at most the few
  characters that mix its edges with the neighbouring bytes remain), hex in either case, of the
  value and of its XML-escaped form (as the LOGIN body carries it).

Only secrets are registered: a user name is no secret, and redacting it would rewrite every
target name, FQDN and certificate subject that holds it. A value shorter than
:data:`MIN_INSIDE` characters is replaced only where it stands as a word of its own, raw and
exactly (not inside a longer word, not in an encoded form): replacing a three-character value
everywhere would make logs unreadable while protecting nothing a guess would not find.

Up to :data:`MAX_SECRETS` distinct values are kept (rotations accumulate in a long-running
daemon); past that the oldest is forgotten until it is read again.
"""

from __future__ import annotations

import base64
import bisect
import logging
import re
import threading
from collections.abc import Iterable
from typing import Any
from xml.sax.saxutils import escape

MARK = "[redacted]"
MIN_INSIDE = 4  # shorter values are replaced as whole words only
MIN_PREFIX = 6  # characters of a prefix that count as an echo of the value (at least a third of it)
MIN_ENCODED = 6  # characters of a base64 piece that count as an echo
MAX_SECRETS = 1024  # distinct values kept; a process reads a few per target, rotations add more
_PREFIX_SPAN = 64  # prefixes are recognised up to this many characters past MIN_PREFIX (then whole)
_XML_QUOTES = {'"': "&quot;", "'": "&apos;"}
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
# Escapes a peer may wrap characters in: XML/HTML (named, decimal, hex; escaped once or more),
# JSON (\uXXXX, a surrogate pair, \" \\ \/) and URL (%XX runs, UTF-8).
_ESCAPE = re.compile(r"&(?:amp;)*(?:#([0-9]{1,7});|#x([0-9a-f]{1,6});|(amp|lt|gt|quot|apos);)"
                     r"|\\u([0-9a-f]{4})(?:\\u(d[c-f][0-9a-f]{2}))?|\\([\"\\/])|(?:%[0-9a-f]{2})+", re.IGNORECASE)

_lock = threading.Lock()
_values: dict[str, None] = {}  # ordered set of registered secrets, oldest first
_stale = False  # values changed since the patterns were built (built at the next use, once)
_Patterns = tuple[re.Pattern[str] | None, re.Pattern[str] | None, re.Pattern[str] | None]
_patterns: _Patterns | None = None  # (text forms on the decoded lower-case view, base64, short words)


def _encoded(value: str) -> tuple[set[str], set[str]]:
    """(base64 pieces, hex forms) of the value and of its XML-escaped forms (the LOGIN body)."""
    pieces: set[str] = set()
    hexes: set[str] = set()
    for text in {value, escape(value), escape(value, _XML_QUOTES)}:
        data = text.encode()
        hexes.add(data.hex())
        for shift in range(3):  # where the value starts inside a longer base64 text, modulo 3 bytes
            encoded = base64.b64encode(b"\0" * shift + data).decode()
            # only the characters made of the value's bits alone
            piece = encoded[-(-8 * shift // 6):8 * (shift + len(data)) // 6]
            if len(piece) >= MIN_ENCODED:
                pieces.update((piece, piece.translate(str.maketrans("+/", "-_"))))
    return pieces, hexes


_END = ""


def _trie(words: Iterable[tuple[str, int]]) -> re.Pattern[str] | None:
    """One regex for many literal words, as a trie (the engine dispatches on each character).

    Each word is ``(text, shortest)``: its prefixes of at least ``shortest`` characters match too.
    """
    root: dict[str, Any] = {}
    for word, shortest in words:
        node = root
        for depth, char in enumerate(word, 1):
            node = node.setdefault(char, {})
            if depth == len(word) or shortest <= depth <= shortest + _PREFIX_SPAN:
                node[_END] = {}
    return re.compile(_regex(root)) if root else None


def _regex(node: dict[str, Any]) -> str:
    out = []
    while True:  # a chain of single characters is a plain literal (no recursion per character)
        kids = [k for k in node if k != _END]
        if len(kids) != 1 or _END in node:
            break
        out.append(re.escape(kids[0]))
        node = node[kids[0]]
    if not kids:
        return "".join(out)
    alts = [re.escape(k) + _regex(node[k]) for k in kids]
    body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
    return "".join(out) + (f"(?:{body})?" if _END in node else body)  # greedy: the longest form


def remember(secret: bytes | str) -> None:
    """Register a secret's value (bytes are read as UTF-8; an empty value is ignored)."""
    global _stale  # noqa: PLW0603 (one process-wide registry)
    text = secret.decode("utf-8", "replace") if isinstance(secret, bytes) else secret
    if not text.strip():
        return
    values = {text, text.strip()}
    with _lock:
        if all(v in _values for v in values):
            return
        for value in values:
            _values.pop(value, None)
            _values[value] = None
        while len(_values) > MAX_SECRETS:
            del _values[next(iter(_values))]
        _stale = True  # a daemon reading hundreds of secrets at start builds once, not per value


def _current() -> _Patterns | None:
    """The patterns of every registered value (None: nothing registered)."""
    global _patterns, _stale  # noqa: PLW0603 (one process-wide registry)
    if _stale:
        with _lock:
            if _stale:
                _patterns = _compile(_values) if _values else None
                _stale = False
    return _patterns


def _compile(values: Iterable[str]) -> _Patterns:
    texts: list[tuple[str, int]] = []
    pieces: set[str] = set()
    words = []
    for value in values:
        if len(value) < MIN_INSIDE:
            words.append(rf"(?<!\w){re.escape(value)}(?!\w)")
            continue
        # Case-folding is not closed under upper/lower (dotless i, micro sign...): fold each.
        for low in dict.fromkeys((value.casefold(), value.upper().casefold(), value.lower().casefold())):
            shortest = min(len(low), max(MIN_PREFIX, len(low) // 3))
            texts += [(low, shortest), (low.replace(" ", "+"), len(low))]  # a space as a form encodes it
        if len(value) >= MIN_PREFIX:
            texts.append((value[::-1].casefold(), len(value)))
        more_pieces, hexes = _encoded(value)
        pieces |= more_pieces
        texts += [(h, len(h)) for h in hexes]
    words.sort(key=len, reverse=True)
    return (_trie(texts), _trie((p, len(p)) for p in pieces),
            re.compile("|".join(words)) if words else None)


def _decoded(text: str, decode: bool = True) -> tuple[str, list[tuple[int, int, int, bool]]]:
    """The text case-folded, with escapes decoded (unless ``decode`` is False), and its segments.

    Segment: (start in the view, start and end in ``text``, exact) where ``exact`` segments map
    character by character and the others (a decoded escape) as a whole.
    """
    view: list[str] = []
    segments: list[tuple[int, int, int, bool]] = []
    at = 0

    def add(piece: str, start: int, end: int, exact: bool) -> None:
        low = piece.casefold()
        if exact and len(low) != len(piece):  # a character whose case-folded form differs in length
            for i, char in enumerate(piece):
                add(char, start + i, start + i + 1, False)
            return
        segments.append((sum(map(len, view)) if not segments else segments[-1][0] + len(view[-1]), start, end, exact))
        view.append(low)

    for m in _ESCAPE.finditer(text) if decode else ():
        if m.start() > at:
            add(text[at:m.start()], at, m.start(), True)
        add(_unescape(m), m.start(), m.end(), False)
        at = m.end()
    if at < len(text):
        add(text[at:], at, len(text), True)
    return "".join(view), segments


def _unescape(m: re.Match[str]) -> str:
    dec, hexa, named, json_u, low_half, json_c = m.groups()
    try:
        if dec or hexa:
            return chr(int(dec) if dec else int(hexa, 16))
        if named:
            return _NAMED[named.lower()]
        if json_u:
            code = int(json_u, 16)
            if low_half and 0xD800 <= code < 0xDC00:
                return chr(0x10000 + ((code - 0xD800) << 10) + (int(low_half, 16) - 0xDC00))
            return chr(code) + (chr(int(low_half, 16)) if low_half else "")
        if json_c:
            return json_c
        return bytes.fromhex(m.group().replace("%", "")).decode("utf-8", "surrogateescape")
    except (ValueError, OverflowError):  # not a character (beyond U+10FFFF): keep it as written
        return m.group()


def _spans(text: str, patterns: _Patterns) -> list[tuple[int, int]]:
    """Where in ``text`` some form of a registered value stands."""
    forms, pieces, words = patterns
    found = [m.span() for p in (pieces, words) if p is not None for m in p.finditer(text)]
    # Both views: escapes decoded (an echo escaped by the peer), and as written (a value that
    # itself holds something that looks like an escape, e.g. "%41").
    for decode in (True, False) if forms is not None else ():
        view, segments = _decoded(text, decode)
        starts = [s[0] for s in segments]
        for m in forms.finditer(view):  # type: ignore[union-attr]
            first = segments[bisect.bisect_right(starts, m.start()) - 1]
            last = segments[bisect.bisect_right(starts, m.end() - 1) - 1]
            begin = first[1] + (m.start() - first[0]) if first[3] else first[1]
            end = last[1] + (m.end() - last[0]) if last[3] else last[2]
            found.append((begin, end))
    return found


def redact(text: str) -> str:
    """``text`` with every registered secret value, in any of its forms, replaced by MARK."""
    patterns = _current()
    if patterns is None or not text:
        return text
    spans = sorted(_spans(text, patterns))
    if not spans:
        return text
    out, at = [], 0
    for begin, end in spans:
        if end <= at:
            continue
        out.append(text[at:max(at, begin)] + (MARK if begin >= at else ""))
        at = end
    out.append(text[at:])
    return "".join(out)


def redact_doc(doc: Any) -> Any:
    """A JSON-like document (dicts, lists, strings...) with every string redacted; other values kept."""
    if _current() is None:
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
        if _current() is None:
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
