"""The one way HTML is built: every value is escaped unless it is :class:`Markup` made here.

Everything the pages show may come off the wire (certificate subjects, SIP reason phrases, alarm
texts, capture content), so no page concatenates raw text into HTML. Fragments are written as
``string.Template`` texts and filled by :func:`render`, which escapes every value that is not
already :class:`Markup` (``&``, ``<``, ``>``, ``"`` and ``'`` become entities, so a value is
inert in element content and in a quoted attribute alike). Attribute values in templates are
always quoted. URLs are built from our own paths plus :func:`url_part`.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Iterable
from string import Template
from urllib.parse import quote


class Markup(str):
    """Text that is already safe HTML: produced only by :func:`render`, :func:`join` and :func:`esc`."""

    __slots__ = ()


def esc(value: object) -> Markup:
    """``value`` as HTML text (Markup is returned unchanged; anything else is escaped)."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


@functools.lru_cache(maxsize=512)
def _parts(text: str) -> tuple[tuple[str, str | None], ...]:
    """``text`` split once into (literal, placeholder name or None) pairs, by string.Template's rules."""
    parts: list[tuple[str, str | None]] = []
    last = 0
    for found in Template.pattern.finditer(text):
        name = found.group("named") or found.group("braced")
        if found.group("invalid") is not None:
            raise ValueError(f"invalid placeholder in template at {found.start()}: {text[:60]!r}")
        literal = text[last:found.start()] + ("$" if found.group("escaped") is not None else "")
        parts.append((literal, name))
        last = found.end()
    parts.append((text[last:], None))
    return tuple(parts)


def render(template: str, **values: object) -> Markup:
    """Fill ``template`` (``$name`` placeholders), escaping every value that is not Markup.

    A placeholder without a value is a KeyError (a template bug, never silently empty).
    """
    out: list[str] = []
    for literal, name in _parts(template):
        out.append(literal)
        if name is not None:
            out.append(esc(values[name]))
    return Markup("".join(out))


def join(parts: Iterable[object], sep: str = "") -> Markup:
    """Concatenate fragments (each escaped unless Markup) with the literal separator ``sep``."""
    return Markup(esc(sep).join(esc(p) for p in parts))


def url_part(value: object) -> str:
    """``value`` percent-encoded for one path segment or query value (no ``/``, ``?``, ``#`` left)."""
    return quote(str(value), safe="")


def clip(value: object, limit: int) -> str:
    """``value`` as text cut to ``limit`` characters (an ellipsis marks the cut)."""
    text = str(value)
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"
