"""probes.redact: secret values are replaced wherever they appear, in text, documents and log records."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probes import redact
from tests.support.secrets import echoes


@pytest.fixture(autouse=True, scope="module")
def _own_registry() -> Iterator[None]:
    """This module's secrets only: the registry is process-wide, and a secret another test file
    registered (a token whose prefix is a common word) would redact words these tests assert on."""
    saved = (redact._values, redact._stale, redact._patterns)
    redact._values, redact._stale, redact._patterns = {}, False, None
    yield
    redact._values, redact._stale, redact._patterns = saved


def test_values_and_their_echoed_forms_are_replaced_anywhere() -> None:
    # Given a registered password with characters that XML and URLs encode
    redact.remember(b"S3cr&t/pw=1\n")
    # Then the raw, XML-escaped and URL-encoded forms are replaced, inside other words too
    text = "login xS3cr&t/pw=1y, echoed S3cr&amp;t/pw=1 and S3cr%26t%2Fpw%3D1"
    assert redact.redact(text) == "login x[redacted]y, echoed [redacted] and [redacted]"


def test_a_short_value_is_replaced_only_as_a_word_of_its_own() -> None:
    # Given a three-character secret
    redact.remember("q7z")
    # Then it is replaced where it stands alone, not inside longer words
    assert redact.redact("user q7z logged in; q7zdef stays, xq7z stays") == \
        "user [redacted] logged in; q7zdef stays, xq7z stays"


def test_documents_are_redacted_string_by_string() -> None:
    redact.remember("doc-secret-7")
    doc = {"a": ["x doc-secret-7", 3, None], "doc-secret-7": True}
    assert redact.redact_doc(doc) == {"a": ["x [redacted]", 3, None], "[redacted]": True}


def test_log_records_lose_the_value_in_message_arguments_and_traceback() -> None:
    # Given a handler with the filter, and a record whose argument and exception quote a secret
    redact.remember("log-secret-9")
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "answer %s", ("said log-secret-9",), None)
    try:
        raise ValueError("log-secret-9 in an exception")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    assert redact.LogFilter().filter(record)
    # Then neither the message nor the traceback text holds it
    formatted = logging.Formatter().format(record)
    assert "log-secret-9" not in formatted and "answer said [redacted]" in formatted
    assert "[redacted] in an exception" in formatted


# -- every form a peer may echo a secret in --------------------------------------------------------

def _leftovers(secret: str, text: str) -> list[str]:
    """Pieces of ``secret`` (6 characters or more, any case) still readable in ``text``."""
    low = text.lower()
    return [secret[i:i + 6] for i in range(len(secret) - 5) if secret[i:i + 6].lower() in low]


def test_every_echoed_form_of_a_password_is_replaced() -> None:
    """Given a registered password with XML, JSON and URL special characters
    When a peer quotes it back in any case, escaped, encoded, cut short or inside base64
    Then no six characters of it (in any case) and none of its encodings remain."""
    secret = 'Pa&ss<CANARY>"pw"-4242 x/y'  # noqa: S105 (a canary)
    redact.remember(secret)
    encoded = set(echoes(secret).values()) - {secret}
    for name, echo in echoes(secret).items():
        text = redact.redact(f"major {echo} end")
        assert redact.MARK in text, name
        assert _leftovers(secret, text) == [], (name, text)
        assert not any(form in text for form in encoded if len(form) >= 6 and form not in ("admin",)), (name, text)
        assert text.startswith("major ") and text.endswith(" end"), (name, text)


def test_base64_of_user_and_password_keeps_at_most_the_edges() -> None:
    """Given a password inside the base64 of user:password (a Basic authorization echo)
    Then what remains decodes to the user and at most one byte of the password."""
    import base64

    redact.remember("Basic-echo-pw-913")
    for user in ("a", "ab", "abc"):  # the password at each of the three byte alignments
        blob = base64.b64encode(f"{user}:Basic-echo-pw-913".encode()).decode()
        text = redact.redact(blob)
        head = text.split(redact.MARK)[0]
        assert redact.MARK in text and len(base64.b64decode(head + "=" * (-len(head) % 4))) <= len(user) + 2


def test_the_user_name_is_not_a_secret_and_reports_keep_their_words(tmp_path: object) -> None:
    """Given an XML API user file holding a common name, read by the probe
    Then the name is not registered: target names, FQDNs and subjects that contain it stay intact."""
    from pathlib import Path

    from probes.target import SecretFile, XmlApi

    directory = Path(str(tmp_path))
    (directory / "user").write_text("rmx\n")
    (directory / "user").chmod(0o600)
    api = XmlApi("http://127.0.0.1:9/", SecretFile(directory / "user"), SecretFile(directory / "user"))
    assert api.user.read() == b"rmx" and not api.user.secret
    assert redact.redact("rmx-x: CN=rmx.lab.example") == "rmx-x: CN=rmx.lab.example"


@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x2FF), min_size=8, max_size=40))
@settings(max_examples=60, deadline=None)
def test_any_password_is_replaced_in_every_form(secret: str) -> None:
    """Property: for any password of 8+ printable characters, each echoed form loses the password."""
    redact.remember(secret)
    for name, echo in echoes(secret).items():
        text = redact.redact(f"<{echo}>")
        assert redact.MARK in text, (name, echo, text)
        if name not in ("basic", "basic_header", "login_base64", "login_body"):
            assert len(text) <= len(redact.MARK) + 8, (name, echo, text)  # the whole echo went


def test_many_secrets_are_all_kept() -> None:
    """Given 600 registered secrets (each a few forms: the old cap was 256 forms)
    Then the first one is still replaced."""
    first = "first-of-many-secrets-0"
    redact.remember(first)
    for i in range(600):
        redact.remember(f"rotated-secret-{i:04d}-x")
    assert redact.redact(f"echo {first}") == f"echo {redact.MARK}"
    assert redact.MAX_SECRETS >= 1000
