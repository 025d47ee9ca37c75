"""The network half of the MTLS probe: resolve, connect, handshake, OPTIONS, under ONE deadline.

All socket work is non-blocking and every wait is a ``poll`` bounded by the time left before the
overall deadline, so neither a tarpit nor a server dripping one byte a second can stretch a
probe (a per-recv timeout restarts with each byte). What happened on the wire is recorded by
OpenSSL's message callback into a :class:`Trace` (handshake messages, alerts in both
directions), which the classification reads instead of any error text.
"""

from __future__ import annotations

import errno as errno_mod
import select
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

from probes import resolve, sip
from probes.cpu import cpu_slot
from probes.mtls import outcome as oc
from probes.mtls.budget import Busy, DeadlineExpired
from probes.mtls.outcome import Reason, Stage
from probes.mtls.tls import ClientContext
from probes.tlswire import ALERTS, HANDSHAKE_NAMES

_HEADER_TYPES = 256  # 256 record header, 257 TLS 1.3 inner content type: OpenSSL pseudo-messages
MAX_ADDRESSES = 4  # a pool FQDN has a handful of Front Ends; more would only stretch the deadline
_TRACE_ATTR = "_rmxdiag_trace"


@dataclass
class Trace:
    """What OpenSSL's message callback saw on one connection (mutable while it runs)."""

    steps: list[tuple[str, str]] = field(default_factory=list)  # (from_rmx|from_fe, what)
    server_spoke: bool = False
    tls13: bool = False
    server_certificate: bytes | None = None
    certificate_request: bytes | None = None
    client_cert_sent: bool = False
    client_cert_empty: bool = False
    alert_received: int | None = None
    alert_sent: int | None = None
    handshake_done: bool = False
    post_handshake_messages: int = 0


def _on_message(conn: Any, direction: str, _version: int, content_type: int, msg_type: int,
                data: bytes) -> None:
    """OpenSSL message callback: record handshake messages and alerts (never raises)."""
    trace = getattr(conn, _TRACE_ATTR, None)
    if trace is None:
        return
    inbound = direction == "read"
    if content_type >= _HEADER_TYPES:  # record header pseudo-messages: only "the server spoke"
        if inbound:
            trace.server_spoke = True
        return
    who = "from_fe" if inbound else "from_rmx"
    if content_type == 22:
        name = HANDSHAKE_NAMES.get(msg_type, f"handshake({msg_type})")
        if inbound:
            if trace.handshake_done:
                trace.post_handshake_messages += 1
            if msg_type == 8:
                trace.tls13 = True
            elif msg_type == 11:
                trace.server_certificate = data
            elif msg_type == 13:
                trace.certificate_request = data
        elif msg_type == 11:
            trace.client_cert_sent = True
            # An empty certificate_list: 4-byte header + 3-byte length (+1 context byte in TLS 1.3).
            trace.client_cert_empty = len(data) <= (8 if trace.tls13 else 7)
            name += " (empty)" if trace.client_cert_empty else ""
        if msg_type != 4 or not trace.steps or trace.steps[-1][1] != name:
            trace.steps.append((who, name))
    elif content_type == 21 and len(data) >= 2:
        level, number = data[0], data[1]
        label = f"alert {number} {ALERTS.get(number, '?')}" + (" (fatal)" if level == 2 else "")
        trace.steps.append((who, label))
        if number != 0:  # close_notify is an orderly close, not a rejection
            if inbound:
                trace.alert_received = trace.alert_received or number
            else:
                trace.alert_sent = trace.alert_sent or number
    elif content_type == 20:
        trace.steps.append((who, "ChangeCipherSpec"))


def install_callback(ctx: ssl.SSLContext) -> None:
    """Attach the raw message callback (the C-level hook: no per-message enum conversions)."""
    hook = ssl._SSLContext._msg_callback  # type: ignore[attr-defined]
    if hook.__get__(ctx) is None:
        hook.__set__(ctx, _on_message)


@dataclass
class Attempt:
    """The facts of one probe of one registrar address; turned into a result by the caller."""

    stage: Stage = Stage.RESOLVE
    reason: Reason = Reason.OK
    address: str | None = None
    phases: dict[str, float] = field(default_factory=dict)
    trace: Trace = field(default_factory=Trace)
    tls_version: str | None = None
    cipher: str | None = None
    verify_code: int | None = None
    verify_message: str | None = None
    ssl_reason: str | None = None
    errno: int | None = None
    after_handshake: bool = False
    response: sip.SipResponse | None = None
    detail: str = ""


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExpired
    return left


def _wait(sock: socket.socket, write: bool, deadline: float) -> None:
    since = time.monotonic()
    if since >= deadline:
        raise DeadlineExpired  # got to this wait too late: the peer had no time to be silent in
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLOUT if write else select.POLLIN)
    timeout_ms = max(1, int((deadline - since) * 1000 + 0.999))
    if not poller.poll(timeout_ms) and time.monotonic() >= deadline:
        # The kernel saw nothing for the whole timeout (not "since": the thread may have waited
        # for the interpreter lock before it even got to poll).
        raise DeadlineExpired(timeout_ms / 1000)
    # else ready, or a spurious wake-up: the caller retries


