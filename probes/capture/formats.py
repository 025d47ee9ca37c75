"""Capture file formats: what a file is, and whether the BPF prefilter may read it unchanged.

tshark reads every format its wiretap library knows (pcap, pcapng, Microsoft Network Monitor,
snoop, ... and gzip-compressed files of them). The prefilter (``tcpdump -r F -w - 'tcp port P'``,
BPF in C) is only a speed-up: it reads plain pcap and pcapng through libpcap, which (measured with
libpcap 1.10 / tcpdump 4.99) stops at the second link type of a multi-interface pcapng ("an
interface has a type 113 different from the type of the first interface"), rewrites pcapng as pcap
(dropping Decryption Secrets Blocks) and reads neither compressed nor Network Monitor files. So
:func:`plan` sends a file through the prefilter only when libpcap reads it exactly as tshark
would; everything else is read by tshark directly (slower, same result).
"""

from __future__ import annotations

import contextlib
import enum
import gzip
import mmap
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

PCAP_MAGICS = frozenset(bytes.fromhex(m) for m in ("a1b2c3d4", "d4c3b2a1", "a1b23c4d", "4d3cb2a1"))
# Kuznetzov's "modified pcap": tshark reads it, libpcap does not (the prefilter preflight says so).
_MODIFIED_PCAP = frozenset(bytes.fromhex(m) for m in ("a1b2cd34", "34cdb2a1"))
PCAPNG_MAGIC = bytes.fromhex("0a0d0d0a")
_GZIP_MAGIC = b"\x1f\x8b"
_NETMON_MAGICS = (b"RTSS", b"GMBU")  # Network Monitor 1.x / 2.x (.cap from Windows)
_SNOOP_MAGIC = b"snoop\x00\x00\x00"
_BYTE_ORDER = {bytes.fromhex("4d3c2b1a"): "<", bytes.fromhex("1a2b3c4d"): ">"}  # as stored: little / big endian
_IDB, _DSB = 1, 0x0000000A  # pcapng Interface Description Block, Decryption Secrets Block
_PREFLIGHT_TIMEOUT = 20.0


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class Kind(enum.StrEnum):
    """What the first bytes of a file say it is."""

    PCAP = "pcap"
    PCAPNG = "pcapng"
    GZIP = "gzip"  # compressed: tshark looks inside
    NETMON = "netmon"
    SNOOP = "snoop"
    OTHER = "other"  # possibly another format tshark reads: ask it (captype)


def kind_of(head: bytes) -> Kind:
    """The kind of capture ``head`` (the first bytes of a file) starts."""
    if head[:4] in PCAP_MAGICS or head[:4] in _MODIFIED_PCAP:
        return Kind.PCAP
    if head[:4] == PCAPNG_MAGIC:
        return Kind.PCAPNG
    if head[:2] == _GZIP_MAGIC:
        return Kind.GZIP
    if head[:4] in _NETMON_MAGICS:
        return Kind.NETMON
    if head[:8] == _SNOOP_MAGIC:
        return Kind.SNOOP
    return Kind.OTHER


def inner_head(path: Path, size: int = 32) -> bytes:
    """The first ``size`` bytes of a gzip-compressed file once decompressed (b"" when it is not gzip)."""
    with contextlib.suppress(OSError, EOFError, gzip.BadGzipFile), gzip.open(path, "rb") as f:
        return f.read(size)
    return b""


def is_capture_head(head: bytes, inner: bytes = b"") -> bool:
    """True when the magic says capture: a known format, or gzip around one (``inner``: its decompressed head)."""
    kind = kind_of(head)
    if kind is Kind.GZIP:
        return kind_of(inner) not in (Kind.GZIP, Kind.OTHER)
    return kind is not Kind.OTHER


@dataclass(frozen=True)
class PcapngLayout:
    """What a pcapng file holds besides packets: sections, interfaces' link types, embedded secrets."""

    sections: int = 0
    link_types: tuple[int, ...] = ()
    secrets: int = 0  # Decryption Secrets Blocks
    complete: bool = True  # False: the walk stopped at a block it could not read (damage, cut short)


def pcapng_layout(path: Path) -> PcapngLayout:
    """Walk every block header of a pcapng file (or a gzip-compressed one); never raises."""
    try:
        with path.open("rb") as raw:
            if raw.read(2) == _GZIP_MAGIC:
                with gzip.open(path, "rb") as f:
                    return _walk_stream(f)
            raw.seek(0)
            # mmap: the walk touches one header per block; measured several times faster than
            # read+seek per block on captures of hundreds of thousands of packets.
            with mmap.mmap(raw.fileno(), 0, access=mmap.ACCESS_READ) as view:
                return _walk_buffer(view)
    except (OSError, ValueError, EOFError, gzip.BadGzipFile):
        return PcapngLayout(complete=False)


