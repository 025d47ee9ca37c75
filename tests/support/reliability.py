"""Hostile peers for the reliability tests: each misbehaves in exactly one way, on loopback.

Every peer serves each connection in its own thread (parallel probes are never serialised by
the peer), stops when its context exits and joins its threads with a bound.
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.message
import dns.rcode

from daemon.lab import pki

Handler = Callable[[socket.socket, threading.Event], None]
_LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST instead of FIN
# The first bytes of a TLS 1.2 ServerHello record: enough for the client to see "the server spoke".
SERVER_HELLO_START = bytes.fromhex("160303003102000031030312345678")


@contextlib.contextmanager
def serving(handler: Handler, *, backlog: int = 64) -> Iterator[int]:
    """A loopback TCP listener running ``handler(conn, stop)`` per connection; yields the port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(backlog)
    listener.settimeout(0.1)
    stop = threading.Event()
    workers: list[threading.Thread] = []

    def run(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError, ssl.SSLError):
            handler(conn, stop)

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            worker = threading.Thread(target=run, args=(conn,), daemon=True)
            worker.start()
            workers.append(worker)
            workers[:] = [w for w in workers if w.is_alive()]

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for worker in list(workers):
            worker.join(5)
        listener.close()


def _until_closed(conn: socket.socket, stop: threading.Event, limit: float = 10.0) -> None:
    """Hold ``conn`` until the client closes it (or ``limit`` seconds), discarding what it sends."""
    conn.settimeout(0.1)
    end = time.monotonic() + limit
    while not stop.is_set() and time.monotonic() < end:
        try:
            if not conn.recv(4096):
                return
        except TimeoutError:
            continue


def rst_mid_handshake(conn: socket.socket, stop: threading.Event) -> None:
    """Read the ClientHello, start a ServerHello, then reset the connection."""
    conn.settimeout(2)
    conn.recv(4096)
    conn.sendall(SERVER_HELLO_START)
    time.sleep(0.05)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)


def fin_after_client_hello(conn: socket.socket, stop: threading.Event) -> None:
    """Read the ClientHello and close (FIN) without a word."""
    conn.settimeout(2)
    conn.recv(4096)


def garbage(conn: socket.socket, stop: threading.Event) -> None:
    """Answer the ClientHello with 4 KiB of bytes that are no protocol at all, then hold."""
    conn.settimeout(2)
    conn.recv(4096)
    conn.sendall(bytes((i * 73 + 41) % 251 for i in range(4096)))
    _until_closed(conn, stop)


def drip_handshake(conn: socket.socket, stop: threading.Event) -> None:
    """Answer the ClientHello with a ServerHello one byte per second (never completing it)."""
    conn.settimeout(2)
    conn.recv(4096)
    conn.settimeout(0.05)
    for byte in SERVER_HELLO_START + bytes(64):
        conn.sendall(bytes([byte]))
        if stop.wait(1.0):
            return
        with contextlib.suppress(TimeoutError):
            if not conn.recv(4096):
                return


def tls_handler(server: pki.Issued, directory: Path, then: Handler, extra_chain: bytes = b"") -> Handler:
    """A handler that completes a real TLS handshake (``server`` + ``extra_chain``) and runs ``then``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = server.write(directory, f"tls{id(then)}")
    full = directory / f"tls{id(then)}-full.pem"
    full.write_bytes(server.cert_pem + (extra_chain or server.chain_pem))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(full, paths["key"])

    def handle(conn: socket.socket, stop: threading.Event) -> None:
        conn.settimeout(5)
        with ctx.wrap_socket(conn, server_side=True) as tls:
            then(tls, stop)  # type: ignore[arg-type]  # an SSLSocket is a socket

    return handle


def endless_header(tls: socket.socket, stop: threading.Event) -> None:
    """After the OPTIONS: a status line, then one header line that never ends."""
    tls.recv(4096)
    tls.sendall(b"SIP/2.0 200 OK\r\nX-Endless: ")
    chunk = b"a" * 16384
    end = time.monotonic() + 10
    while not stop.is_set() and time.monotonic() < end:
        tls.sendall(chunk)


def endless_provisional(tls: socket.socket, stop: threading.Event) -> None:
    """After the OPTIONS: '100 Trying' responses as fast as the client reads them, never a final one."""
    tls.recv(4096)
    burst = b"SIP/2.0 100 Trying\r\nContent-Length: 0\r\n\r\n" * 200
    end = time.monotonic() + 10
    while not stop.is_set() and time.monotonic() < end:
        tls.sendall(burst)


def answer_ok(tls: socket.socket, stop: threading.Event) -> None:
    """A healthy registrar: 200 to the OPTIONS at once, then wait for the client to close."""
    tls.recv(4096)
    tls.sendall(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n")
    _until_closed(tls, stop)


def long_chain(issuer: pki.Issued, depth: int) -> bytes:
    """PEM of ``depth`` CA certificates, each issued by the next (a chain far longer than any PKI)."""
    chain: list[bytes] = []
    parent = issuer
    for level in range(depth):
        parent = pki.issue(pki.name(f"Hostile CA {level}"), parent, ca=True, ekus=None)
        chain.append(pki.pem(parent.cert))
    return b"".join(reversed(chain))


@contextlib.contextmanager
def dns_server(*, answer: bool) -> Iterator[tuple[str, int]]:
    """A UDP DNS server on loopback: NXDOMAIN to every query (``answer``) or never a reply."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except OSError:
                continue
            if answer:
                response = dns.message.make_response(dns.message.from_wire(data))
                response.set_rcode(dns.rcode.NXDOMAIN)
                sock.sendto(response.to_wire(), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()
    finally:
        stop.set()
        thread.join(5)
        sock.close()


def open_fds() -> int:
    """File descriptors this process holds now."""
    return len(os.listdir("/proc/self/fd"))


def rss_kib() -> int:
    """Resident set size of this process now, in KiB (from /proc, not the peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
