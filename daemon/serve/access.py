"""Who and what the endpoint lets in, and how it reports clients that misbehave.

- Credentials: the ``Basic`` and ``Bearer`` schemes are matched case-insensitively (RFC 7235),
  secrets are compared in constant time and read from their files at use; an empty password
  file refuses everyone.
- Host check (DNS rebinding): a request whose ``Host`` names a host the daemon does not know as
  its own is refused, so a page whose name re-resolves to the daemon's address cannot read it.
- Cross-site requests (a browser driving the endpoint for another site) are recognised for the
  lifecycle endpoint and ``/probe``.
- Exposure: listening beyond loopback without authentication is warned about.
- Malformed requests are debug lines, rate-limited (:class:`ServerLog`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
import socket
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from daemon.config.model import Config, ServerConfig
from daemon.serve.throttle import Throttled


def credentials(header: str | None, scheme: str) -> str | None:
    """The credentials of an ``Authorization`` header using ``scheme`` (compared case-insensitively,
    RFC 7235), or None."""
    if not header:
        return None
    given, _, rest = header.strip().partition(" ")
    return rest.strip() if given.lower() == scheme.lower() and rest.strip() else None


def basic_auth_ok(server: ServerConfig, header: str | None) -> bool:
    """True when no users are configured, or ``header`` carries one user's exact credentials."""
    if not server.basic_auth:
        return True
    encoded = credentials(header, "Basic")
    if encoded is None:
        return False
    try:
        user, _, password = base64.b64decode(encoded, validate=True).partition(b":")
    except (binascii.Error, ValueError):
        return False
    ok = False
    for entry in server.basic_auth:
        try:
            expected = entry.password.read()
        except OSError:
            continue
        if not expected:  # emptied since start: refuse everyone rather than accept an empty password
            continue
        # Evaluate both comparisons for every user: no early exit that times the user name.
        same_user = hmac.compare_digest(user, entry.username.encode())
        same_password = hmac.compare_digest(password, expected)
        ok |= same_user and same_password
    return ok


def bearer_ok(expected: bytes, header: str | None) -> bool:
    """Constant-time check of an ``Authorization: Bearer`` header (scheme case-insensitive, RFC 6750)."""
    token = credentials(header, "Bearer")
    if not expected or token is None:
        return False
    # aiohttp hands over header bytes that are not UTF-8 as surrogate escapes: compare the raw bytes
    # (a plain encode() raised, and the request became a 500 and an ERROR line).
    return hmac.compare_digest(token.encode("utf-8", "surrogateescape"), expected)


def cross_site(request: web.Request, server: ServerConfig) -> bool:
    """True for a request a browser sent on behalf of another site (Sec-Fetch-Site, or an Origin that is
    not this endpoint's own, scheme included, nor ``server.external_url``'s): a page must not make a
    visitor's browser drive the endpoint."""
    fetch_site = request.headers.get("Sec-Fetch-Site", "").lower()
    if fetch_site and fetch_site not in ("same-origin", "none"):
        return True
    origin = request.headers.get("Origin")
    if origin is None:
        return False  # not sent by a browser's cross-origin machinery (curl, Prometheus, systemctl)
    own = {f"{request.scheme}://{request.host}".lower()}
    if server.external_url:  # behind a reverse proxy the browser's origin is the proxy's
        parts = urlsplit(server.external_url)
        own.add(f"{parts.scheme}://{parts.netloc}".lower())
    return origin.strip().lower().rstrip("/") not in own


def _hostname(authority: str) -> str | None:
    """The host of a ``Host`` header or URL authority (lower case, no port, brackets or final dot)."""
    try:
        host = urlsplit("//" + authority.strip()).hostname
    except ValueError:
        return None
    return host.rstrip(".") if host else None


def _listens_on_loopback(config: Config) -> bool:
    host = config.settings.listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "0.0.0.0").is_loopback  # noqa: S104 (an empty host means every address)
    except ValueError:
        return False  # a host name: assume it reaches beyond this machine


def host_allowed(config: Config, header: str | None) -> bool:
    """True when the ``Host`` header may be served (DNS rebinding: a web page whose name re-resolves
    to the daemon's address must not read it).

    The check applies to a daemon on loopback (only a browser on this machine, steered by a rebound
    name, can reach it from outside) and to any daemon with ``server.allowed_hosts``; a daemon that
    listens beyond loopback with no such list serves every name it is reached by (the network
    reaches it anyway: ``server.basic_auth`` protects it, and a missing one is warned about).
    Known names: an IP address (a browser's origin is then that address, never a rebound name),
    loopback names, the listen host, ``server.external_url``'s host, this machine's name, and
    ``server.allowed_hosts``. No header (HTTP/1.0) is no browser.
    """
    if not header:
        return True
    if not config.server.allowed_hosts and not _listens_on_loopback(config):
        return True
    host = _hostname(header)
    if host is None:
        return False
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    if host == "localhost" or host.endswith(".localhost"):
        return True
    own = {_hostname(config.settings.listen.rpartition(":")[0]), socket.gethostname().lower().rstrip("."),
           *config.server.allowed_hosts}
    if config.server.external_url:
        own.add(urlsplit(config.server.external_url).hostname)
    return host in own


class ServerLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger: a client's malformed request is a debug line at most every
    ``every`` seconds (with a count of the ones not logged), never an ERROR with a traceback that
    anyone who reaches the port could flood the journal with; a server-side failure stays an ERROR
    line (its traceback at debug)."""

    def __init__(self, every: float = 10.0) -> None:
        super().__init__(logging.getLogger("rmxdiag.http.server"), {})
        self.malformed = Throttled(self.logger, logging.DEBUG, every)

    def exception(self, msg: object, *args: object, exc_info: object = True, **kwargs: Any) -> None:
        """Route aiohttp's per-request error reports (the only exception() calls it makes)."""
        exc = exc_info if isinstance(exc_info, BaseException) else None
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 500) < 500:
            first = " ".join(ln.strip() for ln in str(exc.message).splitlines() if ln.strip())[:80]
            self.malformed.log("malformed request (%s: %s)", type(exc).__name__, first)
            return
        self.logger.error("%s: %s", str(msg) % args if args else msg,
                          type(exc).__name__ if exc is not None else "error")
        self.logger.debug("request error traceback", exc_info=exc_info)


def exposure_warning(config: Config) -> str | None:
    """A warning when the endpoint listens beyond loopback without authentication, else None."""
    if config.server.basic_auth or _listens_on_loopback(config):
        return None
    return (f"settings.listen {config.settings.listen} is beyond loopback and server.basic_auth is not set: "
            "anyone who reaches the port can read the metrics and reports and start probes")
