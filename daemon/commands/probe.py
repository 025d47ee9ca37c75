"""`rmxdiag probe HOST[:PORT]`: the RMX's MTLS handshake and SIP OPTIONS against one registrar."""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import time
from pathlib import Path

from daemon.commands._common import add_firmware, add_format, emit, single_report
from probes.fileio import open_regular
from probes.model import InputError
from probes.target import TLS_VERSIONS, Registrar, SecretFile, tls_version


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The CLI contract of ``probe`` (see the README's CLI reference)."""
    parser.add_argument("registrar", metavar="HOST[:PORT]",
                        help="Front End pool FQDN or IP (port 5061 by default); with --srv, a SIP domain")
    parser.add_argument("--srv", action="store_true",
                        help="HOST is a SIP domain: probe every _sipinternaltls._tcp SRV member")
    parser.add_argument("--sni", metavar="NAME", help="name sent as SNI and verified in the FE certificate")
    parser.add_argument("--pfx", type=Path, metavar="F", help="RMX certificate as PKCS#12")
    parser.add_argument("--password-file", type=Path, metavar="F", help="file whose first line is the password")
    parser.add_argument("--cert", type=Path, metavar="F", help="RMX certificate, PEM")
    parser.add_argument("--key", type=Path, metavar="F", help="RMX private key, PEM")
    parser.add_argument("--chain", type=Path, metavar="F", help="RMX intermediate/root CAs, PEM")
    parser.add_argument("--rmx-trust", "--ca-bundle", dest="ca_bundle", type=Path, metavar="F",
                        help="the RMX's trust: the CAs in its Trusted Certificates (PEM); the Front End's chain "
                        "and name are verified against them. Without it the chain is recorded, not checked "
                        "(--ca-bundle: the old name)")
    parser.add_argument("--sip-options", action=argparse.BooleanOptionalAction, default=True,
                        help="send a SIP OPTIONS after the handshake (default: on)")
    parser.add_argument("--tls-min", metavar="V", default="1.2",
                        help="lowest TLS version offered (1.0-1.3, also TLSv1.2, TLS1.2, tls12); 1.0/1.1 enable "
                             "legacy crypto (SHA-1, SECLEVEL 0)")
    parser.add_argument("--tls-max", metavar="V", default="1.3", help="highest TLS version offered (default 1.3)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S",
                        help="one deadline for the whole probe, seconds (default 10)")
    parser.add_argument("--keylog", type=Path, metavar="F",
                        help="write the TLS secrets as an NSS key log (for tshark) to F: "
                        "created with mode 0600; an existing F is appended to only when it is your own "
                        "mode-0600 key log (never through a symlink)")
    add_firmware(parser)
    add_format(parser)


def _split(value: str, srv: bool) -> tuple[str, int]:
    host, port = value, 5061
    if value.startswith("["):  # [v6] or [v6]:port, nothing else
        host, closed, rest = value[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise InputError(f"HOST[:PORT]: {value!r} is not [IPv6] or [IPv6]:PORT")
        if rest:
            port = _port(rest[1:], value)
    elif value.count(":") == 1:
        host, raw = value.split(":")
        port = _port(raw, value)
    elif ":" in value and not _is_ip(value):  # a bare IPv6 address has colons; anything else is a typo
        raise InputError(f"HOST[:PORT]: {value!r} is not HOST, HOST:PORT, an IPv6 address or [IPv6]:PORT")
    if not host or not (_is_ip(host) or _HOST_NAME.fullmatch(host)):
        raise InputError(f"HOST[:PORT]: {value!r} is not a host name or address")
    if srv and ":" in host:
        raise InputError(f"HOST[:PORT]: {value!r} with --srv must be a SIP domain")
    return host, port


_HOST_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252}[A-Za-z0-9_.])?")  # DNS labels (and a final dot)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _port(raw: str, value: str) -> int:
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise InputError(f"HOST[:PORT]: {value!r} has an invalid port")
    return int(raw)


def _version(value: str, option: str) -> str:
    try:
        return tls_version(value)
    except ValueError as exc:
        raise InputError(f"{option}: {exc}") from None


def _check_file(path: Path | None, option: str) -> None:
    """Missing, a directory, a FIFO or a device: refused before connecting, in the one rule's words."""
    if path is not None:
        os.close(open_regular(path, f"{option} file"))


def execute(args: argparse.Namespace) -> int:
    """Run the probe, print the report, return the Nagios exit code."""
    from daemon.diagnosis.catalogue import Firmware
    from probes.mtls import probe as mtls

    if args.pfx and (args.cert or args.key or args.chain):
        raise InputError("--pfx: give either --pfx or --cert/--key[/--chain], not both")
    if (args.key or args.chain) and not args.cert:
        raise InputError("--key/--chain: need --cert")
    if args.cert and not args.key:
        raise InputError(f"{args.cert}: --key is required with --cert")
    for path, option in ((args.pfx, "--pfx"), (args.password_file, "--password-file"), (args.cert, "--cert"),
                         (args.key, "--key"), (args.chain, "--chain"), (args.ca_bundle, "--rmx-trust")):
        _check_file(path, option)
    if not 0 < args.timeout <= 600:
        raise InputError(f"--timeout: {args.timeout} must be between 0 and 600 seconds")
    tls_min, tls_max = (_version(args.tls_min, "--tls-min"), _version(args.tls_max, "--tls-max"))
    if TLS_VERSIONS.index(tls_min) > TLS_VERSIONS.index(tls_max):
        raise InputError(f"--tls-min {tls_min} is above --tls-max {tls_max}")
    host, port = _split(args.registrar, args.srv)
    if args.sni is not None and not _HOST_NAME.fullmatch(args.sni):
        raise InputError(f"--sni: {args.sni!r} is not a DNS name (the pool FQDN the Front End certificate carries)")
    registrar = (Registrar(srv_domain=host, port=port, sni=args.sni, tls_min=tls_min, tls_max=tls_max,
                           sip_options=args.sip_options) if args.srv else
                 Registrar(host=host, port=port, sni=args.sni, tls_min=tls_min, tls_max=tls_max,
                           sip_options=args.sip_options))
    spec = mtls.ClientSpec(pfx=args.pfx, password=SecretFile(args.password_file) if args.password_file else None,
                           cert=args.cert, key=args.key, chain=args.chain, ca_bundle=args.ca_bundle,
                           tls_min=tls_min, tls_max=tls_max, keylog=args.keylog)
    outcome = mtls.probe([registrar], spec, deadline=time.monotonic() + args.timeout)
    return emit(single_report(args.registrar, [outcome], Firmware(args.firmware)), args.format, verbose=args.verbose)
