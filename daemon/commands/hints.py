"""``rmxdiag hints``: the hint catalogue."""

from __future__ import annotations

import argparse
import json
import sys

from daemon.commands._common import add_firmware
from daemon.diagnosis.catalogue import CATALOGUE, Firmware, remediation


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``rmxdiag hints``."""
    parser.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    add_firmware(parser)


def catalogue_json(firmware: Firmware) -> list[dict[str, object]]:
    """The catalogue as JSON-ready dicts, in catalogue order."""
    return [{"code": s.code, "severity": str(s.severity), "title": s.title, "meaning": s.meaning,
             "remediation": remediation(s.code, firmware)} for s in CATALOGUE.values()]


def catalogue_markdown(firmware: Firmware = Firmware.V8) -> str:
    """The README's hint reference (generated; a test keeps the README in sync)."""
    lines = ["| code | severity | what it means | what to do |", "|---|---|---|---|"]
    for s in CATALOGUE.values():
        steps = " ".join(f"{n}. {step}" for n, step in enumerate(remediation(s.code, firmware), 1))
        cells = [f"`{s.code}`", str(s.severity), f"**{s.title}.** {s.meaning}", steps]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def execute(args: argparse.Namespace) -> int:
    """Print the catalogue; always exits 0."""
    firmware = Firmware(args.firmware)
    if args.format == "json":
        sys.stdout.write(json.dumps(catalogue_json(firmware), indent=2) + "\n")
    elif args.format == "markdown":
        sys.stdout.write(catalogue_markdown(firmware))
    else:
        for s in CATALOGUE.values():
            sys.stdout.write(f"{s.code} [{s.severity}] {s.title}\n    {s.meaning}\n")
            for n, step in enumerate(remediation(s.code, firmware), 1):
                sys.stdout.write(f"    {n}. {step}\n")
            sys.stdout.write("\n")
    return 0