def connect(family: int, sockaddr: tuple[Any, ...], deadline: float) -> socket.socket:
    """A non-blocking TCP connection; OSError with the errno on failure."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        code = sock.connect_ex(sockaddr)
        if code in (errno_mod.EINPROGRESS, errno_mod.EAGAIN):
            _wait(sock, True, deadline)
            while not select.select([], [sock], [], 0)[1]:
                _wait(sock, True, deadline)
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            raise OSError(code, errno_mod.errorcode.get(code, str(code)))
    except BaseException:
        sock.close()
        raise
    return sock


def handshake(tls: ssl.SSLSocket, deadline: float) -> None:
    """Drive the handshake of a non-blocking SSLSocket to completion within the deadline."""
    while True:
        try:
            with cpu_slot:
                tls.do_handshake()
            return
        except ssl.SSLWantReadError:
            _wait(tls, False, deadline)
        except ssl.SSLWantWriteError:
            _wait(tls, True, deadline)


def send_all(tls: ssl.SSLSocket, data: bytes, deadline: float) -> None:
    """Write all of ``data`` within the deadline."""
    view = memoryview(data)
    while view:
        try:
            view = view[tls.send(view):]
        except ssl.SSLWantWriteError:
            _wait(tls, True, deadline)
        except ssl.SSLWantReadError:
            _wait(tls, False, deadline)


def read_response(tls: ssl.SSLSocket, deadline: float) -> sip.SipResponse | None:
    """The first final SIP response (provisional 1xx skipped); None on EOF before one arrived."""
    buffer = b""
    while True:
        # Checked on every message too: a flood of 1xx answers never waits, so _wait alone
        # would never see the deadline pass.
        _remaining(deadline)
        length = sip.frame(buffer)
        if length is not None:
            response = sip.parse_response(buffer[:length])
            buffer = buffer[length:]
            if response.status >= 200:
                return response
            continue
        try:
            chunk = tls.recv(65536)
        except ssl.SSLWantReadError:
            _wait(tls, False, deadline)
            continue
        except ssl.SSLWantWriteError:
            _wait(tls, True, deadline)
            continue
        if not chunk:
            return None
        buffer += chunk


def settle(tls: ssl.SSLSocket, until: float, trace: Trace) -> bool:
    """Read after a TLS 1.3 handshake for a late rejection; False on EOF. Errors (alerts) propagate.

    Ends early once the server sent a post-handshake message (a NewSessionTicket): servers send
    it only after they accepted our certificate; otherwise waits until ``until``.
    """
    while True:
        try:
            return bool(tls.recv(4096))
        except ssl.SSLWantReadError:
            if trace.post_handshake_messages:
                return True
            try:
                _wait(tls, False, until)
            except DeadlineExpired:
                return True



def _classify_error(attempt: Attempt, exc: BaseException | None) -> None:
    """Set ``attempt.reason`` (and the evidence fields) from an error in the TLS or SIP stage.

    ``exc`` None: an orderly EOF (recv returned no bytes).
    """
    trace = attempt.trace
    after_cert = trace.client_cert_sent
    if isinstance(exc, ssl.SSLCertVerificationError):
        attempt.stage = Stage.TLS
        attempt.verify_code, attempt.verify_message = exc.verify_code, exc.verify_message
        attempt.reason = oc.verify_reason(exc.verify_code)
        return
    if isinstance(exc, ssl.SSLError):
        attempt.ssl_reason = getattr(exc, "reason", None)
    if trace.alert_received is not None:
        attempt.stage, attempt.reason = Stage.TLS, oc.alert_reason(trace.alert_received)
        return
    if isinstance(exc, ssl.SSLError) and not isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError
                                                        | ssl.SSLSyscallError):
        number = oc.alert_from_ssl_reason(exc.reason)
        if number is not None:
            trace.alert_received = number
            attempt.stage, attempt.reason = Stage.TLS, oc.alert_reason(number)
            return
        attempt.stage = Stage.TLS
        attempt.reason = oc.ssl_reason_class(exc.reason) or oc.sent_alert_reason(trace.alert_sent)
        return
    reset = isinstance(exc, OSError) and oc.is_reset(exc)
    if isinstance(exc, OSError) and exc.errno:
        attempt.errno = exc.errno
    # A close right after our certificate flight: during the handshake (TLS 1.2), or before the
    # FE's first post-handshake message (TLS 1.3, where the client finishes first).
    in_tls = not trace.handshake_done or (trace.tls13 and after_cert and trace.post_handshake_messages == 0)
    if in_tls and after_cert:
        attempt.stage = Stage.TLS
        attempt.reason = Reason.RESET_AFTER_CLIENT_CERT if reset else Reason.CLOSED_AFTER_CLIENT_CERT
    elif trace.handshake_done and attempt.stage is not Stage.SIP:
        # No SIP was sent (--no-sip-options), and the Front End had accepted our certificate (its
        # post-handshake message came first): what it does next is no SIP failure and no rejection.
        attempt.stage, attempt.reason = Stage.TLS, Reason.OK
        attempt.detail = (f"the Front End {'reset' if reset else 'closed'} the connection after accepting the "
                          "handshake; no SIP request was sent, so nothing more was expected")
    else:
        attempt.stage = Stage.TLS if not trace.handshake_done else Stage.SIP
        attempt.reason = Reason.RESET if reset else Reason.CLOSED


def probe_once(host: str, port: int, sni: str | None, client: ClientContext, deadline: float, *,
               sip_options: bool, from_host: str, settle_seconds: float = 0.3,
               nameserver: tuple[str, int] | None = None, started: float | None = None,
               budget: float | None = None) -> Attempt:
    """Probe one registrar: each stage timed, the outcome classified, never raising for the network.

    ``nameserver`` (ip, port): resolve ``host`` there instead of through getaddrinfo (split DNS, tests).
    ``started``: when the probe began (default now); ``budget``: its deadline in seconds as
    configured (default: what is left from ``started``). A deadline that passed while rmxdiag was
    too busy to give the registrar its time is :attr:`Reason.OVERLOADED`, not a registrar fault
    (:meth:`Busy.overloaded`).
    """
    attempt = Attempt()
    busy = Busy.now(deadline, started, budget)
    mark = time.monotonic()

    def lap(phase: str) -> None:
        nonlocal mark
        now = time.monotonic()
        attempt.phases[phase] = now - mark
        mark = now

    tls: ssl.SSLSocket | None = None
    sock: socket.socket | None = None
    try:
        try:
            addresses = resolve.addresses(host, port, deadline, nameserver=nameserver)[:MAX_ADDRESSES]
        except resolve.ResolveError as exc:
            attempt.reason, attempt.errno, attempt.detail = oc.resolve_reason(exc), exc.errno, str(exc)
            return attempt
        finally:
            lap("resolve")
        attempt.stage = Stage.CONNECT
        try:
            # Next address on refusal (e.g. "localhost" -> ::1 first while the FE listens on IPv4).
            for family, sockaddr in addresses:
                attempt.address = (f"[{sockaddr[0]}]:{sockaddr[1]}" if family == socket.AF_INET6
                                   else f"{sockaddr[0]}:{sockaddr[1]}")
                try:
                    sock = connect(family, sockaddr, deadline)
                    break
                except OSError as exc:
                    attempt.reason, attempt.errno = oc.connect_reason(exc.errno), exc.errno
            if sock is None:
                return attempt
            attempt.reason = Reason.OK
        finally:
            lap("connect")
        attempt.stage = Stage.TLS
        tls = client.context.wrap_socket(sock, server_hostname=sni or host.strip("[]"),
                                         do_handshake_on_connect=False)
        setattr(tls, _TRACE_ATTR, attempt.trace)
        try:
            handshake(tls, deadline)
        finally:
            lap("tls")
        attempt.trace.handshake_done = True
        attempt.tls_version = tls.version()
        cipher = tls.cipher()
        attempt.cipher = cipher[0] if cipher else None
        attempt.after_handshake = True
        if sip_options:
            attempt.stage = Stage.SIP
            local = tls.getsockname()
            request = sip.build_options(sni or host, f"{local[0]}:{local[1]}", from_host, port)
            try:
                send_all(tls, request, deadline)
                attempt.response = read_response(tls, deadline)
            finally:
                lap("sip")
            if attempt.response is None:
                _classify_error(attempt, None)
            else:
                attempt.reason = oc.sip_reason(attempt.response.status)
        elif attempt.trace.tls13 and attempt.trace.client_cert_sent:
            # TLS 1.3: the FE judges our certificate after our Finished; read once to see it.
            if not settle(tls, min(deadline, time.monotonic() + settle_seconds), attempt.trace):
                _classify_error(attempt, None)
    except DeadlineExpired as exc:
        if busy.overloaded(exc, deadline):
            attempt.reason = Reason.OVERLOADED
        elif attempt.stage is Stage.TLS and not attempt.after_handshake:
            attempt.reason = Reason.STALLED if attempt.trace.server_spoke else Reason.NO_TLS_ANSWER
        else:
            attempt.reason = Reason.TIMEOUT
    except sip.SipParseError as exc:
        attempt.stage, attempt.reason, attempt.detail = Stage.SIP, Reason.BAD_RESPONSE, str(exc)
    except OSError as exc:  # ssl.SSLError is an OSError
        _classify_error(attempt, exc)
    finally:
        for closable in (tls, sock):
            if closable is not None:
                closable.close()
    return attempt
