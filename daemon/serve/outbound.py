"""Outbound HTTP for remediation actions and notifications: one total deadline, a bounded answer.

A per-read socket timeout never fires against a peer that sends one byte at a time, and reading
an answer whole lets the peer choose the daemon's memory. Here one ``asyncio.timeout`` covers the
whole exchange (name resolution, connect, TLS, sending, the status line, headers and the body),
and at most ``max_bytes`` of the body are read. Redirects are not followed, proxies from the
environment are not used, and certificates are verified. Each call runs its own short-lived event
loop in the calling worker thread; closing that loop never waits for a resolver thread still
blocked in ``getaddrinfo``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

MAX_ANSWER = 64 * 1024  # bytes of an answer read; the status is what matters


@dataclass(frozen=True)
class Answer:
    """The status and at most ``MAX_ANSWER`` bytes of the body; ``truncated`` when there was more."""

    status: int
    body: bytes
    truncated: bool
    seconds: float


def shown_url(url: str) -> str:
    """``url`` as it may be stored, logged or shown: no ``user:password@`` and no query values.

    A URL in the configuration may carry credentials inline (userinfo, an ``?apikey=`` value); what a
    run records must not. (A capability path, as chat hooks use, cannot be told from a plain path.)
    """
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "\u2026" if parts.query else "", ""))


class RequestFailed(Exception):
    """No answer: the message is the exception type (never the URL's credentials or the body)."""


def request(method: str, url: str, *, json: Any, timeout: float, headers: Mapping[str, str] | None = None,
            max_bytes: int = MAX_ANSWER) -> Answer:
    """Send one request; TimeoutError past ``timeout`` seconds in total, RequestFailed on any other failure."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(_request(method, url, json, timeout, headers=dict(headers or {}),
                                                max_bytes=max_bytes))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()  # shuts the loop's resolver threads down without waiting for them


async def _request(method: str, url: str, body: Any, timeout: float, *, headers: dict[str, str],
                   max_bytes: int) -> Answer:
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        async with asyncio.timeout(timeout):
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session, \
                    session.request(method, url, json=body, headers=headers, allow_redirects=False) as response:
                data = bytearray()
                while len(data) <= max_bytes:
                    piece = await response.content.read(max_bytes + 1 - len(data))
                    if not piece:
                        break
                    data += piece
                return Answer(response.status, bytes(data[:max_bytes]), len(data) > max_bytes, loop.time() - start)
    except TimeoutError:
        raise
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        raise RequestFailed(type(exc).__name__) from None
