"""What ``rmxdiag cert`` and its helper actions read from the command line: the judgement options and
the certificate source. Kept apart so the command and its helpers both import it (no circle).
Only argparse and pathlib at import time: cryptography is loaded when a command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from probes.certificate.probe import CertOptions
    from probes.target import CertificateSource


def options_from(args: argparse.Namespace) -> CertOptions:
    """The judgement options of the command line."""
    from probes.certificate.probe import CertOptions
    from probes.model import InputError

    if args.expiry_warning_days < 0:
        raise InputError("--expiry-warning-days: must be 0 or more")
    return CertOptions(fqdn=args.fqdn, signaling_ip=args.signaling_ip, ca_bundle=args.ca_bundle,
                       firmware=args.firmware, expiry_warning_days=args.expiry_warning_days,
                       check_revocation=args.check_revocation, allow_san=args.allow_san)


def source_from(args: argparse.Namespace, path: Path) -> CertificateSource:
    """The certificate source described by FILE, --key, --chain and --password-file."""
    from probes.target import CertificateSource, SecretFile

    return CertificateSource(kind="dir7x" if path.is_dir() else "pem", path=path, key=args.key,
                             chain=args.chain,
                             password=SecretFile(args.password_file) if args.password_file else None)
