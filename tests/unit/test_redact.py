"""probes.redact: secret values are replaced wherever they appear, in text, documents and log records."""

from __future__ import annotations

import logging

from probes import redact


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
