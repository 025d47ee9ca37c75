"""Outbound HTTP for remediation actions and notifications: :func:`probes.httpclient.request` (one
total deadline, a bounded answer, no redirects, no proxies from the environment, certificates
verified), with its failures reduced to :class:`RequestFailed`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from probes import httpclient
from probes.httpclient import Answer

__all__ = ["MAX_ANSWER", "Answer", "RequestFailed", "request", "shown_url"]

MAX_ANSWER = 64 * 1024  # bytes of an answer read; the status is what matters


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
    try:
        return httpclient.request(method, url, timeout=timeout, max_bytes=max_bytes, json=json, headers=headers)
    except TimeoutError:
        raise
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        raise RequestFailed(type(exc).__name__) from None
