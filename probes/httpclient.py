"""One HTTP request under one total deadline, with a bounded answer.

A per-read socket timeout never fires against a peer that sends one byte at a time, and reading an
answer whole lets the peer choose the reader's memory. Here one ``asyncio.timeout`` covers the
whole exchange (name resolution, connect, TLS, sending, the status line, the headers and the body)
and at most ``max_bytes`` of the body are read. Redirects are not followed, proxies and netrc from
the environment are not used (credentials go only where the configuration says), answers are not
decompressed (their size is what the peer sent), and certificates are verified unless the caller's
``ssl`` context says otherwise. Each call runs its own short-lived event loop in the calling thread;
closing that loop never waits for a resolver thread still blocked in ``getaddrinfo``.

Used by the XML API client (RMX alarms) and by the daemon's HTTP actions and notifications; each
caller turns aiohttp's errors into its own one-line messages.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

_READ = 64 * 1024


@dataclass(frozen=True)
class Answer:
    """The status and at most ``max_bytes`` of the body; ``truncated`` when the peer sent more."""

    status: int
    body: bytes
    truncated: bool
    seconds: float


def request(method: str, url: str, *, timeout: float, max_bytes: int, data: bytes | None = None,
            json: Any = None, headers: Mapping[str, str] | None = None,
            ssl: _ssl.SSLContext | None = None) -> Answer:
    """Send one request; TimeoutError past ``timeout`` seconds in total; aiohttp's and OSError otherwise."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(_request(method, url, timeout, max_bytes, data=data, json=json,
                                                headers=dict(headers or {}), ssl=ssl))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _request(method: str, url: str, timeout: float, max_bytes: int, *, data: bytes | None, json: Any,
                   headers: dict[str, str], ssl: _ssl.SSLContext | None) -> Answer:
    import aiohttp  # only the commands that talk HTTP pay for the import

    loop = asyncio.get_running_loop()
    start = loop.time()
    async with asyncio.timeout(timeout):
        connector = aiohttp.TCPConnector(ssl=ssl if ssl is not None else True, force_close=True)
        async with aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=False,
                                         timeout=aiohttp.ClientTimeout(total=None)) as session, \
                session.request(method, url, data=data, json=json, allow_redirects=False,
                                headers={"Accept-Encoding": "identity", **headers}) as response:
            body = bytearray()
            while len(body) <= max_bytes:
                piece = await response.content.read(min(_READ, max_bytes + 1 - len(body)))
                if not piece:
                    break
                body += piece
            return Answer(response.status, bytes(body[:max_bytes]), len(body) > max_bytes, loop.time() - start)


def shown_url(url: str) -> str:
    """``url`` as it may be stored, logged or shown: no ``user:password@`` and no query values.

    A URL in the configuration may carry credentials inline (userinfo, an ``?apikey=`` value); what a
    message or a run records must not. (A capability path, as chat hooks use, cannot be told from a plain path.)
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket: nothing of it is shown
        return "(a URL that does not parse)"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "\u2026" if parts.query else "", ""))
