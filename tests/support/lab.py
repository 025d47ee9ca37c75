"""Helpers for the lab tests: a generated Front End/RMX PKI on disk and a real ssl client."""

from __future__ import annotations

import os
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from daemon.lab.scenarios import SCENARIOS, Material, make_pki, write_material
from daemon.lab.wire import set_tls_window

OPTIONS = (b"OPTIONS sip:pool.lab.example;transport=tls SIP/2.0\r\n"
           b"Via: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bKtest\r\n"
           b"From: <sip:rmx.lab.example>;tag=t1\r\nTo: <sip:pool.lab.example>\r\n"
           b"Call-ID: test-1\r\nCSeq: 7 OPTIONS\r\nContent-Length: 0\r\n\r\n")


@dataclass
class LabFiles:
    """Material of the healthy scenario plus a certificate from a CA the Front End does not trust."""

    good: Material
    foreign: Material
    expired: Material
    wrong_cn: Material
    server_eku_only: Material


def make_files(base: Path) -> LabFiles:
    """Write the lab material of five scenarios under ``base`` (one shared PKI)."""
    shared = make_pki()
    return LabFiles(write_material(SCENARIOS["healthy"], base / "healthy", shared),
                    write_material(SCENARIOS["untrusted-ca"], base / "foreign", shared),
                    write_material(SCENARIOS["expired"], base / "expired", shared),
                    write_material(SCENARIOS["name-mismatch"], base / "wrong-cn", shared),
                    write_material(SCENARIOS["missing-client-eku"], base / "eku", shared))


def client_context(m: Material, tls_max: str = "1.2", tls_min: str = "1.2") -> ssl.SSLContext:
    """What the RMX would use: its certificate, the enterprise CAs, a TLS window."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(m.ca_bundle)
    ctx.load_cert_chain(m.rmx_cert, m.rmx_key)
    set_tls_window(ctx, tls_min, tls_max)
    return ctx


def options_exchange(address: tuple[str, int], ctx: ssl.SSLContext, timeout: float = 5.0) -> bytes:
    """TLS handshake + one OPTIONS; the whole answer (headers + Content-Length body)."""
    with socket.create_connection(address, timeout=timeout) as raw, \
            ctx.wrap_socket(raw, server_hostname="pool.lab.example", suppress_ragged_eofs=False) as tls:
        tls.sendall(OPTIONS)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = tls.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


def headers(response: bytes) -> dict[str, str]:
    """Header name (lower case) -> value of a SIP response."""
    lines = response.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}


def open_fds() -> int:
    """How many file descriptors this process holds."""
    return len(os.listdir("/proc/self/fd"))


def lab_threads() -> list[threading.Thread]:
    """Threads the lab registrar started and that are still alive."""
    return [t for t in threading.enumerate() if t.name.startswith("lab-registrar")]
