"""Bench `rmxdiag pcap` against plain tshark field extraction on the same generated capture.

The capture is made here: real MTLS handshakes (healthy, no client certificate, untrusted client
certificate) recorded with dumpcap on loopback, replicated with rewritten client addresses into
thousands of distinct connections, interleaved with bulk noise on another port. Goal (issue 5):
the whole `rmxdiag pcap` run takes at most 0.5x the plain `tshark -r F -Y FILTER -T fields` run,
and the peak memory of each pipeline (all its processes together) stays below 400 MB.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.bench.common import Row, print_table

COPIES = 100  # replicated copies of the 30 recorded connections: 3,000 connections
NOISE_PER_COPY = 7000  # bulk packets on the noise port after each copy (~700k in all)
NOISE_PORT = 9000
RUNS = 3
_LINK_HEADER = {1: 14, 113: 16, 276: 20, 0: 4, 101: 0}


def _rss_tree_mib(pid: int) -> float:
    """Sum of VmRSS over ``pid`` and all its descendants, MiB."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    tree, frontier = {pid}, [pid]
    while frontier:
        cur = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == cur]
        tree.update(kids)
        frontier.extend(kids)
    total = 0
    for p in tree:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def _timed(argv: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak tree RSS MiB, exit code) of one run, output discarded."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, _rss_tree_mib(proc.pid))
        time.sleep(0.05)
    return time.perf_counter() - start, peak, proc.returncode


def _pki(directory: Path) -> dict[str, Path]:
    from daemon.lab import pki

    root = pki.root_ca()
    issuing = pki.intermediate_ca(root)
    other = pki.root_ca("Unrelated Root CA")
    files = {f"rmx_{k}": v for k, v in pki.issue(pki.name("rmx.lab.example"), issuing).write(directory, "rmx").items()}
    files |= {f"fe_{k}": v for k, v in pki.issue(pki.name("fe01.lab.example"), issuing).write(directory, "fe").items()}
    files |= {f"bad_{k}": v for k, v in pki.issue(pki.name("rmx.lab.example"), other).write(directory, "bad").items()}
    files["trust"] = directory / "trust.pem"
    files["trust"].write_bytes(pki.pem(root.cert) + pki.pem(issuing.cert))
    return files


def _record(directory: Path, port: int) -> Path:
    """Record 30 real MTLS handshakes (10 healthy, 10 without cert, 10 untrusted) with dumpcap -P."""
    files = _pki(directory)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.maximum_version = ssl.TLSVersion.TLSv1_2
    server.load_cert_chain(files["fe_cert"], files["fe_key"])
    server.load_verify_locations(files["trust"])
    server.verify_mode = ssl.CERT_REQUIRED
    lsock = socket.create_server(("127.0.0.1", port))
    lsock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = lsock.accept()
            except OSError:
                continue
            conn.settimeout(3)
            with contextlib.suppress(OSError), server.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(tls.recv(100))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    out = directory / "seed.pcap"
    dumpcap = subprocess.Popen(["dumpcap", "-q", "-P", "-i", "lo", "-f", f"tcp port {port}", "-w", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while not (out.exists() and out.stat().st_size > 0):
            time.sleep(0.05)
        time.sleep(0.3)
        for kind in ("rmx", None, "bad") * 10:
            client = ssl.create_default_context(cafile=str(files["trust"]))
            client.check_hostname = False
            client.maximum_version = ssl.TLSVersion.TLSv1_2
            if kind:
                client.load_cert_chain(files[f"{kind}_cert"], files[f"{kind}_key"])
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 3) as raw, \
                    client.wrap_socket(raw) as tls:
                tls.sendall(b"x")
                tls.recv(10)
        time.sleep(0.5)
    finally:
        os.killpg(dumpcap.pid, 15)
        dumpcap.wait(10)
        stop.set()
        thread.join(5)
        lsock.close()
    return out


def _packets(seed: Path) -> tuple[bytes, int, list[tuple[float, bytes]]]:
    data = seed.read_bytes()
    header, linktype = data[:24], struct.unpack("<I", data[20:24])[0]
    pos, out = 24, []
    while pos + 16 <= len(data):
        sec, usec, incl, _ = struct.unpack("<IIII", data[pos:pos + 16])
        out.append((sec + usec / 1e6, data[pos + 16:pos + 16 + incl]))
        pos += 16 + incl
    return header, _LINK_HEADER[linktype], out


def _noise(link: bytes, n: int, seq: int) -> bytes:
    payload = b"N" * 600
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, 0x4000, 64, 6, 0,
                     socket.inet_aton("192.0.2.1"), socket.inet_aton("192.0.2.2"))
    tcp = struct.pack("!HHIIBBHHH", 40000 + n % 8, NOISE_PORT, seq, 1, 0x50, 0x18, 65535, 0, 0)
    return link + ip + tcp + payload


