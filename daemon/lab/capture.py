"""The lab capture: one simulated RMX registration attempt, written as a pcap file.

Capturing on ``lo`` needs root or CAP_NET_RAW, and the lab must need neither. The lab registrar
already sees every byte of each connection in wire order, so the lab replays that transcript
into a classic libpcap file (Ethernet/IPv4/TCP around the real TLS bytes; timestamps are 100 µs
apart, not measured). tshark dissects it like any capture; the simulated RMX also writes an NSS
key log so the SIP inside can be decoded. The Front End side is written as port 5061 (the port a
field capture shows) instead of the lab's ephemeral port, so ``rmxdiag pcap FILE`` reads it
with its defaults.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import struct
import time
from pathlib import Path

from daemon.lab.files import open_new
from daemon.lab.registrar import LabRegistrar, Transcript
from daemon.lab.scenarios import POOL_FQDN, RMX_FQDN, Material, Scenario
from daemon.lab.wire import set_tls_window

log = logging.getLogger("rmxdiag.lab.capture")

_MSS = 1460
_SYN, _FIN, _RST, _PSH, _ACK = 0x02, 0x01, 0x04, 0x08, 0x10


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = int(sum(struct.unpack(f"!{len(data) // 2}H", data)))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class _PcapWriter:
    """Classic libpcap (magic a1b2c3d4, link type 1 = Ethernet)."""

    def __init__(self, path: Path, start: float) -> None:
        self.out = os.fdopen(open_new(path), "wb")
        self.out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        self.clock = start
        self.ip_id = 1

    def segment(self, src: tuple[str, int], dst: tuple[str, int], seq: int, ack: int, *, flags: int,
                payload: bytes = b"") -> None:
        tcp = struct.pack("!HHIIBBHHH", src[1], dst[1], seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags,
                          65535, 0, 0)
        s_ip, d_ip = socket.inet_aton(src[0]), socket.inet_aton(dst[0])
        pseudo = s_ip + d_ip + struct.pack("!BBH", 0, 6, len(tcp) + len(payload))
        tcp = tcp[:16] + struct.pack("!H", _checksum(pseudo + tcp + payload)) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), self.ip_id, 0x4000, 64, 6, 0,
                         s_ip, d_ip)
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
        self.ip_id += 1
        frame = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + b"\x08\x00" + ip + tcp + payload
        self.clock += 0.0001
        seconds = int(self.clock)
        self.out.write(struct.pack("<IIII", seconds, int((self.clock - seconds) * 1e6), len(frame), len(frame)))
        self.out.write(frame)

    def close(self) -> None:
        self.out.close()


CAPTURE_PORT = 5061


def write_pcap(path: Path, transcript: Transcript, server_port: int | None = CAPTURE_PORT) -> Path:
    """Replay one connection transcript (handshake, data in wire order, its end) as a pcap."""
    client = transcript.client
    server = (transcript.server[0], server_port or transcript.server[1])
    seq = {"c2s": 1000, "s2c": 5000}
    ends = {"c2s": (client, server), "s2c": (server, client)}
    pcap = _PcapWriter(path, transcript.started)
    try:
        pcap.segment(client, server, seq["c2s"], 0, flags=_SYN)
        if transcript.end == "refused":  # the kernel's answer to a SYN on a closed port
            pcap.segment(server, client, 0, seq["c2s"] + 1, flags=_RST | _ACK)
            return path
        pcap.segment(server, client, seq["s2c"], seq["c2s"] + 1, flags=_SYN | _ACK)
        seq = {"c2s": seq["c2s"] + 1, "s2c": seq["s2c"] + 1}
        pcap.segment(client, server, seq["c2s"], seq["s2c"], flags=_ACK)
        for direction, data in transcript.events:
            other = "s2c" if direction == "c2s" else "c2s"
            for offset in range(0, len(data), _MSS):
                chunk = data[offset:offset + _MSS]
                pcap.segment(*ends[direction], seq[direction], seq[other], flags=_PSH | _ACK, payload=chunk)
                seq[direction] += len(chunk)
        if transcript.end == "rst":
            pcap.segment(server, client, seq["s2c"], seq["c2s"], flags=_RST | _ACK)
        else:
            first, second = ("c2s", "s2c") if transcript.end == "peer_fin" else ("s2c", "c2s")
            pcap.segment(*ends[first], seq[first], seq[second], flags=_FIN | _ACK)
            pcap.segment(*ends[second], seq[second], seq[first] + 1, flags=_FIN | _ACK)
            pcap.segment(*ends[first], seq[first] + 1, seq[second] + 1, flags=_ACK)
    finally:
        pcap.close()
    return path


def _rmx_context(material: Material, scenario: Scenario, keylog: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(material.ca_bundle)
    set_tls_window(ctx, *scenario.rmx_tls)
    # The key log decrypts the lab's SIP: readable by the owner only, like the keys beside it;
    # created fresh (OpenSSL appends, and would follow a symlink left at that name), and OpenSSL
    # opens the file created here, not the name again.
    fd = open_new(keylog, private=True)
    try:
        ctx.keylog_filename = f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)
    try:
        ctx.load_cert_chain(material.rmx_cert, material.rmx_key)
    except (ssl.SSLError, OSError, ValueError):
        # The RMX could not load its certificate files (a CSR, say): it connects without one.
        log.info("simulated RMX: certificate files unusable, connecting without a client certificate")
    return ctx


def _options() -> bytes:
    return (f"OPTIONS sip:{POOL_FQDN};transport=tls SIP/2.0\r\n"
            "Via: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bKlab1\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:{RMX_FQDN}>;tag=lab1\r\nTo: <sip:{POOL_FQDN}>\r\n"
            "Call-ID: rmxdiag-lab-1\r\nCSeq: 1 OPTIONS\r\n"
            "User-Agent: Polycom RMX (rmxdiag lab simulation)\r\nContent-Length: 0\r\n\r\n"
            ).encode()


def record_registration(fe: LabRegistrar, material: Material, scenario: Scenario,
                        workdir: Path, timeout: float = 3.0) -> tuple[Path | None, Path | None]:
    """Let a simulated RMX try once (TLS + OPTIONS); return (pcap, key log), or Nones if nothing was seen."""
    keylog = workdir / "rmx-tls-keys.log"
    deadline = time.monotonic() + timeout
    ctx = _rmx_context(material, scenario, keylog)
    with socket.create_connection(fe.address, timeout=timeout) as raw:
        local_port = int(raw.getsockname()[1])
        try:
            with ctx.wrap_socket(raw, server_hostname=POOL_FQDN) as tls:
                tls.sendall(_options())
                tls.settimeout(max(0.1, deadline - time.monotonic()))
                answer = tls.recv(65536)
                log.info("simulated RMX: %s", answer.split(b"\r\n", 1)[0].decode("ascii", "replace") or "no answer")
        except (ssl.SSLError, OSError) as exc:
            # The failures are the point of most scenarios; the capture shows them.
            log.info("simulated RMX: registration attempt failed: %s", type(exc).__name__)
    transcript = None
    while transcript is None and time.monotonic() < deadline + 1.0:
        # The registrar files a transcript when its connection thread ends.
        transcript = next((t for t in list(fe.transcripts) if t.client[1] == local_port), None)
        time.sleep(0.02)
    if transcript is None:
        log.warning("lab capture: the registrar recorded no connection; no capture written")
        return None, None
    return write_pcap(workdir / "rmx-frontend.pcap", transcript), keylog if keylog.exists() else None


def record_refused(port: int, workdir: Path, timeout: float = 3.0) -> Path | None:
    """Let the simulated RMX try a Front End that is down; write the SYN / RST pair it saw, if refused."""
    client = socket.socket()
    try:
        client.settimeout(timeout)
        client.bind(("127.0.0.1", 0))
        local = client.getsockname()
        client.connect(("127.0.0.1", port))
    except ConnectionRefusedError:
        transcript = Transcript((str(local[0]), int(local[1])), ("127.0.0.1", port), end="refused")
        return write_pcap(workdir / "rmx-frontend.pcap", transcript)
    except OSError as exc:
        log.info("simulated RMX: connection to the closed port failed otherwise (%s): no capture", exc)
        return None
    finally:
        client.close()
    log.warning("lab capture: something answers on port %d, which should be closed; no capture", port)
    return None
