"""`rmxdiag lab`: the embedded demo lab (a simulated Front End and RMX on loopback)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from daemon.commands._common import add_format


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``rmxdiag lab``."""
    from daemon.lab.scenarios import DEFAULT_SCENARIO, SCENARIOS

    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default=DEFAULT_SCENARIO, metavar="NAME",
                        help=f"which fault to simulate (default {DEFAULT_SCENARIO}; see --list)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and their expected root cause")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the generated PKI, alarm report and capture here (default: a temporary "
                             "directory removed afterwards)")
    parser.add_argument("--serve", action="store_true",
                        help="also run the daemon against the lab and print the URLs of its web page, /metrics and "
                             "/api/v1/report until Ctrl-C")
    add_format(parser)


def execute(args: argparse.Namespace) -> int:
    """Run one lab scenario and print its diagnosis; the exit code is the report's."""
    from daemon.commands._common import emit
    from daemon.lab import run as lab

    if args.list:
        lab.list_scenarios(sys.stdout)
        return 0
    kept = args.workdir is not None
    with lab.lab_workdir(args.workdir) as workdir:
        run = lab.run_scenario(args.scenario, workdir)
        if args.format == "text":
            # The verdict line first (as every subcommand), then the banner saying this is a lab.
            code = emit(lab.as_report(run), "text", verbose=args.verbose,
                        intro=lab.header(run, kept).splitlines())
        else:
            sys.stderr.write(lab.header(run, kept))
            code = emit(lab.as_report(run), args.format)
        (sys.stdout if args.format == "text" else sys.stderr).write("\n" + lab.footer(run, kept))
        if args.serve:
            from daemon.lab import serve as lab_serve

            sys.stdout.flush()
            return lab_serve.serve(args.scenario, workdir, sys.stdout if args.format == "text" else sys.stderr)
    return code
