"""Helpers shared by the subcommands: output format option and report emission."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence

from daemon.diagnosis.catalogue import Firmware
from daemon.report import Report, TargetReport, TargetStatus, now_utc, render_json, render_text, verdict_line
from probes.model import ProbeOutcome


def add_format(parser: argparse.ArgumentParser) -> None:
    """The ``--format text|json|html`` option every reporting subcommand has."""
    parser.add_argument("--format", choices=("text", "json", "html"), default="text",
                        help="text for humans (default), the JSON document of the report contract, or one "
                             "self-contained HTML page (no script, no external asset: attach it to a ticket)")


def add_firmware(parser: argparse.ArgumentParser) -> None:
    """``--firmware 7.x|8.x``: which RMX menus the remediation steps name."""
    parser.add_argument("--firmware", choices=[f.value for f in Firmware], default=Firmware.V8.value,
                        help="RMX firmware family; changes which menus the fix steps name (default 8.x)")


def single_report(name: str, outcomes: Sequence[ProbeOutcome], firmware: Firmware) -> Report:
    """Diagnose the outcomes of one object and wrap them into a one-target report."""
    from daemon.diagnosis.diagnose import diagnose

    target = TargetReport(name, tuple(outcomes), diagnose(outcomes, firmware))
    return Report(now_utc(), (target,))


def emit(report: Report, fmt: str, pages: Mapping[str, str] | None = None, *, verbose: int = 0, config: bool = False,
         intro: Sequence[str] = ()) -> int:
    """Print the report in the chosen format and return its Nagios exit code.

    Text: the verdict line first, then ``intro`` (a banner), then the hints and details; ``verbose``
    shows the evidence with its key=value facts. ``config``: the targets come from a configuration
    file, so what was not checked names configuration keys, not options. ``pages``: target name ->
    URL of its page on the daemon, named at the end of the text report.
    """
    if fmt == "json":
        sys.stdout.write(render_json(report))
    elif fmt == "html":
        from daemon.html.pages import report_file

        sys.stdout.write(report_file(report.to_json()))
    else:
        sys.stdout.write(render_text(report, sys.stdout, verbose=verbose > 0, config=config, intro=intro))
        if pages:
            sys.stdout.write("\n" + "".join(f"Web page of {name}: {url}\n" for name, url in pages.items()))
    sys.stdout.flush()
    if report.status is TargetStatus.UNKNOWN:
        # Could not run: the same status on stderr as for a bad input, whatever the format.
        sys.stderr.write(f"rmxdiag: {verdict_line(report, config=config, perf=False)}\n")
    return report.exit_code
