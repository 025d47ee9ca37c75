"""The README's hint reference is exactly `rmxdiag hints --format markdown`, its routing table
exactly what tests/support/routing.py generates from the probes' own findings."""

from __future__ import annotations

import subprocess
import sys

from daemon.diagnosis.catalogue import CATALOGUE
from tests.support.readme import README, ROUTING, regenerate, section
from tests.support.routing import routing_markdown


def test_readme_reference_matches_the_hints_command() -> None:
    # Given the markdown the CLI prints for the catalogue
    printed = subprocess.run([sys.executable, "-m", "daemon.cli", "hints", "--format", "markdown"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    # Then the README section between the markers is the same text
    assert section(README.read_text()) == printed, "run: .venv/bin/python -m tests.support.readme"
    assert all(f"`{code}`" in printed for code in CATALOGUE)


def test_regenerate_replaces_only_the_marked_section() -> None:
    # Given a text with markers around stale content
    text = "intro\n<!-- hints:start -->\nold\n<!-- hints:end -->\noutro\n"
    # When regenerated, Then only the section changed
    assert regenerate(text, "| new |\n") == "intro\n<!-- hints:start -->\n| new |\n<!-- hints:end -->\noutro\n"


def test_readme_routing_table_is_generated_from_the_code() -> None:
    # Given the routing table the probes' findings produce, Then the README holds exactly it
    assert section(README.read_text(), ROUTING) == routing_markdown(), "run: .venv/bin/python -m tests.support.readme"


def test_regenerate_replaces_only_the_routing_section() -> None:
    # Given a text with both marker pairs, When the routing section is regenerated, Then only it changed
    text = "a\n<!-- hints:start -->\nh\n<!-- hints:end -->\n<!-- routing:start -->\nold\n<!-- routing:end -->\nz\n"
    assert regenerate(text, "| new |\n", ROUTING) == text.replace("\nold\n", "\n| new |\n")
