"""Peers for the MTLS probe tests: openssl s_server variants, a tarpit, scripted TCP and TLS servers,
a closed port, and a TLS 1.2 relay that resets, injects an alert or flips a byte in a real handshake."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from daemon.lab import pki
from tests.support.peers import free_port, need, started, wait_for_port

_LINGER_RESET = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # SO_LINGER on, 0 s: close() sends an RST


@dataclass(frozen=True)
class Files:
    """PEM files of one test PKI in a directory."""

    fe_cert: Path
    fe_key: Path
    rmx_cert: Path
    rmx_key: Path
    rmx_chain: Path
    ca: Path


@contextlib.contextmanager
def s_server(files_dir: Path, server: pki.Issued, extra: Sequence[str], verify_ca: Path | None = None,
             ) -> Iterator[int]:
    """``openssl s_server`` on a free loopback port with ``server``'s cert; yields the port.

    ``verify_ca``: request a client certificate (``-Verify 1``), verify it against that CA and
    fail the handshake when it does not verify (``-verify_return_error``).
    """
    binary = need("openssl")
    paths = server.write(files_dir, f"srv{free_port()}")
    cert = files_dir / (paths["cert"].stem + "-full.pem")
    cert.write_bytes(server.cert_pem + server.chain_pem)
    port = free_port()
    argv = [binary, "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(cert), "-key", str(paths["key"]),
            "-quiet", *extra]
    if verify_ca is not None:
        argv += ["-Verify", "1", "-verify_return_error", "-CAfile", str(verify_ca)]
    # stdin is a pipe held open: s_server closes its connection when its stdin reaches EOF.
    read_end, write_end = os.pipe()
    try:
        with started(argv, files_dir / f"s_server-{port}.log", stdin=read_end) as proc:
            os.close(read_end)
            read_end = -1
            wait_for_port(port, proc=proc)
            yield port
    finally:
        for fd in (read_end, write_end):
            if fd >= 0:
                os.close(fd)


@contextlib.contextmanager
def tarpit() -> Iterator[int]:
    """A listener that accepts (kernel backlog) and never speaks; yields its port."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(512)
        yield listener.getsockname()[1]


@contextlib.contextmanager
def syn_blackhole() -> Iterator[int]:
    """A port whose SYNs go unanswered: a listener with a full accept backlog (Linux drops the SYN).

    A real SYN timeout on loopback, without root or packet filters.
    """
    with socket.socket() as listener, contextlib.ExitStack() as stack:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(4):
            filler = stack.enter_context(socket.socket())
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        time.sleep(0.2)
        yield port