def _block_header(data: bytes, order: str) -> tuple[int, int]:
    kind, length = struct.unpack(order + "II", data)
    return kind, length


def _walk_buffer(view: mmap.mmap) -> PcapngLayout:
    pos, size, order = 0, len(view), "<"
    sections, secrets, links = 0, 0, list[int]()
    while pos + 12 <= size:
        if view[pos:pos + 4] == PCAPNG_MAGIC:
            order = _BYTE_ORDER.get(view[pos + 8:pos + 12], "")
            if not order:
                return PcapngLayout(sections, tuple(links), secrets, complete=False)
            sections += 1
        kind, length = _block_header(view[pos:pos + 8], order)
        if length < 12 or length % 4 or pos + length > size:
            return PcapngLayout(sections, tuple(links), secrets, complete=False)
        if kind == _IDB and length >= 16:
            links.append(struct.unpack(order + "H", view[pos + 8:pos + 10])[0])
        elif kind == _DSB:
            secrets += 1
        pos += length
    return PcapngLayout(sections, tuple(links), secrets, complete=pos == size)


def _walk_stream(f: _Readable) -> PcapngLayout:
    sections, secrets, links, order = 0, 0, list[int](), "<"
    while True:
        header = f.read(12)
        if not header:
            return PcapngLayout(sections, tuple(links), secrets)
        if len(header) < 12:
            return PcapngLayout(sections, tuple(links), secrets, complete=False)
        if header[:4] == PCAPNG_MAGIC:
            order = _BYTE_ORDER.get(header[8:12], "")
            if not order:
                return PcapngLayout(sections, tuple(links), secrets, complete=False)
            sections += 1
        kind, length = _block_header(header[:8], order)
        if length < 12 or length % 4:
            return PcapngLayout(sections, tuple(links), secrets, complete=False)
        if kind == _IDB:
            links.append(struct.unpack(order + "H", header[8:10])[0])
        elif kind == _DSB:
            secrets += 1
        rest = f.read(length - 12)
        if len(rest) < length - 12:
            return PcapngLayout(sections, tuple(links), secrets, complete=False)


@dataclass(frozen=True)
class Plan:
    """How the worker reads one file: through the prefilter or not, and whether it holds TLS secrets."""

    prefilter: bool
    secrets: bool
    reason: str  # why tshark reads the file directly ("" when prefiltered)


def plan(path: Path, port: int, tcpdump: str | None) -> Plan:
    """Decide, before reading a packet, whether the prefilter reads ``path`` exactly as tshark would."""
    try:
        with path.open("rb") as f:
            head = f.read(32)
    except OSError as exc:
        return Plan(False, False, f"cannot read: {exc.strerror}")
    kind = kind_of(head)
    secrets = False
    if kind is Kind.GZIP:
        inner = inner_head(path)
        if kind_of(inner) is Kind.PCAPNG:
            secrets = pcapng_layout(path).secrets > 0
        return Plan(False, secrets, "compressed capture")
    if kind is Kind.PCAPNG:
        layout = pcapng_layout(path)
        secrets = layout.secrets > 0
        if layout.sections > 1:
            return Plan(False, secrets, "several pcapng sections")
        if len(layout.link_types) > 1:
            return Plan(False, secrets, "several capture interfaces")
        if secrets:
            return Plan(False, secrets, "embedded TLS secrets")
    elif kind is not Kind.PCAP:
        return Plan(False, False, f"{kind} capture")
    if tcpdump is None:
        return Plan(False, secrets, "tcpdump is not installed")
    problem = _preflight(path, port, tcpdump)
    if problem:
        return Plan(False, secrets, f"tcpdump cannot read it ({problem})")
    return Plan(True, secrets, "")


def _preflight(path: Path, port: int, tcpdump: str) -> str:
    """Why libpcap cannot open ``path`` or compile the port filter for its link type ('' when it can).

    ``tcpdump -d`` opens the file, compiles the filter for its link type and stops before the
    first packet, so a refused format or link type shows here and not half-way through a run.
    """
    try:
        done = subprocess.run([tcpdump, "-r", str(path), "-d", f"tcp port {port}"],  # noqa: S603
                              capture_output=True, timeout=_PREFLIGHT_TIMEOUT, check=False,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return type(exc).__name__
    if done.returncode == 0:
        return ""
    lines = [ln.strip() for ln in done.stderr.decode("utf-8", "replace").splitlines()
             if ln.strip() and not ln.startswith("reading from file")]
    return (lines[-1] if lines else f"exit {done.returncode}")[:200]
