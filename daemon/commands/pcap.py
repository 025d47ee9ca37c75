"""`rmxdiag pcap`: where each RMX <-> Front End TLS handshake died, read from captures."""

from __future__ import annotations

import argparse
import ipaddress
import time
from pathlib import Path

from daemon.commands._common import add_firmware, add_format, emit, single_report
from daemon.commands._progress import progress
from daemon.diagnosis.catalogue import Firmware
from probes.model import InputError


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"{text} is not a TCP port")
    return value


def _ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text} is not an IP address") from None


def _positive(text: str) -> float:
    value = float(text)
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"{text} is not a duration in seconds (0 < S <= 86400)")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `rmxdiag pcap`."""
    parser.add_argument("files", nargs="*", type=Path, metavar="FILE|DIR",
                        help="capture files in any format tshark reads (pcap, pcapng, gzip-compressed, Network "
                             "Monitor .cap, ...), or directories of rotated (closed) captures")
    parser.add_argument("--port", type=_port, default=5061, help="SIP TLS port (default 5061)")
    parser.add_argument("--rmx-ip", type=_ip, help="the RMX signaling IP (default: the client of each connection)")
    parser.add_argument("--keylog", type=Path, help="TLS key log (NSS format) to decrypt the SIP inside")
    parser.add_argument("--interface", help="capture live on this interface instead of reading files")
    parser.add_argument("--duration", type=_positive, default=30.0, help="live capture length, seconds (default 30)")
    parser.add_argument("--max-packets", type=int, default=200_000, help="live capture packet cap")
    parser.add_argument("--max-bytes", type=int, default=200 * 1024 * 1024, help="live capture size cap")
    parser.add_argument("--timeout", type=_positive, default=600.0,
                        help="overall deadline in seconds; results up to it are reported (default 600)")
    add_firmware(parser)
    add_format(parser)


def execute(args: argparse.Namespace) -> int:
    """Inspect the captures; print the verdict, the hints, then each connection; exit by the hints.

    Nothing on the port (a wrong --port, a live capture that saw no traffic) is no verdict: exit 3
    with what the capture held instead.
    """
    from probes.capture import probe as capture

    if bool(args.files) == bool(args.interface):
        raise InputError("rmxdiag pcap: give capture files/directories or --interface, not both or neither")
    deadline = time.monotonic() + args.timeout
    if args.interface:
        def left(seconds: float) -> str:
            if seconds < args.duration:
                return f"rmxdiag: capturing on {args.interface} port {args.port}: {args.duration - seconds:.0f}s left"
            return f"rmxdiag: reading the capture from {args.interface}..."

        with progress(left, after=0.0):
            outcome = capture.inspect_live(args.interface, args.duration, port=args.port,
                                           max_packets=args.max_packets, max_bytes=args.max_bytes, rmx_ip=args.rmx_ip,
                                           keylog=args.keylog, deadline=deadline + args.duration)
    else:
        outcome = capture.inspect(args.files, args.port, rmx_ip=args.rmx_ip, keylog=args.keylog, deadline=deadline)
    name = args.interface or (str(args.files[0]) if len(args.files) == 1 else f"{len(args.files)} captures")
    return emit(single_report(name, [outcome], Firmware(args.firmware)), args.format, verbose=args.verbose)
