"""`rmxdiag alarms FILE...`: classify RMX alarms from saved reports, snmptrapd logs or syslog files.

Each file's format is detected (report / snmptrapd / syslog) unless ``--as`` forces one; the RMX
XML API adds the MCU state and active alarm count (``--xml-api URL --user-file F
--password-file F``; credentials only from files, relative names resolve in
``$CREDENTIALS_DIRECTORY``). Exit: 2 with registration alarms, 1 with certificate warnings,
0 otherwise; 3 for bad input (one line naming the file).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from daemon.commands._common import add_firmware, add_format


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `rmxdiag alarms`."""
    parser.epilog = ("Exit codes: 0 no alarm that matters, 1 certificate warning, 2 registration alarm or "
                     "expired certificate, 3 bad input. An alarm alone is not proof: the RMX raises some "
                     "without a real cause; `rmxdiag run` corroborates them with the other probes.")
    parser.add_argument("files", nargs="*", type=Path, metavar="FILE",
                        help="saved Active Alarms / System Alerts .txt, snmptrapd log (-Lf) or syslog file")
    parser.add_argument("--as", dest="input_format", choices=("auto", "report", "snmptrapd", "syslog"),
                        default="auto", help="file format (default: detected per file)")
    parser.add_argument("--xml-api", metavar="URL", help="RMX XML API URL, e.g. https://rmx.example.com/")
    parser.add_argument("--user-file", type=Path, metavar="F", help="file holding the XML API user name")
    parser.add_argument("--password-file", type=Path, metavar="F", help="file holding the XML API password")
    parser.add_argument("--api-ca", "--ca-bundle", dest="ca_bundle", type=Path, metavar="F",
                        help="the CA of the RMX's web (management) certificate, to verify the XML API's HTTPS "
                        "(default: this host's system store; --ca-bundle: the old name)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="S", help="XML API timeout (default 10 s)")
    add_format(parser)
    add_firmware(parser)


def execute(args: argparse.Namespace) -> int:
    """Read, classify, report; the exit code follows the hints."""
    from daemon.commands._common import emit, single_report
    from daemon.diagnosis.catalogue import Firmware
    from probes.alarms import probe as alarms
    from probes.alarms.sources import FileFormat
    from probes.fileio import open_regular
    from probes.model import InputError
    from probes.target import SecretFile, XmlApi

    api = None
    if args.xml_api:
        if args.user_file is None or args.password_file is None:
            raise InputError("--xml-api needs --user-file and --password-file (credentials are never "
                             "taken from the command line)")
        if args.timeout <= 0:
            raise InputError("--timeout: must be a positive number of seconds")
        if args.ca_bundle is not None:  # refused now, in the words of every file option, not during the login
            os.close(open_regular(args.ca_bundle, "--api-ca file"))
        api = XmlApi(args.xml_api, SecretFile(args.user_file), SecretFile(args.password_file),
                     args.ca_bundle, args.timeout)
    elif args.user_file or args.password_file or args.ca_bundle:
        raise InputError("--user-file/--password-file/--api-ca only make sense with --xml-api URL")
    if not args.files and api is None:
        raise InputError("give at least one alarm FILE or --xml-api URL")
    fmt = None if args.input_format == "auto" else FileFormat(args.input_format)
    deadline = time.monotonic() + 3 * args.timeout
    outcome = alarms.check(args.files, api, fmt, deadline)
    name = "rmx" if not args.files else ", ".join(str(p) for p in args.files)  # as given, like cert and pcap
    return emit(single_report(name, [outcome], Firmware(args.firmware)), args.format, verbose=args.verbose)
