"""`rmxdiag lab`: not built yet (its issue is open); exits 3 so no check reads it as healthy."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Accept anything until the real options exist."""
    parser.add_argument("rest", nargs=argparse.REMAINDER)


def execute(args: argparse.Namespace) -> int:
    """Say plainly that this subcommand is missing."""
    sys.stderr.write("rmxdiag: error: 'lab' is not available in this build yet\n")
    return 3
