"""Secret canaries and the places they must never reach (logs, HTTP, reports, child processes)."""

from __future__ import annotations

import base64
import contextlib
import html
import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

from tests.support.peers import children_of

# Characters that change under URL and base64 encoding, so each encoded form is distinct.
PFX_PASSWORD = "Pfx+Canary/7f3a=91!"  # noqa: S105 (a canary)
WRONG_PFX_PASSWORD = "Wrong+Pfx/Canary=c4"  # noqa: S105 (a canary)
API_PASSWORD = "Api+Canary/5b2e=17&"  # noqa: S105 (a canary)
# A bearer token is a header value: keep it token68-safe.
WEBHOOK_TOKEN = "Hook-Canary-0d9e6b4a2f"  # noqa: S105 (a canary)
CANARIES = (PFX_PASSWORD, WRONG_PFX_PASSWORD, API_PASSWORD, WEBHOOK_TOKEN)


def encodings(secret: str) -> dict[str, bytes]:
    """The forms a leaked secret takes: raw, base64 (also unpadded), hex, URL-encoded, XML-escaped."""
    raw = secret.encode()
    return {
        "raw": raw,
        "base64": base64.b64encode(raw).rstrip(b"="),
        "base64url": base64.urlsafe_b64encode(raw).rstrip(b"="),
        "hex": raw.hex().encode(),
        "HEX": raw.hex().upper().encode(),
        "url": urllib.parse.quote(secret, safe="").encode(),
        "url_plus": urllib.parse.quote_plus(secret).encode(),
        "xml": secret.replace("&", "&amp;").encode(),
    }


def echoes(secret: str, user: str = "admin") -> dict[str, str]:
    """The forms an XML API (or any peer) may quote a secret back in."""
    login = f"<LOGIN><USER_NAME>{escape(user)}</USER_NAME><PASSWORD>{escape(secret)}</PASSWORD></LOGIN>"
    return {
        "raw": secret, "upper": secret.upper(), "lower": secret.lower(), "swapped": secret.swapcase(),
        "base64": base64.b64encode(secret.encode()).decode(),
        "base64url": base64.urlsafe_b64encode(secret.encode()).decode(),
        "basic": base64.b64encode(f"{user}:{secret}".encode()).decode(),
        "basic_header": "Basic " + base64.b64encode(f"x{user}:{secret}".encode()).decode(),
        "login_base64": base64.b64encode(login.encode()).decode(),
        "hex": secret.encode().hex(), "HEX": secret.encode().hex().upper(),
        "json": json.dumps(secret)[1:-1], "json_ascii": "".join(f"\\u{ord(c):04x}" for c in secret),
        "json_mixed": "".join(f"\\u{ord(c):04x}" if i % 2 else json.dumps(c)[1:-1] for i, c in enumerate(secret)),
        "xml": escape(secret), "xml_quotes": escape(secret, {'"': "&quot;", "'": "&apos;"}),
        "xml_double": html.escape(html.escape(secret)), "xml_numeric": "".join(f"&#{ord(c)};" for c in secret),
        "xml_hex": "".join(f"&#x{ord(c):X};" for c in secret),
        "url": urllib.parse.quote(secret, safe=""), "url_plus": urllib.parse.quote_plus(secret),
        "url_lower": "".join(f"%{b:02x}" for b in secret.encode()),
        "prefix": secret[: max(6, len(secret) * 2 // 3)], "reversed": secret[::-1], "login_body": login,
    }


def leaks(where: str, blob: bytes) -> list[str]:
    """Every (canary, encoding) found in ``blob``, and any private key block, labelled with ``where``."""
    found = [f"{where}: {secret[:8]}… as {name}" for secret in CANARIES
             for name, form in encodings(secret).items() if form in blob]
    if b"PRIVATE KEY" in blob:
        found.append(f"{where}: a PRIVATE KEY block")
    return found


class ProcessWatch:
    """Samples argv and environment of every descendant of a pid while it runs (/proc scan)."""

    def __init__(self, pid: int, period: float = 0.02) -> None:
        self.pid = pid
        self.period = period
        self.seen: dict[int, bytes] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for child in children_of(self.pid):
                with contextlib.suppress(OSError):
                    base = Path("/proc") / str(child)
                    self.seen[child] = (base / "cmdline").read_bytes() + b"\n" + (base / "environ").read_bytes()
            self._stop.wait(self.period)

    def __enter__(self) -> ProcessWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


@contextlib.contextmanager
def echoing_xml_api() -> Iterator[tuple[str, list[bytes]]]:
    """An RMX XML API stand-in that refuses LOGIN and quotes the whole request back in its answer.

    Yields (base URL, bodies received) so a test can prove the password really was sent to it.
    """
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(min(int(self.headers.get("Content-Length", "0")), 65536))
            received.append(body)
            quoted = body.decode("utf-8", "replace").replace("<", "[").replace(">", "]")
            answer = (f"<RESPONSE_TRANS_MCU><RETURN_STATUS><ID>-1</ID><DESCRIPTION>Login refused for {quoted}"
                      "</DESCRIPTION></RETURN_STATUS></RESPONSE_TRANS_MCU>").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", received
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()
