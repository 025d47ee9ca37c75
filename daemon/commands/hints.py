"""``rmxdiag hints [CODE]``: the hint catalogue, or one hint."""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import textwrap
from collections.abc import Iterable

from daemon.commands._common import add_firmware
from daemon.diagnosis.catalogue import CATALOGUE, FIX_ON, Firmware, HintCode, HintSpec, remediation
from daemon.report import where_sentence
from daemon.textreport import terminal_width
from probes.model import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``rmxdiag hints``."""
    parser.add_argument("code", nargs="?", metavar="CODE",
                        help="print only this hint (e.g. CLIENT_CERT_UNKNOWN_CA; any case)")
    parser.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    add_firmware(parser)


def catalogue_json(firmware: Firmware, specs: Iterable[HintSpec] | None = None) -> list[dict[str, object]]:
    """The catalogue (or ``specs``) as JSON-ready dicts, in catalogue order."""
    return [{"code": s.code, "severity": str(s.severity), "title": s.title, "meaning": s.meaning,
             "remediation": remediation(s.code, firmware), "fix_on": [str(p) for p in FIX_ON[s.code]]}
            for s in (CATALOGUE.values() if specs is None else specs)]


def catalogue_markdown(firmware: Firmware = Firmware.V8, specs: Iterable[HintSpec] | None = None) -> str:
    """The README's hint reference (generated; a test keeps the README in sync)."""
    lines = ["| code | severity | what it means | what to do |", "|---|---|---|---|"]
    for s in CATALOGUE.values() if specs is None else specs:
        steps = where_sentence([str(p) for p in FIX_ON[s.code]]) + " " + " ".join(
            f"{n}. {step}" for n, step in enumerate(remediation(s.code, firmware), 1))
        cells = [f"`{s.code}`", str(s.severity), f"**{s.title}.** {s.meaning}", steps]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _chosen(code: str | None) -> list[HintSpec] | None:
    """The one spec named ``code`` (None: the whole catalogue); InputError naming the closest codes."""
    if code is None:
        return None
    wanted = code.strip().upper().replace("-", "_")
    if wanted in CATALOGUE:
        return [CATALOGUE[HintCode(wanted)]]
    close = difflib.get_close_matches(wanted, list(CATALOGUE), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else "; `rmxdiag hints` lists them all"
    raise InputError(f"{code}: no such hint code{hint}")


def execute(args: argparse.Namespace) -> int:
    """Print the catalogue or one hint; 0 (3 for an unknown code)."""
    firmware = Firmware(args.firmware)
    specs = _chosen(args.code)
    if args.format == "json":
        found = catalogue_json(firmware, specs)
        sys.stdout.write(json.dumps(found[0] if args.code else found, indent=2) + "\n")
    elif args.format == "markdown":
        sys.stdout.write(catalogue_markdown(firmware, specs))
    else:
        width = terminal_width()
        for s in CATALOGUE.values() if specs is None else specs:
            out = [f"{s.code} [{s.severity}] {s.title}", f"    {s.meaning}",
                   "    " + where_sentence([str(p) for p in FIX_ON[s.code]])]
            out += [f"    {n}. {step}" for n, step in enumerate(remediation(s.code, firmware), 1)]
            for line in out:
                body = line.lstrip(" ")
                indent = line[:len(line) - len(body)]
                sys.stdout.write("\n".join(textwrap.wrap(body, width, initial_indent=indent,
                                                          subsequent_indent=indent + "   ",
                                                          break_long_words=False, break_on_hyphens=False)) + "\n")
            sys.stdout.write("\n")
    return 0
