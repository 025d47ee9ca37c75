"""A loopback MTLS SIP registrar that answers like a Lync / Skype for Business Front End.

Used by ``rmxdiag lab`` (and tests) so a newcomer sees the product work with no RMX and no Lync.
What it reproduces (how a Front End treats a peer, and what the wire shows):

- it asks for a client certificate and names its trusted CAs in the CertificateRequest;
- an untrusted client chain gets a TCP reset, no alert, as Schannel does (``reject="reset"``);
  other verification failures (expired, wrong EKU) get OpenSSL's alert;
- after a good handshake, OPTIONS/REGISTER from a certificate whose CN is a trusted application
  computer get ``200 OK``; any other peer gets ``403`` with an ``ms-diagnostics`` header;
- a TLS version window, so a version mismatch ends in alert 70.

The TLS engine runs over memory BIOs so the registrar decides which bytes reach the wire (that is
how the Schannel-style reset drops OpenSSL's alert) and can keep a transcript of every byte for
the lab's capture. Bounded: a connection cap, one deadline per connection, a clean ``stop()``.
Standard library only.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from daemon.lab.wire import (
    MAX_SIP_MESSAGE,
    SCHANNEL_ALERT_FOR_VERIFY_CODE,
    UNTRUSTED_CHAIN_CODES,
    common_name,
    set_client_ca_list,
    set_tls_window,
    sip_response,
    take_sip_message,
)

log = logging.getLogger("rmxdiag.lab.registrar")

_RECV = 16 * 1024
_TRANSCRIPTS_KEPT = 32


@dataclass
class Transcript:
    """Every byte of one connection in wire order, for the lab capture.

    ``events`` holds ``("c2s" | "s2c", bytes)``; ``end`` is how the server ended it: ``rst``,
    ``fin`` (server closed), ``peer_fin`` (the client closed first) or ``refused`` (nothing
    listened: the SYN got a reset).
    """

    client: tuple[str, int]
    server: tuple[str, int]
    events: list[tuple[str, bytes]] = field(default_factory=list)
    end: str = "fin"
    started: float = field(default_factory=time.time)


class _Closed(Exception):
    """The peer closed, reset, or the connection's deadline passed."""