def generate(directory: Path, port: int) -> tuple[Path, int, int]:
    """Write the bench capture; return (path, packets, packets on the SIP TLS port)."""
    header, offset, seed = _packets(_record(directory, port))
    path = directory / "bench.pcap"
    total = interesting = 0
    seq = 1
    base = seed[0][0]
    with path.open("wb") as f:
        f.write(header)
        for copy in range(COPIES):
            client_ip = socket.inet_aton(f"10.{copy >> 8 & 255}.{copy & 255}.5")
            t0 = 1_700_000_000 + copy * 0.05
            for ts, frame in seed:
                ip = offset
                sport = struct.unpack("!H", frame[ip + 20:ip + 22])[0]
                # the RMX (client) side gets a distinct address per copy: a distinct connection
                where = ip + 16 if sport == port else ip + 12
                copied = frame[:where] + client_ip + frame[where + 4:]
                stamp = t0 + (ts - base) / 100
                f.write(struct.pack("<IIII", int(stamp), int(stamp % 1 * 1e6), len(copied), len(copied)) + copied)
                total += 1
                interesting += 1
            link = seed[0][1][:offset]
            for n in range(NOISE_PER_COPY):
                frame = _noise(link, n, seq)
                seq += 600
                stamp = t0 + 0.04 + n * 1e-5
                f.write(struct.pack("<IIII", int(stamp), int(stamp % 1 * 1e6), len(frame), len(frame)) + frame)
                total += 1
    return path, total, interesting


def main() -> int:
    """Generate the capture, time both pipelines in alternation, print the table."""
    for tool in ("tshark", "dumpcap", "tcpdump"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            print(f"bench pcap: {tool} is not installed")
            return 1
    with tempfile.TemporaryDirectory(prefix="rmxdiag-bench-pcap-") as tmp:
        port = 45061
        started = time.perf_counter()
        path, total, interesting = generate(Path(tmp), port)
        gen = time.perf_counter() - started
        print(f"generated {path.stat().st_size / 1e6:.0f} MB, {total} packets ({interesting} on tcp/{port}) "
              f"in {gen:.1f} s")
        flt = (f"tcp.port == {port} && (tls.handshake || tls.alert_message || tcp.flags.syn == 1 || "
               "tcp.flags.reset == 1 || tcp.flags.fin == 1 || tcp.analysis.retransmission)")
        plain = ["tshark", "-n", "-r", str(path), "-Y", flt, "-T", "fields", "-e", "frame.time_epoch",
                 "-e", "ip.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "tcp.dstport", "-e", "tcp.flags",
                 "-e", "tls.handshake.type", "-e", "tls.alert_message.level", "-e", "tls.alert_message.desc",
                 "-e", "tls.handshake.version", "-e", "tls.handshake.ciphersuite", "-e", "tls.handshake.certificate"]
        ours = [sys.executable, "-m", "daemon.cli", "pcap", str(path), "--port", str(port), "--format", "json"]
        samples: dict[str, list[tuple[float, float, int]]] = {"plain": [], "ours": []}
        for _ in range(RUNS):
            for key, argv in (("plain", plain), ("ours", ours)):
                samples[key].append(_timed(argv))
        wall = {k: statistics.median(s[0] for s in v) for k, v in samples.items()}
        peak = {k: max(s[1] for s in v) for k, v in samples.items()}
        codes = {k: {s[2] for s in v} for k, v in samples.items()}
        ratio = wall["ours"] / wall["plain"]
        rows = [
            Row("plain tshark -Y FILTER -T fields (wall)", wall["plain"], "s"),
            Row("rmxdiag pcap (wall, whole CLI run)", wall["ours"], "s", f"{wall['plain']:.2f} s plain", ratio,
                "<= 0.5x", ratio <= 0.5),
            Row("peak RSS plain tshark (baseline, no goal)", peak["plain"], "MB"),
            Row("peak RSS rmxdiag pcap (all processes)", peak["ours"], "MB", f"{peak['plain']:.0f} MB plain",
                peak["ours"] / peak["plain"], "< 400 MB", peak["ours"] < 400),
        ]
        print(f"exit codes: plain {sorted(codes['plain'])}, rmxdiag {sorted(codes['ours'])} (2 = critical hints)")
        return print_table(f"bench pcap: {total} packets, {interesting} on the SIP TLS port, {RUNS} runs each", rows)


if __name__ == "__main__":
    sys.exit(main())
