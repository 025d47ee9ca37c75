"""Outbound HTTP for remediation actions and notifications: :func:`probes.httpclient.request` (one
total deadline, a bounded answer, no redirects, no proxies from the environment, certificates
verified), with its failures reduced to :class:`RequestFailed`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

from probes import httpclient
from probes.httpclient import Answer, shown_url

__all__ = ["MAX_ANSWER", "Answer", "RequestFailed", "request", "shown_url"]

MAX_ANSWER = 64 * 1024  # bytes of an answer read; the status is what matters


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
