"""The endpoint's accept loop: connections counted from the accept, a write deadline, a fair cap.

- Every accepted socket counts against ``server.max_connections`` from the accept on, a TLS
  handshake in progress included (it holds a file descriptor as much as a served connection).
- Write deadline: a connection whose answers stop draining (the client takes no byte of its write
  buffer for ``server.write_timeout`` seconds) is closed. A client that pipelines thousands of
  requests and never reads the answers is closed that way; neither the header nor the body deadline
  applies to it (it sent both). A slow client that keeps reading a large answer is never cut.
- The cap cannot be used to lock Prometheus out: at the cap, a new connection takes the place of
  one that is doing nothing for anyone, in this order: a connection that has not sent a request
  yet (a TLS handshake, headers still arriving, a silent one; the oldest first), then one whose
  answers stopped draining (the longest first), then a keep-alive connection idle for more than
  :data:`IDLE_GRACE` seconds (the one whose last request is the oldest first). A connection whose
  request is being handled or whose answer is being read is never replaced; when every connection
  is one of those the new one is closed at once. Once half the cap is in use, a connection that
  has sent no request within :data:`FIRST_REQUEST_CROWDED` seconds (or the header deadline, if
  shorter) is closed.
- ``/probe`` requests in progress (they may wait for a slow target's whole deadline) hold at most
  the cap less an eighth of it (at least one connection): the rest stays for ``/metrics`` and the
  other endpoints, and a ``/probe`` beyond that is answered 503 at once.
- Out of file descriptors (EMFILE, ENFILE) or buffers, the loop backs off and logs one line per
  interval with a count, instead of a traceback per failed accept.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import socket
import ssl
import sys
import termios
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
FIRST_REQUEST_CROWDED = 1.0  # seconds a connection may take to send its first request once the cap is half used
IDLE_GRACE = 1.0  # seconds after a request during which its keep-alive connection is not replaced
PROBE_RESERVE_SHARE = 8  # 1/8 of the cap (at least one connection) is kept for requests other than /probe
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

    def _process_keepalive(self) -> None:
        """aiohttp's idle keep-alive close, deferred while an answer is still being delivered.

        aiohttp counts a connection idle once its handler has handed the answer over, and closes it
        at the keep-alive deadline: a TLS close then gives the rest of the answer only the shutdown
        deadline and drops what is still buffered. Delivery is not over while the kernel still holds
        unacknowledged bytes (what waits in a buffer of the transport waits behind them). The write
        deadline bounds a client that stops reading.
        """
        transport = self.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if (transport is not None and not transport.is_closing()
                and (transport.get_write_buffer_size() or (sock is not None and _unacknowledged(sock.fileno())))):
            self._keepalive_handle = asyncio.get_running_loop().call_later(SWEEP_EVERY, self._process_keepalive)
            return
        super()._process_keepalive()


def _unacknowledged(fd: int) -> int:
    """Bytes in socket ``fd``'s kernel send queue not yet acknowledged by the peer (0 where not measurable)."""
    try:
        raw = fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0\0\0\0")  # SIOCOUTQ on a TCP socket
    except OSError:
        return 0
    return int.from_bytes(raw, sys.byteorder, signed=True)


