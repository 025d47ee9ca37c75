"""The one escaping helper: every value is inert HTML, and no module of daemon/html builds HTML without it."""

from __future__ import annotations

import ast
import html
import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from daemon.html.escape import Markup, clip, esc, join, render, url_part

ROOT = Path(__file__).resolve().parents[2]
HTML_SOURCES = sorted((ROOT / "daemon" / "html").glob("*.py"))
TAG = re.compile(r"<[A-Za-z/!]")
HOSTILE = ['<script>alert(1)</script>', '"><img src=x onerror=alert(1)>', "' onmouseover='x", "&amp;", "</style>"]


def test_every_hostile_value_is_escaped_in_content_and_quoted_attributes() -> None:
    """Given hostile values, When filled into a template as content and as an attribute, Then each
    comes back as text (entities), never as markup."""
    for value in HOSTILE:
        out = render('<p title="$v">$v</p>', v=value)
        assert "<script" not in out and "<img" not in out and 'title="' + value + '"' not in out
        assert out == f'<p title="{html.escape(value)}">{html.escape(value)}</p>'


def test_markup_passes_through_once_and_plain_text_never_does() -> None:
    """Given a fragment made by render, When nested, Then it is not escaped twice; a plain str is."""
    inner = render("<b>$x</b>", x="<i>")
    assert render("<p>$y</p>", y=inner) == "<p><b>&lt;i&gt;</b></p>"
    assert render("<p>$y</p>", y=str(inner)) == "<p>&lt;b&gt;&amp;lt;i&amp;gt;&lt;/b&gt;</p>"
    assert join(["<a>", inner], sep="<br>") == "&lt;a&gt;&lt;br&gt;<b>&lt;i&gt;</b>"
    assert isinstance(esc(1), Markup) and esc(None) == "None"


@given(st.text())
def test_escaped_text_never_opens_a_tag_or_leaves_an_attribute(value: str) -> None:
    """Given any text, Then its escaped form has no '<', '>', '"' or "'" left."""
    out = esc(value)
    assert not set(out) & set("<>\"'")
    assert html.unescape(out) == value


def test_url_part_and_clip() -> None:
    """Given a name with separators, Then it stays one path segment; clip marks its cut."""
    assert url_part("a/b?c#d e") == "a%2Fb%3Fc%23d%20e"
    assert clip("x" * 10, 5) == "xxxx…" and clip("abc", 5) == "abc"


def _html_literals(tree: ast.AST) -> list[tuple[int, str]]:
    """String pieces that look like HTML tags and are not the first argument of render()."""
    allowed: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "render" and node.args:
            allowed.add(id(node.args[0]))
        if isinstance(node, ast.JoinedStr):
            allowed.update(id(v) for v in node.values)  # judged as a whole below
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            allowed.add(id(node.value))  # a docstring builds nothing
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):  # an f-string never carries HTML
            pieces = [v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)]
            if any(TAG.search(p) for p in pieces):
                found.append((node.lineno, "f-string with a tag"))
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in allowed
              and TAG.search(node.value)):
            found.append((node.lineno, node.value[:40]))
    return found


def test_html_is_only_built_through_render() -> None:
    """Given daemon/html, Then every literal holding a tag is a render() template (no f-string,
    no concatenation, no .format around markup)."""
    assert len(HTML_SOURCES) >= 6
    offenders = [f"{p.name}:{line}: {what}" for p in HTML_SOURCES if p.name != "escape.py"
                 for line, what in _html_literals(ast.parse(p.read_text()))]
    assert offenders == []


def test_the_source_rule_catches_string_built_html() -> None:
    """Given modules that build HTML by f-string and by a bare literal, Then the rule finds both."""
    bad = "def f(x):\n    a = f'<b>{x}</b>'\n    return '<i>' + x + '</i>'\n"
    assert [line for line, _ in _html_literals(ast.parse(bad))] == [2, 3, 3]
    good = "def f(x):\n    return render('<b>$x</b>', x=x)\n"
    assert _html_literals(ast.parse(good)) == []
