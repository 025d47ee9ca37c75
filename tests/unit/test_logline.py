"""daemon.logline: every log record is one line, without credentials or control characters."""

from __future__ import annotations

import base64
import logging
import sys

from daemon.logline import FORMAT, OneLineFormatter, one_line
from probes import redact


def test_control_characters_are_escaped() -> None:
    """Given text a remote chose, with newlines, a carriage return, an escape sequence, C1 and U+2028
    Then it stays on one line and no control character survives."""
    forged = "refused for x\n2026-12-02 08:00:00,000 CRITICAL rmxdiag.daemon: FORGED\r<0>boom\x1b[2J\x85\u2028end\x00"
    line = one_line(forged)
    assert line == ("refused for x\\n2026-12-02 08:00:00,000 CRITICAL rmxdiag.daemon: FORGED\\r<0>boom\\x1b[2J"
                    "\\x85\\u2028end\\x00")
    assert one_line("tab\there") == "tab\\there"


def test_authorization_values_keep_only_their_scheme() -> None:
    """Given log messages quoting Authorization headers (whole, cut, malformed, no scheme)
    Then the scheme stays and nothing of the credentials does."""
    creds = base64.b64encode(b"prom:CANARYwebpass-7f3a9").decode()
    cases = {
        f"malformed request (BadHttpMessage: Invalid header value char: b'Authorization: Basic {creds[:30]}')":
            "b'Authorization: Basic [redacted]')",
        f"Authorization: Bearer {creds}": "Authorization: Bearer [redacted]",
        f"proxy-authorization:basic {creds}\x01": "proxy-authorization:basic [redacted]",
        f"authorization={creds}": "authorization=[redacted]",
    }
    for message, ending in cases.items():
        line = one_line(message)
        assert line.endswith(ending), line
        assert creds[:8] not in line


def test_the_formatter_makes_records_and_their_tracebacks_one_line() -> None:
    """Given a record whose argument holds a newline and a secret, with a traceback
    Then the formatted record is one line, the secret redacted."""
    redact.remember("logline-secret-4711")
    record = logging.LogRecord("rmxdiag.t", logging.INFO, __file__, 1, "logout failed: %s",
                               ("refused\nlogline-secret-4711",), None)
    try:
        raise ValueError("boom\nsecond")
    except ValueError:
        record.exc_info = sys.exc_info()
    text = OneLineFormatter(FORMAT).format(record)
    assert "\n" not in text and "logline-secret-4711" not in text
    assert "logout failed: refused\\n[redacted]" in text and "Traceback" in text and "boom\\nsecond" in text