class _Conn:
    """One accepted connection driven through memory BIOs."""

    def __init__(self, owner: LabRegistrar, sock: socket.socket, transcript: Transcript) -> None:
        self.owner = owner
        self.sock = sock
        self.t = transcript
        self.deadline = time.monotonic() + owner.connection_deadline
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.tls = owner.context.wrap_bio(self.inc, self.out, server_side=True)

    def flush(self) -> None:
        data = self.out.read()
        if data:
            self.t.events.append(("s2c", data))
            self.sock.sendall(data)

    def fill(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise _Closed("deadline")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(_RECV)
        except (TimeoutError, OSError) as exc:
            raise _Closed(type(exc).__name__) from exc
        if not data:
            self.t.end = "peer_fin"
            raise _Closed("eof")
        self.t.events.append(("c2s", data))
        self.inc.write(data)

    def handshake(self) -> bool:
        """True when the handshake completed; False when this connection is finished."""
        while True:
            try:
                self.tls.do_handshake()
                self.flush()
                return True
            except ssl.SSLWantReadError:
                self.flush()
                self.fill()
            except ssl.SSLCertVerificationError as exc:
                if self.owner.reject == "reset" and exc.verify_code in UNTRUSTED_CHAIN_CODES:
                    self.out.read()  # drop OpenSSL's alert: Schannel says nothing and resets
                    log.info("lab registrar: untrusted client chain (%s): reset", exc.verify_message)
                    self.reset()
                    return False
                log.info("lab registrar: client certificate refused (%s): alert", exc.verify_message)
                self._send_alert(SCHANNEL_ALERT_FOR_VERIFY_CODE.get(exc.verify_code))
                return False
            except ssl.SSLError as exc:
                log.info("lab registrar: handshake failed (%s)", exc.reason)
                self.flush()  # OpenSSL's alert (protocol_version, certificate_required...)
                return False

    def _send_alert(self, description: int | None) -> None:
        """Send OpenSSL's pending alert, or ``description`` instead when that alert is plaintext."""
        pending = self.out.read()
        # A plaintext fatal alert record is exactly 7 bytes: 15 <version:2> 00 02 02 <desc>.
        # In TLS 1.3 (and after ChangeCipherSpec) it is encrypted and cannot be rewritten.
        if description is not None and len(pending) >= 7 and pending[-7] == 0x15 and pending[-4:-1] == b"\x00\x02\x02":
            pending = pending[:-1] + bytes([description])
        if pending:
            self.t.events.append(("s2c", pending))
            self.sock.sendall(pending)

    def reset(self) -> None:
        self.t.end = "rst"
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def read_message(self, buf: bytearray) -> bytes | None:
        """One SIP message (headers + Content-Length body), or None at a clean end."""
        while True:
            message = take_sip_message(buf)
            if message is not None:
                return message
            if len(buf) > MAX_SIP_MESSAGE:
                raise _Closed("oversized")
            if time.monotonic() > self.deadline:
                raise _Closed("deadline")
            try:
                data = self.tls.read(_RECV)
            except ssl.SSLWantReadError:
                self.flush()
                self.fill()
            except ssl.SSLZeroReturnError:
                return None
            except ssl.SSLError as exc:
                raise _Closed(str(exc.reason)) from exc
            else:
                if not data:  # SSLObject.read gives b"" after the peer's close_notify
                    return None
                buf += data

    def send(self, data: bytes) -> None:
        self.tls.write(data)
        self.flush()

    def close_notify(self) -> None:
        with contextlib.suppress(ssl.SSLError, OSError):
            self.tls.unwrap()
        with contextlib.suppress(OSError):
            self.flush()


class LabRegistrar:
    """A Front End stand-in on loopback; use as a context manager or ``start()``/``stop()``."""

    def __init__(
        self,
        certfile: Path,
        keyfile: Path,
        cafile: Path,
        trusted_names: Iterable[str],
        *,
        fqdn: str = "fe01.lab.example",
        tls_min: str = "1.0",
        tls_max: str = "1.3",
        reject: str = "reset",
        host: str = "127.0.0.1",
        port: int = 0,
        max_connections: int = 32,
        connection_deadline: float = 5.0,
    ) -> None:
        if reject not in ("reset", "alert"):
            raise ValueError("reject must be 'reset' or 'alert'")
        self.trusted_names = frozenset(n.lower() for n in trusted_names)
        self.fqdn = fqdn
        self.reject = reject
        self.max_connections = max_connections
        self.connection_deadline = connection_deadline
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(certfile, keyfile)
        self.context.load_verify_locations(cafile)
        self.context.verify_mode = ssl.CERT_REQUIRED
        set_tls_window(self.context, tls_min, tls_max)
        self.ca_list_sent = set_client_ca_list(self.context, cafile)
        self._host, self._port = host, port
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._active: dict[int, socket.socket] = {}
        self._threads: list[threading.Thread] = []
        self._acceptor: threading.Thread | None = None
        self.transcripts: list[Transcript] = []
        self.connections = 0

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the registrar listens on."""
        if self._listener is None:
            raise RuntimeError("registrar not started")
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> LabRegistrar:
        """Bind and start accepting."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self._host, self._port))
        listener.listen(64)
        listener.settimeout(0.1)  # how often the accept loop looks at the stop flag
        self._listener = listener
        self._acceptor = threading.Thread(target=self._accept_loop, name="lab-registrar-accept", daemon=True)
        self._acceptor.start()
        log.info("lab registrar listening on %s:%d", *self.address)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, cut open connections and join every thread."""
        self._stop.set()
        if self._acceptor is not None:
            self._acceptor.join(timeout)
        with self._lock:
            for sock in self._active.values():
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("lab registrar: a connection thread did not end within %.1fs", timeout)
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> LabRegistrar:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        assert self._listener is not None  # noqa: S101 (start() sets it before this thread runs)
        while not self._stop.is_set():
            try:
                sock, peer = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._threads = [t for t in self._threads if t.is_alive()]
                if len(self._active) >= self.max_connections:
                    log.warning("lab registrar: connection cap %d reached, refusing %s", self.max_connections, peer)
                    sock.close()
                    continue
                self._active[sock.fileno()] = sock
                self.connections += 1
                thread = threading.Thread(target=self._serve, args=(sock, peer), name="lab-registrar-conn",
                                          daemon=True)
                self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket, peer: tuple[str, int]) -> None:
        transcript = Transcript((str(peer[0]), int(peer[1])), self.address)
        key = sock.fileno()
        try:
            conn = _Conn(self, sock, transcript)
            if conn.handshake():
                self._dialogue(conn)
        except (_Closed, OSError) as exc:
            log.debug("lab registrar: connection from %s ended: %s", peer, exc)
        finally:
            with self._lock:
                self._active.pop(key, None)
                self.transcripts.append(transcript)
                del self.transcripts[:-_TRANSCRIPTS_KEPT]
            sock.close()

    def _dialogue(self, conn: _Conn) -> None:
        name = common_name(conn.tls.getpeercert())
        trusted = name is not None and name.lower() in self.trusted_names
        buf = bytearray()
        while not self._stop.is_set():
            message = conn.read_message(buf)
            if message is None:
                conn.close_notify()
                return
            if message.startswith(b"SIP/2.0"):
                continue  # a response from the peer: nothing to answer
            method = message.split(b" ", 1)[0].decode("ascii", "replace")
            if not trusted:
                # The Front End takes the peer's identity from its certificate: a name that is no
                # trusted application computer is refused (the Known Servers Table).
                diag = (f'ms-diagnostics: 1010;reason="Certificate trust with the peer could not be established: '
                        f'{name or "no subject CN"} is not a trusted application computer of this pool";'
                        f'source="{self.fqdn}"')
                conn.send(sip_response(message, 403, "Forbidden", [diag]))
            elif method in ("OPTIONS", "REGISTER"):
                conn.send(sip_response(message, 200, "OK", ["Allow: INVITE, ACK, CANCEL, BYE, OPTIONS"]))
            else:
                conn.send(sip_response(message, 501, "Not Implemented"))


@contextlib.contextmanager
def running(*args: object, **kwargs: object) -> Iterator[LabRegistrar]:
    """``with running(...) as fe:`` starts a :class:`LabRegistrar` and always stops it."""
    registrar = LabRegistrar(*args, **kwargs)  # type: ignore[arg-type]
    registrar.start()
    try:
        yield registrar
    finally:
        registrar.stop()
