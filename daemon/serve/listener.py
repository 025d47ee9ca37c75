"""The endpoint's accept loop: connections counted from the accept, a write deadline, a fair cap.

- Every accepted socket counts against ``server.max_connections`` from the accept on, a TLS
  handshake in progress included (it holds a file descriptor as much as a served connection).
- Write deadline: an answer the client does not read (the connection's write buffer stays full for
  ``server.write_timeout`` seconds) closes the connection. A client that pipelines thousands of
  requests and never reads the answers is closed that way; neither the header nor the body deadline
  applies to it (it sent both).
- The cap cannot be used to lock Prometheus out: at the cap, a new connection takes the place of
  one that is doing nothing for anyone — a client whose answers wait unread (the longest first),
  else the oldest connection with no request being handled (idle keep-alive, headers still
  arriving, a TLS handshake). Only when every connection is serving a request is the new one
  closed at once.
- Out of file descriptors (EMFILE, ENFILE) or buffers, the loop backs off and logs one line per
  interval with a count, instead of a traceback per failed accept.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from daemon.config.model import ServerConfig
from daemon.serve.throttle import Throttled

log = logging.getLogger("rmxdiag.http")

ACCEPT_RETRY = 0.5  # seconds the accept loop waits when the process is out of descriptors or buffers
SWEEP_EVERY = 0.25  # seconds between write-deadline checks (the deadline is met within this)
_STARVED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Handler(RequestHandler):
    """aiohttp's connection protocol, whose own error answers (a parser's 400, a handler bug's 500)
    also carry ``X-Content-Type-Options: nosniff`` (they echo request bytes)."""

    __slots__ = ()

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """aiohttp's error answer, with nosniff."""
        response = super().handle_error(request, status, exc, message)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


@dataclass
class _Conn:
    """One accepted socket and what the loop knows of it."""

    sock: socket.socket
    protocol: RequestHandler | None = None  # None until the protocol exists (after a TLS handshake too)
    paused_since: float | None = None  # monotonic time its answers started waiting unread

    def alive(self) -> bool:
        return self.sock.fileno() != -1

    def close(self) -> None:
        transport = self.protocol.transport if self.protocol is not None else None
        if transport is not None:
            transport.abort()
        else:  # a TLS handshake in progress: the handshake sees the end of the stream and fails
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)


