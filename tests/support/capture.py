"""Helpers for capture tests: record loopback traffic with dumpcap while real peers talk TLS."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.peers import eventually, free_port, kill_group, need, need_capture, started, wait_for_port


@contextlib.contextmanager
def recording(port: int, out: Path, pcap: bool = False, also: str | None = None) -> Iterator[Path]:
    """Given dumpcap capturing ``tcp port P`` on lo into ``out`` until the block ends.

    dumpcap says neither when its capture loop runs nor when a packet reached the file (it writes
    in batches): a UDP marker datagram on a second port (outside ``tcp port P``, so no analysis
    sees it) is sent until the file grows, before the block starts and after it ends. ``also``
    names a second interface captured into the same pcapng (only the markers pass its filter):
    a file with two interfaces, as a capture on two NICs makes.
    """
    dumpcap = need_capture()
    marker_port = free_port(socket.SOCK_DGRAM)
    argv = [dumpcap, "-q", "-i", "lo", "-f", f"tcp port {port} or udp port {marker_port}", "-w", str(out),
            "-a", "duration:120"]
    if also is not None:
        argv[6:6] = ["-i", also, "-f", f"udp port {marker_port}"]  # after lo and its own filter
    if pcap:
        argv.append("-P")
    with started(argv, out.with_suffix(".dumpcap.log")) as proc, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as marker:

        def marked(size: int) -> bool:
            if proc.poll() is not None:
                raise RuntimeError(out.with_suffix(".dumpcap.log").read_text())
            marker.sendto(b"rmxdiag-test-marker", ("127.0.0.1", marker_port))
            return out.exists() and out.stat().st_size > size

        def grows(what: str) -> None:
            size = out.stat().st_size
            eventually(what, lambda: marked(size), period=0.1)

        eventually("dumpcap's file header", lambda: marked(0))
        grows("dumpcap's capture loop to write a packet")
        yield out
        grows("the last packets to reach the file")
        kill_group(proc)


def openssl_server(workdir: Path, port: int, *args: str) -> contextlib.AbstractContextManager[
        subprocess.Popen[bytes]]:
    """``openssl s_server`` on 127.0.0.1:port with extra arguments (caller waits for the port)."""
    need("openssl")
    return started(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-naccept", "5", "-quiet", *args],
                   workdir / f"s_server-{port}.log")


def openssl_client(port: int, *args: str, timeout: float = 10.0) -> subprocess.CompletedProcess[bytes]:
    """One ``openssl s_client`` connection that sends a line and ends."""
    return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-quiet", *args],
                          input=b"OPTIONS\n", capture_output=True, timeout=timeout, check=False,
                          start_new_session=True)


@contextlib.contextmanager
def tcp_server(handler: Callable[[socket.socket], None], port: int = 0, mss: int | None = None) -> Iterator[int]:
    """A one-thread TCP listener on loopback calling ``handler(conn)`` for each connection."""
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if mss is not None:  # small segments force tshark to reassemble TLS records
        lsock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(8)
    lsock.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = lsock.accept()
            except (TimeoutError, OSError):
                continue
            with contextlib.suppress(OSError):
                handler(conn)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield int(lsock.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        lsock.close()


def python_client(port: int, ctx: ssl.SSLContext, payload: bytes | None = None,
                  timeout: float = 3.0) -> bytes:
    """Connect, handshake, optionally send ``payload`` and read one answer; errors are swallowed."""
    data = b""
    with contextlib.suppress(OSError, ssl.SSLError), socket.create_connection(("127.0.0.1", port), timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname="pool.lab.example") as tls:
            if payload is not None:
                tls.sendall(payload)
                data = tls.recv(65536)
    return data


def no_orphans(pid: int | None = None) -> list[int]:
    """Descendants of this test process that are tshark/tcpdump/dumpcap or the worker."""
    from tests.support.peers import children_of

    left = []
    for child in children_of(pid or os.getpid()):
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
            if any(word in cmd for word in (b"tshark", b"tcpdump", b"dumpcap", b"capture_tshark", b"sleep")):
                left.append(child)
    return left


@pytest.fixture
def no_orphans_after() -> Iterator[None]:
    """Then no tshark/tcpdump/dumpcap/worker process outlives the test (polled: reaping takes a moment)."""
    yield
    eventually("every tshark/tcpdump/worker process of the test to end", lambda: no_orphans() == [], 5)


__all__ = ["no_orphans", "no_orphans_after", "openssl_client", "openssl_server", "python_client", "recording",
           "tcp_server", "wait_for_port"]
