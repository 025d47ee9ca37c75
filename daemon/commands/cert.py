"""`rmxdiag cert`: judge an RMX certificate, and the certificate workflow helpers.

``rmxdiag cert FILE`` inspects; ``rmxdiag cert ACTION FILE`` runs a helper (``csr``, ``extract``,
``pfx``, ``preflight``). Only argparse is imported at start-up: cryptography is loaded when the
command runs (monitoring systems call this as a check, so start-up time matters).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from daemon.commands._cert_options import options_from, source_from
from daemon.commands._common import add_firmware, add_format

ACTIONS = {
    "csr": "lint a certificate request before it goes to the CA",
    "extract": "print the leaf certificate (Base-64 PEM) the RMX wants pasted",
    "pfx": "assemble leaf + key + chain into a PFX the RMX imports in one go (-o OUT)",
    "preflight": "judge a PFX as the RMX 8.x import would: accepted, or what to fix first",
}

_EPILOG = """usage forms:
  rmxdiag cert FILE [options]                     judge a certificate (PEM/DER/PFX/P7B, 7.x directory)
  rmxdiag cert csr FILE [--fqdn N] [--allow-san]  lint a request before sending it to the CA
  rmxdiag cert extract FILE [--password-file F] [-o OUT [--force]]
  rmxdiag cert pfx CERT --key KEY [--chain F] [--fe-trust F] --password-file F -o OUT [--force]
  rmxdiag cert preflight FILE.pfx --password-file F --fqdn N [--fe-trust F]
A file literally named like an action: write ./csr.
Passwords are only read from files (first line). Exit: 0 ok, 1 warning, 2 critical, 3 could not run."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The certificate options plus those of the helpers."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.usage = "rmxdiag cert [ACTION] FILE [options]   (ACTION: " + "|".join(ACTIONS) + ")"
    parser.epilog = _EPILOG
    parser.add_argument("items", nargs="+", metavar="[ACTION] FILE",
                        help="the certificate file/directory, optionally preceded by an action: "
                        + ", ".join(ACTIONS))
    parser.add_argument("--password-file", type=Path, metavar="F",
                        help="file whose first line is the PFX / private key password")
    parser.add_argument("--key-password-file", type=Path, metavar="F",
                        help="pfx: password of an encrypted --key when it differs from --password-file")
    parser.add_argument("--key", type=Path, metavar="F", help="private key (PEM/DER) to check against the certificate")
    parser.add_argument("--chain", type=Path, metavar="F", help="CA certificates the RMX holds (PEM bundle/DER/P7B)")
    parser.add_argument("--fqdn", metavar="NAME", help="the RMX signaling FQDN (CN of its certificate)")
    parser.add_argument("--signaling-ip", metavar="IP", help="the RMX signaling IP the FQDN must resolve to")
    parser.add_argument("--fe-trust", "--ca-bundle", dest="ca_bundle", type=Path, metavar="F",
                        help="the FRONT END's trust: the roots and intermediates it trusts (PEM, exported from "
                        "certlm.msc); the RMX chain is verified against them (--ca-bundle: the old name)")
    add_firmware(parser)
    parser.add_argument("--expiry-warning-days", type=int, default=30, metavar="N",
                        help="warn when fewer days remain (default 30)")
    parser.add_argument("--check-revocation", action="store_true",
                        help="fetch each CRL distribution point / OCSP URL (bounded timeout)")
    parser.add_argument("--allow-san", action="store_true",
                        help="a SAN that contains the FQDN is deliberate (super-cluster style): no warning")
    parser.add_argument("-o", "--output", type=Path, metavar="OUT", help="extract/pfx: file to write")
    parser.add_argument("--force", action="store_true", help="extract/pfx: replace an existing output file "
                        "(a regular file only, never one of the input files)")
    add_format(parser)


def execute(args: argparse.Namespace) -> int:
    """Dispatch to the inspection or to a helper action."""
    from probes.model import InputError

    items: list[str] = args.items
    if any(not item.strip() for item in items):  # Path("") is "." (the current directory)
        raise InputError("FILE: an empty file name")
    if len(items) == 2 and items[0] in ACTIONS:
        from daemon.commands._cert_tools import run_action

        return run_action(items[0], args, Path(items[1]))
    if len(items) != 1:
        raise InputError(f"expected FILE or ACTION FILE (actions: {', '.join(ACTIONS)}), got {' '.join(items)}")
    if args.output or args.force:
        raise InputError("-o/--force belong to the extract and pfx actions")
    return inspect_file(args, Path(items[0]))


def inspect_file(args: argparse.Namespace, path: Path) -> int:
    """`rmxdiag cert FILE`: the verdict, each problem with its fix, then the certificate summary."""
    import time
    from datetime import UTC, datetime

    from daemon.commands._common import emit, single_report
    from daemon.diagnosis.catalogue import Firmware
    from probes.certificate.probe import inspect

    options = options_from(args)
    outcome = inspect(source_from(args, path), options, datetime.now(UTC), time.monotonic() + 30.0)
    return emit(single_report(str(path), [outcome], Firmware(args.firmware)), args.format, verbose=args.verbose)