@dataclass
class _Conn:
    """One accepted socket and what the loop knows of it."""

    sock: socket.socket
    accepted: float  # monotonic time of the accept
    protocol: RequestHandler | None = None  # None until the protocol exists (after a TLS handshake too)
    served: float | None = None  # monotonic time its last request reached a handler (None: none yet)
    buffered: int = 0  # bytes its answers held in the write buffer at the last sweep
    stalled_since: float | None = None  # monotonic time its buffered answers stopped draining

    def alive(self) -> bool:
        return self.sock.fileno() != -1

    def pending(self) -> int:
        """Bytes of answers written by the daemon that the client has not received yet: the
        transport's buffer plus the kernel's send queue (which drains as the client reads, while the
        transport's buffer may wait seconds for the kernel to take its next large piece)."""
        transport = self.protocol.transport if self.protocol is not None else None
        if transport is None:
            return 0
        return transport.get_write_buffer_size() + _unacknowledged(self.sock.fileno())

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
        self.probes_refused = 0
        self._conns: dict[socket.socket, _Conn] = {}  # accept order: the oldest first
        self._entries: dict[RequestHandler, _Conn] = {}  # protocol -> its connection
        self._busy: dict[RequestHandler, int] = {}  # protocol -> requests its handler is running
        self._probing = 0  # /probe requests being handled now
        self._tasks: set[asyncio.Task[None]] = set()
        self._starved = Throttled(log, logging.ERROR)

    # -- requests --------------------------------------------------------------------------------
    def probe_limit(self) -> int:
        """How many ``/probe`` requests may be handled at once: the cap less a reserve (see the module docstring)."""
        cap = self.limits().max_connections
        return max(1, cap - max(1, cap // PROBE_RESERVE_SHARE))

    def middleware(self) -> Middleware:
        """An aiohttp middleware marking a connection busy while its request is being handled."""
        @web.middleware
        async def busy(request: web.Request, handler: Handler) -> web.StreamResponse:
            protocol = request.protocol
            entry = self._entries.get(protocol)
            if entry is not None:
                entry.served = time.monotonic()
            probe = request.path == "/probe"
            if probe and self._probing >= self.probe_limit():
                self.probes_refused += 1
                return web.Response(status=503, text="too many /probe scrapes in progress; retry later\n",
                                    headers={"Retry-After": "1"})
            self._busy[protocol] = self._busy.get(protocol, 0) + 1
            self._probing += probe
            try:
                return await handler(request)
            finally:
                self._probing -= probe
                left = self._busy.pop(protocol, 1) - 1
                if left:
                    self._busy[protocol] = left
                if entry is not None:
                    entry.served = time.monotonic()
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
        entry = _Conn(conn, time.monotonic())
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
            self._entries[handler] = entry
            return handler

        timeout = self.limits().header_timeout if ctx is not None else None
        try:
            # A TLS peer that leaves without close_notify would keep its socket for the default 30 s
            # shutdown timeout: bound it like the handshake.
            await asyncio.get_running_loop().connect_accepted_socket(
                protocol, entry.sock, ssl=ctx, ssl_handshake_timeout=timeout, ssl_shutdown_timeout=timeout)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            log.debug("connection closed before it was served (%s)", type(exc).__name__)
            self._drop(entry)
            entry.sock.close()

    def _drop(self, entry: _Conn) -> None:
        self._conns.pop(entry.sock, None)
        if entry.protocol is not None:
            self._entries.pop(entry.protocol, None)

    def _prune(self) -> None:
        for entry in [c for c in self._conns.values() if not c.alive()]:
            self._drop(entry)

    def _victim(self) -> tuple[_Conn, str] | None:
        """The connection a new one may replace, and why (see the module docstring); None when none may."""
        entries = list(self._conns.values())
        fresh = [c for c in entries if c.served is None and (c.protocol is None or c.protocol not in self._busy)]
        if fresh:
            return min(fresh, key=lambda c: c.accepted), "that has sent no request yet"
        stalled = [c for c in entries if c.stalled_since is not None]
        if stalled:
            return min(stalled, key=lambda c: c.stalled_since or 0.0), "whose answers wait unread"
        recent = time.monotonic() - IDLE_GRACE
        idle = [c for c in entries if c.protocol is not None and c.protocol not in self._busy and not c.pending()
                and (c.served or 0.0) <= recent]
        if idle:
            return min(idle, key=lambda c: c.served or 0.0), "idle between requests"
        return None

    def _make_room(self) -> bool:
        """Close the connection a new one may replace; False when none may."""
        self._prune()
        if len(self._conns) < self.limits().max_connections:
            return True
        found = self._victim()
        if found is None:
            return False
        victim, why = found
        self.evicted += 1
        log.debug("connection cap reached: closing a connection %s to admit a new one", why)
        victim.close()
        self._drop(victim)
        return True

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            self._prune()
            now = time.monotonic()
            limits = self.limits()
            crowded = len(self._conns) * 2 >= limits.max_connections
            first = min(limits.header_timeout, FIRST_REQUEST_CROWDED)
            closed = late = 0
            for entry in list(self._conns.values()):
                if crowded and entry.served is None and now - entry.accepted >= first:
                    entry.close()  # the cap is filling: a connection that asks nothing gives its slot back
                    self._drop(entry)
                    late += 1
                    continue
                pending = entry.pending()
                if pending == 0 or pending < entry.buffered:
                    entry.stalled_since = None  # nothing waits, or the client took some since the last look
                elif entry.stalled_since is None:
                    entry.stalled_since = now
                elif now - entry.stalled_since >= limits.write_timeout:
                    entry.close()
                    self._drop(entry)
                    closed += 1
                entry.buffered = pending
            if closed:
                self.write_timeouts += closed
                log.debug("closed %d connection(s) whose answers waited unread for %gs", closed, limits.write_timeout)
            if late:
                log.debug("closed %d connection(s) that sent no request within %gs while the cap was half used",
                          late, first)

    def close_all(self) -> None:
        """Abort every connection (served, in a TLS handshake or waiting for one)."""
        for task in list(self._tasks):
            task.cancel()
        for entry in list(self._conns.values()):
            entry.close()  # a handshake's socket is closed by its cancelled task
        self._conns.clear()
        self._entries.clear()