class Listener:
    """Accepts connections for an aiohttp server under the cap and the write deadline."""

    def __init__(self, limits: Callable[[], ServerConfig]) -> None:
        self.limits = limits  # read at each accept and sweep: a reload may change them
        self.refused = 0
        self.evicted = 0
        self.write_timeouts = 0
        self._conns: dict[socket.socket, _Conn] = {}  # accept order: the oldest first
        self._busy: dict[RequestHandler, int] = {}  # protocol -> requests its handler is running
        self._tasks: set[asyncio.Task[None]] = set()
        self._starved = Throttled(log, logging.ERROR)

    # -- requests --------------------------------------------------------------------------------
    def middleware(self) -> Middleware:
        """An aiohttp middleware marking a connection busy while its request is being handled."""
        @web.middleware
        async def busy(request: web.Request, handler: Handler) -> web.StreamResponse:
            protocol = request.protocol
            self._busy[protocol] = self._busy.get(protocol, 0) + 1
            try:
                return await handler(request)
            finally:
                left = self._busy.pop(protocol, 1) - 1
                if left:
                    self._busy[protocol] = left
        return busy

    def busy_count(self) -> int:
        """Connections whose request is being handled now."""
        return len(self._busy)

    def open_count(self) -> int:
        """Connections counted against the cap now."""
        self._prune()
        return len(self._conns)

    # -- accepting -------------------------------------------------------------------------------
    async def serve(self, sock: socket.socket, factory: Callable[[], RequestHandler],
                    ctx: ssl.SSLContext | None) -> None:
        """Accept on ``sock`` until cancelled; each connection is handed to ``factory``'s protocol."""
        loop = asyncio.get_running_loop()
        sweeper = loop.create_task(self._sweep())
        try:
            while True:
                try:
                    conn, _ = await loop.sock_accept(sock)
                except OSError as exc:
                    if exc.errno in _STARVED:
                        self._starved.log("accepting connections failed: %s; retrying every %gs",
                                          exc.strerror or type(exc).__name__, ACCEPT_RETRY)
                        await asyncio.sleep(ACCEPT_RETRY)
                    elif exc.errno not in (errno.ECONNABORTED, errno.EPROTO, errno.EINTR):
                        raise
                    continue
                self._admit(conn, factory, ctx)
        finally:
            sweeper.cancel()

    def _admit(self, conn: socket.socket, factory: Callable[[], RequestHandler], ctx: ssl.SSLContext | None) -> None:
        conn.setblocking(False)
        if len(self._conns) >= self.limits().max_connections and not self._make_room():
            self.refused += 1
            conn.close()
            return
        entry = _Conn(conn)
        self._conns[conn] = entry
        task = asyncio.get_running_loop().create_task(self._connect(entry, factory, ctx))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, entry: _Conn, factory: Callable[[], RequestHandler], ctx: ssl.SSLContext | None) -> None:
        def protocol() -> RequestHandler:
            handler = factory()
            # Same object layout (no new slots): only handle_error differs. aiohttp's Server builds
            # the handler itself and offers no way to choose its class.
            handler.__class__ = _Handler
            entry.protocol = handler
            return handler

        timeout = self.limits().header_timeout if ctx is not None else None
        try:
            # A TLS peer that leaves without close_notify would keep its socket for the default 30 s
            # shutdown timeout: bound it like the handshake.
            await asyncio.get_running_loop().connect_accepted_socket(
                protocol, entry.sock, ssl=ctx, ssl_handshake_timeout=timeout, ssl_shutdown_timeout=timeout)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            log.debug("connection closed before it was served (%s)", type(exc).__name__)
            self._conns.pop(entry.sock, None)
            entry.sock.close()

    def _prune(self) -> None:
        for sock in [s for s, c in self._conns.items() if not c.alive()]:
            del self._conns[sock]

    def _make_room(self) -> bool:
        """Close the connection a new one may replace (see the module docstring); False when none may."""
        self._prune()
        if len(self._conns) < self.limits().max_connections:
            return True
        stalled = [c for c in self._conns.values() if c.protocol is not None and c.protocol.writing_paused]
        victim: _Conn | None
        if stalled:
            victim = min(stalled, key=lambda c: c.paused_since if c.paused_since is not None else time.monotonic())
        else:
            victim = next((c for c in self._conns.values() if c.protocol is None or c.protocol not in self._busy),
                          None)
        if victim is None:
            return False
        self.evicted += 1
        log.debug("connection cap reached: closing a connection %s to admit a new one",
                  "whose answers wait unread" if stalled else "with no request in progress")
        victim.close()
        del self._conns[victim.sock]
        return True

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            self._prune()
            now = time.monotonic()
            limit = self.limits().write_timeout
            closed = 0
            for entry in list(self._conns.values()):
                if entry.protocol is None or not entry.protocol.writing_paused:
                    entry.paused_since = None
                elif entry.paused_since is None:
                    entry.paused_since = now
                elif now - entry.paused_since >= limit:
                    entry.close()
                    del self._conns[entry.sock]
                    closed += 1
            if closed:
                self.write_timeouts += closed
                log.debug("closed %d connection(s) whose answers waited unread for %gs", closed, limit)

    def close_all(self) -> None:
        """Abort every connection (served, in a TLS handshake or waiting for one)."""
        for task in list(self._tasks):
            task.cancel()
        for entry in list(self._conns.values()):
            entry.close()  # a handshake's socket is closed by its cancelled task
        self._conns.clear()