@contextlib.contextmanager
def _accepting(handle: Callable[[socket.socket, threading.Event], None], *,
               threaded: bool = False) -> Iterator[int]:
    """A loopback listener whose accept loop hands each connection to ``handle(conn, stop)``
    (in its own thread when ``threaded``); yields the port, then stops and joins the loop."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            if threaded:
                threading.Thread(target=handle, args=(conn, stop), daemon=True).start()
            else:
                handle(conn, stop)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(10)
        listener.close()


@contextlib.contextmanager
def scripted_tcp(reply: bytes, hold: float = 10.0, reset: bool = False) -> Iterator[int]:
    """A plain TCP server: reads the client's first bytes, sends ``reply``, then holds the connection
    for ``hold`` seconds and closes it (with an RST when ``reset``).

    ``b"SIP/2.0 400 ..."`` makes a plain SIP-over-TCP port; a TLS record header with a short
    body makes a server that starts the handshake and then stalls (the CRL-fetch shape); an empty
    reply and no hold, a server that drops the ClientHello.
    """
    def handle(conn: socket.socket, stop: threading.Event) -> None:
        with conn, contextlib.suppress(OSError):
            conn.settimeout(2)
            conn.recv(4096)
            conn.sendall(reply)
            stop.wait(hold)
            if reset:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)

    with _accepting(handle) as port:
        yield port


def closed_port() -> int:
    """A loopback port nothing listens on (connect gets RST)."""
    return free_port()


@contextlib.contextmanager
def tls_then_close(server: pki.Issued, files_dir: Path) -> Iterator[int]:
    """A real TLS server that reads the SIP request after the handshake, then closes without answering."""
    paths = server.write(files_dir, "then-close")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(paths["cert"], paths["key"])

    def handle(conn: socket.socket, stop: threading.Event) -> None:
        with contextlib.suppress(OSError), ctx.wrap_socket(conn, server_side=True) as tls:
            tls.settimeout(5)
            tls.recv(4096)

    with _accepting(handle) as port:
        yield port


@contextlib.contextmanager
def accept_then_close(server: pki.Issued, files_dir: Path, client_ca: Path) -> Iterator[int]:
    """A real TLS 1.3 server that requires and verifies a client certificate, completes the handshake
    (its session tickets are its acceptance) and closes at once, as a Front End ending an idle connection."""
    paths = server.write(files_dir, "accept-close")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(paths["cert"], paths["key"])
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(client_ca)

    def handle(conn: socket.socket, stop: threading.Event) -> None:
        conn.settimeout(5)
        with contextlib.suppress(OSError), ctx.wrap_socket(conn, server_side=True):
            pass  # handshake done (tickets sent): close without a request, without close_notify

    with _accepting(handle) as port:
        yield port


@contextlib.contextmanager
def oversized_chain(server: pki.Issued, files_dir: Path, copies: int = 200) -> Iterator[int]:
    """A real TLS server whose Certificate message carries its chain ``copies`` times (over 100 KB,
    OpenSSL's default limit for a peer's certificate list)."""
    paths = server.write(files_dir, "oversized")
    paths["cert"].write_bytes(server.cert_pem + server.chain_pem * copies)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(paths["cert"], paths["key"])

    def handle(conn: socket.socket, stop: threading.Event) -> None:
        conn.settimeout(5)
        with contextlib.suppress(OSError), ctx.wrap_socket(conn, server_side=True) as tls:
            tls.recv(4096)

    with _accepting(handle) as port:
        yield port


@contextlib.contextmanager
def drip_sip_server(server: pki.Issued, files_dir: Path, interval: float = 0.2,
                    answer: bytes = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
                    send_chain: bool = False) -> Iterator[int]:
    """A real TLS server that, after the handshake, sends ``answer`` one byte per ``interval``
    (``interval=0``: all at once); ``send_chain``: it presents its issuers after its certificate."""
    paths = server.write(files_dir, "drip")
    if send_chain:
        paths["cert"].write_bytes(server.cert_pem + server.chain_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(paths["cert"], paths["key"])

    def handle(conn: socket.socket, stop: threading.Event) -> None:
        with contextlib.suppress(OSError), ctx.wrap_socket(conn, server_side=True) as tls:
            tls.settimeout(5)
            tls.recv(4096)
            if not interval:
                tls.sendall(answer)
                stop.wait(2)
            for byte in answer if interval else b"":
                if stop.is_set():
                    break
                tls.sendall(bytes([byte]))
                time.sleep(interval)

    with _accepting(handle) as port:
        yield port


@dataclass(frozen=True)
class Edit:
    """What the relay does with one plaintext TLS record: forward ``forward`` (the record, changed or
    not), or first send ``reply`` back to the record's sender and end both connections (``end``:
    "reset" sends an RST, "close" a FIN)."""

    forward: bytes = b""
    end: str | None = None
    reply: bytes = b""


RecordHook = Callable[[bytes], "Edit | None"]  # None: forward the record unchanged


def handshake_types(record: bytes) -> list[int]:
    """The handshake message types of a plaintext handshake record (empty for anything else)."""
    if record[:1] != b"\x16":
        return []
    types, pos = [], 5
    while pos + 4 <= len(record):
        types.append(record[pos])
        pos += 4 + int.from_bytes(record[pos + 1:pos + 4], "big")
    return types


def edit_message(record: bytes, msg_type: int, change: Callable[[bytearray], None]) -> bytes:
    """``record`` with ``change`` applied to the body of its handshake message ``msg_type`` (lengths kept)."""
    out, pos = bytearray(record), 5
    while pos + 4 <= len(out):
        length = int.from_bytes(out[pos + 1:pos + 4], "big")
        if out[pos] == msg_type:
            body = bytearray(out[pos + 4:pos + 4 + length])
            change(body)
            out[pos + 4:pos + 4 + length] = body
            return bytes(out)
        pos += 4 + length
    raise AssertionError(f"no handshake message {msg_type} in the record")


def alert_record(number: int) -> bytes:
    """A fatal TLS 1.2 alert record (plaintext: sent before the ChangeCipherSpec)."""
    return b"\x15\x03\x03\x00\x02\x02" + bytes([number])


@contextlib.contextmanager
def tls12_relay(upstream_port: int, *, client: RecordHook | None = None,
                server: RecordHook | None = None) -> Iterator[int]:
    """A TCP relay to ``upstream_port`` that hands every plaintext TLS record of each direction
    (up to its ChangeCipherSpec) to ``client`` / ``server``, forwarding or ending as they say.

    The handshake is the real server's; only what a hook changes is not: a Schannel-style reset
    after the RMX certificate, an alert no OpenSSL server sends, a byte flipped in a signature.
    """
    def relay(conn: socket.socket, stop: threading.Event) -> None:
        with conn, socket.create_connection(("127.0.0.1", upstream_port), timeout=5) as up:
            conn.settimeout(0.05)
            up.settimeout(0.05)
            sides = {conn: (up, client, bytearray(), [True]), up: (conn, server, bytearray(), [True])}
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not stop.is_set():
                for source, (sink, hook, buffer, plain) in sides.items():
                    try:
                        data = source.recv(65536)
                    except TimeoutError:
                        continue
                    except OSError:
                        return
                    if not data:
                        return
                    buffer.extend(data)
                    while len(buffer) >= 5 and len(buffer) >= 5 + int.from_bytes(buffer[3:5], "big"):
                        size = 5 + int.from_bytes(buffer[3:5], "big")
                        record, buffer[:] = bytes(buffer[:size]), buffer[size:]
                        edit = hook(record) if hook is not None and plain[0] else None
                        plain[0] = plain[0] and record[0] != 20  # encrypted after ChangeCipherSpec
                        if edit is not None and edit.end is not None:
                            if edit.reply:
                                source.sendall(edit.reply)
                            if edit.end == "reset":
                                source.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
                            return
                        sink.sendall(record if edit is None else edit.forward)
                    if len(buffer) >= 5 and buffer[0] not in (20, 21, 22, 23):
                        sink.sendall(bytes(buffer))  # not TLS: pass it through untouched
                        buffer.clear()

    with _accepting(relay, threaded=True) as port:
        yield port


def on_client_certificate(edit: Edit) -> RecordHook:
    """A hook that applies ``edit`` to the RMX's Certificate record (TLS 1.2) and forwards the rest."""
    return lambda record: edit if 11 in handshake_types(record) else None


@contextlib.contextmanager
def reset_after_client_cert(upstream_port: int, how: str = "reset") -> Iterator[int]:
    """A TCP relay to ``upstream_port`` that resets (or closes, ``how="close"``) both sides when the
    client sends its Certificate, like Schannel dropping a peer it refuses (TLS 1.2 only: the
    Certificate is plaintext there)."""
    with tls12_relay(upstream_port, client=on_client_certificate(Edit(end=how))) as port:
        yield port
