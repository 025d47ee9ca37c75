"""The README's CLI table lists every option that `rmxdiag <command> --help` shows."""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache

import pytest

from tests.support.config import ROOT

README = ROOT / "README.md"
RMXDIAG = [sys.executable, "-m", "daemon.cli"]
# Options every subcommand takes: the README says so once, below the table, instead of in each row.
COMMON = ("-h", "--help", "-v", "--verbose")


def _help(*command: str) -> str:
    done = subprocess.run([*RMXDIAG, *command, "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def options(help_text: str) -> list[str]:
    """The option strings of an argparse help text ("-c FILE, --config FILE" gives -c and --config)."""
    found = []
    for line in help_text.split("\noptions:\n", 1)[1].splitlines():
        entry = re.match(r"^ {2}(-\S.*?)(?: {2,}|$)", line)
        if entry:
            found += [part.split()[0] for part in entry[1].split(", ")]
    return found


@cache
def commands() -> list[str]:
    """The subcommands `rmxdiag --help` lists."""
    listing = _help().split("positional arguments:", 1)[1]
    return re.findall(r"^ {4}([a-z][a-z-]*)(?: |$)", listing, re.MULTILINE)


def _cli_section() -> str:
    return README.read_text(encoding="utf-8").split("## CLI reference", 1)[1].split("\n## ", 1)[0]


def _rows(command: str) -> str:
    """The README table rows of ``rmxdiag COMMAND`` (all `rmxdiag cert ...` rows for cert)."""
    rows = [line for line in _cli_section().splitlines()
            if re.match(rf"^\| `rmxdiag {re.escape(command)}(?:[ `])", line)]
    assert rows, f"the README's CLI table has no row for rmxdiag {command}"
    return "\n".join(rows)


def _mentions(text: str, option: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def test_options_parser_reads_short_long_and_negated_forms() -> None:
    # Given an argparse help text, Then every spelling of every option is read
    text = ("usage: x\n\noptions:\n  -h, --help            show\n  -c FILE, --config FILE\n"
            "                        configuration\n  --sip-options, --no-sip-options\n  --as {a,b}  format\n")
    assert options(text) == ["-h", "--help", "-c", "--config", "--sip-options", "--no-sip-options", "--as"]


def test_every_subcommand_is_in_the_table() -> None:
    assert {"run", "probe", "cert", "pcap", "alarms", "hints", "serve", "check-config", "lab"} <= set(commands())
    for command in commands():
        _rows(command)


@pytest.mark.parametrize("command", commands())
def test_every_option_of_the_help_is_in_the_table(command: str) -> None:
    # Given the options `rmxdiag COMMAND --help` shows
    shown = options(_help(command))
    # Then each is in the command's table rows, or among the common options the README names once
    rows = _rows(command)
    missing = [o for o in shown if not (_mentions(rows, o) or o in COMMON)]
    assert missing == [], f"README CLI table, rmxdiag {command}: missing {missing}"


def test_common_options_are_named_below_the_table() -> None:
    section = _cli_section()
    assert all(_mentions(section, option) for option in (*COMMON, "--version"))
    assert set(options(_help())) <= {*COMMON, "--version"}
