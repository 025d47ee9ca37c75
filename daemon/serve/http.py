"""The HTTP endpoint (aiohttp): metrics, multi-target probing, reports, reload, the alert webhook.

Abuse limits, each measured against aiohttp 3.x on Debian 12:
- header deadline: aiohttp's keep-alive timer starts when a connection opens and closes it when
  no complete request arrived in time, so ``keepalive_timeout`` = ``header_timeout`` closes
  slowloris clients (and idle keep-alive connections after the same time);
- body deadline: aiohttp does not bound a body that never arrives, so the handler reads under
  its own ``asyncio.timeout``; lingering is off so an abandoned body is not drained;
- body cap: a declared ``Content-Length`` over the cap is answered 413 before reading anything,
  and ``client_max_size`` stops a chunked body at the cap;
- connection cap, write deadline, descriptor exhaustion, the /probe share: :mod:`daemon.serve.listener` (counted
  from the accept, a TLS handshake included; a client that stops reading its answers is closed
  after ``write_timeout``; at the cap a connection with no request yet, a stalled or a long-idle one
  makes room for a new one);
- TLS handshakes run per connection with ``ssl_handshake_timeout`` (never in the accept loop);
- malformed requests: a 400 each, logged at debug level and rate-limited;
- listen backlog: :data:`BACKLOG`, applied by :func:`bind`.
Credentials, cross-site requests and exposure are :mod:`daemon.serve.access`'s. ``POST /-/reload``
is off unless ``server.enable_lifecycle`` is set, and then refuses cross-site requests.
The web pages (``/``, ``/targets/NAME``, ``/runs/ID``) are :mod:`daemon.serve.webpages`'; they are
served with a Content-Security-Policy that admits no script and no remote load, and every answer
carries ``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web
from aiohttp.typedefs import Middleware

from daemon.config.model import Config, ServerConfig
from daemon.engine import DEADLINE_GRACE
from daemon.html.style import SECURITY_HEADERS
from daemon.report import Report, now_utc
from daemon.serve import exporter, ondemand, webpages
from daemon.serve.access import ServerLog, basic_auth_ok, bearer_ok, cross_site, host_allowed
from daemon.serve.listener import Listener
from daemon.serve.snapshot import Snapshot, SnapshotHolder, TargetState
from daemon.serve.throttle import Throttled
from daemon.serve.webhook import Troubleshooter
from probes.redact import redact_doc
from probes.target import Target


class Backend(Protocol):
    """What the endpoint needs from the daemon (``daemon.serve.service.Daemon`` provides it).

    A protocol, not an import: the service builds the HTTP server, so the HTTP module must not
    import the service back.
    """

    config: Config
    holder: SnapshotHolder
    troubleshooter: Troubleshooter
    rendered: tuple[Snapshot, bytes] | None  # /metrics text of the last snapshot

    async def probe_now(self, target: Target, budget: float) -> TargetState:
        """Run ``target`` now within ``budget`` seconds."""

    def troubleshooter_names(self, payload: Any) -> list[str]:
        """Target names in the firing alerts of an Alertmanager payload (ValueError if malformed)."""

    def ready(self) -> bool:
        """Readiness."""

    async def reload_async(self) -> bool:
        """Reload the configuration, all-or-nothing."""

log = logging.getLogger("rmxdiag.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DAEMON: web.AppKey[Backend] = web.AppKey("daemon")
RUN_SUMMARIES: web.AppKey[webpages.RunSummaries] = web.AppKey("run_summaries")
_NO_AUTH_PATHS = {"/api/v1/alerts"}  # has its own bearer token (Alertmanager sends one scheme only)
DEFAULT_SCRAPE_TIMEOUT = 10.0
SCRAPE_MARGIN = 0.5  # seconds of the scrape timeout kept for rendering and transfer
TOKEN_LOG: web.AppKey[Throttled] = web.AppKey("token_log")  # the unreadable-token-file line
BACKLOG = 512  # pending connections the kernel queues (capped by net.core.somaxconn)


def _unauthorized() -> web.Response:
    return web.Response(status=401, text="unauthorized\n",
                        headers={"WWW-Authenticate": 'Basic realm="rmxdiag", charset="UTF-8"'})


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    config = request.app[DAEMON].config
    response: web.StreamResponse
    if not host_allowed(config, request.headers.get("Host")):
        # A name that is not this daemon's: a page whose name re-resolves to this address (DNS
        # rebinding) must not read it. 421: the request reached a server that is not the one named.
        response = web.Response(status=421, text="unknown Host: list the name the daemon is reached by in "
                                                 "server.allowed_hosts\n", headers={"Connection": "close"})
    elif request.path not in _NO_AUTH_PATHS and not basic_auth_ok(config.server, request.headers.get("Authorization")):
        response = _unauthorized()
    else:
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # aiohttp's own 404/405 answers
            exc.headers.setdefault("X-Content-Type-Options", "nosniff")
            raise
    # No answer is ever content-sniffed into something else (a JSON report quoting "<script>").
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


async def _metrics(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    snap = daemon.holder.current
    cached = daemon.rendered
    # Snapshots are immutable: an unchanged one (HA Prometheus pairs, idle periods) reuses its text.
    if cached is None or cached[0] is not snap:
        cached = (snap, exporter.render(lambda: snap))
        daemon.rendered = cached
    return web.Response(body=cached[1], headers={"Content-Type": exporter.CONTENT_TYPE})


def _scrape_timeout(request: web.Request) -> float:
    raw = request.headers.get("X-Prometheus-Scrape-Timeout-Seconds", "")
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_SCRAPE_TIMEOUT
    return value if 0 < value < 3600 else DEFAULT_SCRAPE_TIMEOUT


async def _probe(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    name = request.query.get("target", "")
    if cross_site(request, daemon.config.server):
        # A web page (<img src=".../probe?target=...">) must not make a visitor's browser start runs:
        # each one logs in to the RMX. Prometheus and curl send neither header.
        return web.Response(status=403, text="cross-site request refused\n")
    target = daemon.config.target(name)
    if target is None:
        return web.Response(status=404, text="unknown target (not in the configuration)\n")
    # Answer before Prometheus gives up (half a second kept for rendering and transfer), and never
    # wait longer than the target's own deadline allows; the budget covers waiting for a slot too.
    budget = max(0.5, min(_scrape_timeout(request) - SCRAPE_MARGIN,
                          target.deadline + DEADLINE_GRACE + ondemand.RUN_MARGIN))
    state = await daemon.probe_now(target, budget)
    snap = Snapshot(targets={name: state}, order=(name,))
    body = exporter.render(lambda: snap, global_metrics=False)
    return web.Response(body=body, headers={"Content-Type": exporter.CONTENT_TYPE})


def _json(doc: Any, status: int = 200) -> web.Response:
    # Reports quote remote answers: no secret value the daemon read leaves in a response.
    # They hold the same evidence as the pages: never kept by a cache.
    return web.Response(status=status, text=json.dumps(redact_doc(doc), indent=2) + "\n",
                        content_type="application/json", headers={"Cache-Control": "no-store"})


async def _report(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    snap = daemon.holder.current
    name = request.query.get("target")
    states: list[tuple[str, TargetState]] = snap.states()
    if name is not None:
        if name not in snap.order:
            return _json({"error": "unknown target"}, 404)
        states = [(n, s) for n, s in states if n == name]
        if not states:
            return _json({"error": "no run of this target has finished yet"}, 503)
    return _json(Report(now_utc(), tuple(s.report for _, s in states)).to_json())


async def _runs(request: web.Request) -> web.Response:
    store = request.app[DAEMON].troubleshooter.store
    return _json({"runs": store.ids() if store else []})


async def _run(request: web.Request) -> web.Response:
    store = request.app[DAEMON].troubleshooter.store
    doc = store.load(request.match_info["run_id"]) if store else None
    return _json(doc) if doc is not None else _json({"error": "no such run"}, 404)


def _page(body: str | None, missing: str) -> web.Response:
    if body is None:
        return web.Response(status=404, text=missing + "\n", headers=SECURITY_HEADERS)
    return web.Response(text=body, content_type="text/html", charset="utf-8", headers=SECURITY_HEADERS)


async def _overview_page(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    store = daemon.troubleshooter.store
    return _page(webpages.overview(daemon.config, daemon.holder.current, store, request.app[RUN_SUMMARIES]), "")


async def _target_page(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    body = webpages.target(daemon.config, daemon.holder.current, daemon.troubleshooter.store,
                           request.app[RUN_SUMMARIES], request.match_info["name"])
    return _page(body, "unknown target (not in the configuration)")


async def _run_page(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    body = webpages.run(daemon.config, daemon.troubleshooter.store, request.match_info["run_id"])
    return _page(body, "no such run")


async def _healthy(_request: web.Request) -> web.Response:
    return web.Response(text="Healthy\n")


async def _ready(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    if daemon.ready():
        return web.Response(text="Ready\n")
    return web.Response(status=503, text="Not ready\n")


async def _reload(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    if not daemon.config.server.enable_lifecycle:
        return web.Response(status=403, text="the lifecycle endpoint is off: set server.enable_lifecycle: true "
                                             "(SIGHUP, i.e. systemctl reload, reloads either way)\n")
    if cross_site(request, daemon.config.server):
        return web.Response(status=403, text="cross-site request refused\n")
    ok = await daemon.reload_async()
    if ok:
        return web.Response(text="reloaded\n")
    return web.Response(status=500, text="reload failed; the previous configuration stays active (see the log)\n")


async def read_body(request: web.Request, server: ServerConfig) -> bytes | web.Response:
    """The request body under the size cap and the body deadline, or the error response to send."""
    declared = request.content_length
    if declared is not None and declared > server.max_body_bytes:
        return web.Response(status=413, text="request body too large\n", headers={"Connection": "close"})
    try:
        async with asyncio.timeout(server.body_timeout):
            body = await request.content.read(server.max_body_bytes + 1)
            # Keep reading until EOF (a body may arrive in several chunks) but never past the cap.
            while len(body) <= server.max_body_bytes:
                more = await request.content.read(server.max_body_bytes + 1 - len(body))
                if not more:
                    break
                body += more
    except TimeoutError:
        return web.Response(status=408, text="request body not received in time\n", headers={"Connection": "close"})
    if len(body) > server.max_body_bytes:
        return web.Response(status=413, text="request body too large\n", headers={"Connection": "close"})
    return body


async def _alerts(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    config = daemon.config
    if config.webhook.token is None:
        return web.Response(status=404, text="the alert webhook is not configured\n")
    try:
        expected = config.webhook.token.read()
    except OSError:
        # Anyone who reaches the port can POST: one line per interval, with a count.
        request.app[TOKEN_LOG].log("the webhook token file %s cannot be read", config.webhook.token.path)
        expected = b""
    if not bearer_ok(expected, request.headers.get("Authorization")):
        return web.Response(status=401, text="unauthorized\n", headers={"Connection": "close"})
    body = await read_body(request, config.server)
    if isinstance(body, web.Response):
        return body
    try:
        names = daemon.troubleshooter_names(json.loads(body))
    except ValueError as exc:  # includes invalid UTF-8
        return web.Response(status=400, text=f"bad alert payload: {str(exc)[:120]}\n")
    except RecursionError:  # JSON nested deeper than the parser's recursion allows
        return web.Response(status=400, text="bad alert payload: nested too deep\n")
    decisions = daemon.troubleshooter.trigger(names)
    return _json({"status": "accepted", "targets": decisions}, 202)


def build_app(daemon: Backend, *outer: Middleware) -> web.Application:
    """The aiohttp application with every endpoint the README lists (``outer`` middlewares run first)."""
    app = web.Application(middlewares=[*outer, _auth], client_max_size=daemon.config.server.max_body_bytes,
                          handler_args={"max_field_size": 8190, "max_line_size": 8190})
    app[DAEMON] = daemon
    app[RUN_SUMMARIES] = webpages.RunSummaries()
    app[TOKEN_LOG] = Throttled(log, logging.ERROR)
    app.router.add_get("/", _overview_page)
    app.router.add_get("/targets/{name}", _target_page)
    app.router.add_get("/runs/{run_id}", _run_page)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/probe", _probe)
    app.router.add_get("/api/v1/report", _report)
    app.router.add_get("/api/v1/report/runs", _runs)
    app.router.add_get("/api/v1/report/runs/{run_id}", _run)
    app.router.add_get("/-/healthy", _healthy)
    app.router.add_get("/-/ready", _ready)
    app.router.add_post("/-/reload", _reload)
    app.router.add_post("/api/v1/alerts", _alerts)
    return app


def tls_context(server: ServerConfig) -> ssl.SSLContext | None:
    """The server TLS context, or None for plain HTTP (ssl errors propagate to the caller)."""
    if server.tls_cert is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(server.tls_cert, server.tls_key)
    return ctx


class HttpServer:
    """Owns the listening socket, the aiohttp runner and the accept loop (:class:`Listener`)."""

    def __init__(self, daemon: Backend) -> None:
        self.daemon = daemon
        self._runner: web.AppRunner | None = None
        self._accepting: asyncio.Task[None] | None = None
        self.listener = Listener(lambda: self.daemon.config.server)
        self.port = 0

    @property
    def refused(self) -> int:
        """Connections closed at once because every slot was serving a request."""
        return self.listener.refused

    async def start(self, config: Config, sock: socket.socket) -> None:
        """Serve on ``sock`` (already bound and listening)."""
        server = config.server
        self._runner = web.AppRunner(build_app(self.daemon, self.listener.middleware()), handle_signals=False,
                                     access_log=None, keepalive_timeout=server.header_timeout, lingering_time=0,
                                     shutdown_timeout=1.0, logger=ServerLog())
        await self._runner.setup()
        aio_server = self._runner.server
        assert aio_server is not None  # noqa: S101 (set by setup())
        ctx = tls_context(server)
        self.port = int(sock.getsockname()[1])
        self._accepting = asyncio.get_running_loop().create_task(self.listener.serve(sock, aio_server, ctx))

    async def stop(self) -> None:
        """Stop accepting, then close connections."""
        if self._accepting is not None:
            self._accepting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accepting
        if self._runner is not None:
            await self._runner.cleanup()
        # cleanup() closes gracefully; a TLS close may still wait for the peer, a handshake may be in
        # progress: end them now.
        self.listener.close_all()


def bind(listen: str) -> socket.socket:
    """A listening socket for ``host:port`` (IPv6 as ``[addr]:port``); OSError when it fails."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 (the operator chose to listen everywhere)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock
