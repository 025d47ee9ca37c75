"""Peers for the MTLS probe tests: openssl s_server variants, a tarpit, a drip server, a closed port."""

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
def scripted_tcp(reply: bytes, hold: float = 10.0) -> Iterator[int]:
    """A plain TCP server: reads the client's first bytes, sends ``reply``, then holds the connection.

    ``b"SIP/2.0 400 ..."`` makes a plain SIP-over-TCP port; a TLS record header with a short
    body makes a server that starts the handshake and then stalls (the CRL-fetch shape).
    """
    def handle(conn: socket.socket, stop: threading.Event) -> None:
        with conn, contextlib.suppress(OSError):
            conn.settimeout(2)
            conn.recv(4096)
            conn.sendall(reply)
            stop.wait(hold)

    with _accepting(handle) as port:
        yield port


def closed_port() -> int:
    """A loopback port nothing listens on (connect gets RST)."""
    return free_port()


@contextlib.contextmanager
def drip_sip_server(server: pki.Issued, files_dir: Path, interval: float = 0.2,
                    answer: bytes = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n") -> Iterator[int]:
    """A real TLS server that, after the handshake, sends ``answer`` one byte per ``interval``
    (``interval=0``: all at once)."""
    paths = server.write(files_dir, "drip")
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


@contextlib.contextmanager
def reset_after_client_cert(upstream_port: int) -> Iterator[int]:
    """A TCP relay to ``upstream_port`` that RSTs both sides when the client sends its Certificate.

    It reads TLS 1.2 plaintext records from the client and resets (SO_LINGER 0) on a handshake
    record carrying message type 11, like Schannel dropping a peer it refuses.
    """
    def relay(client: socket.socket, stop: threading.Event) -> None:
        with client, socket.create_connection(("127.0.0.1", upstream_port), timeout=5) as up:
            client.settimeout(0.05)
            up.settimeout(0.05)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    data = client.recv(65536)
                    if not data:
                        return
                    if data[:3] == b"\x16\x03\x03" and data[5:6] == b"\x0b":
                        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                        return
                    up.sendall(data)
                with contextlib.suppress(TimeoutError):
                    data = up.recv(65536)
                    if not data:
                        return
                    client.sendall(data)

    with _accepting(relay, threaded=True) as port:
        yield port
