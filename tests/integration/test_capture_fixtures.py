"""The committed fixture captures still extract to their committed event files (pyshark over real tshark)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.peers import need

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "capture"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())

pytestmark = pytest.mark.peer


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_extraction_matches_committed_events(name: str) -> None:
    # Given a committed capture and the events extracted from it when it was recorded
    tshark = need("tshark")
    need("tcpdump")
    spec = MANIFEST[name]
    argv = [sys.executable, "-m", "probes.capture.tshark", str(FIXTURES / name), str(spec["port"]), tshark]
    if "keylog" in spec:
        argv.append(str(FIXTURES / spec["keylog"]))
    # When the worker extracts it again
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
    # Then the same events come out, and the stream ends with the event count
    events = [json.loads(line[2:]) for line in out if line.startswith("E ")]
    stored = FIXTURES / f"{name.split('.', maxsplit=1)[0]}.events.jsonl"
    expected = [json.loads(line) for line in stored.read_text().splitlines()]
    assert events == expected
    assert out[-1] == f"X {len(expected)}"
