"""The README's transcripts are what rmxdiag really prints: each command runs, each line shown appears.

Convention: a fenced block whose info string is ``console transcript`` holds ``$ command`` lines (a
trailing backslash continues the command on the next line) each followed by lines of its output.
The commands run in order, in one scratch directory, with the venv's ``bin`` first on PATH and an
80-column terminal width (what a reader sees on a pipe). Every shown line must appear in the
command's stdout, in order; ``…`` ending a line stands for the rest of that line, a line that is
only ``…`` for lines left out. ``needs=tshark`` names peers, as for the runnable blocks.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.peers import need

README = Path(__file__).resolve().parents[2] / "README.md"
_BLOCK = re.compile(r"^```console[ \t]+transcript(?:[ \t]+needs=(?P<needs>[\w,-]+))?[ \t]*\n(?P<body>.*?)^```[ \t]*$",
                    re.MULTILINE | re.DOTALL)
ELLIPSIS = "…"


@dataclass(frozen=True)
class Step:
    """One command of a transcript and the output lines it shows."""

    command: str
    shown: tuple[str, ...]


def steps(body: str) -> list[Step]:
    """The commands of a transcript block with the lines shown under each."""
    out: list[Step] = []
    lines = body.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.startswith("$ "):
            raise ValueError(f"transcript line outside a command's output: {line!r}")
        command = line[2:]
        while command.endswith("\\"):
            index += 1
            command = command[:-1].rstrip() + " " + lines[index].strip()
        index += 1
        shown: list[str] = []
        while index < len(lines) and not lines[index].startswith("$ "):
            shown.append(lines[index])
            index += 1
        out.append(Step(command, tuple(shown)))
    return out


def missing(shown: tuple[str, ...], actual: list[str]) -> list[str]:
    """The shown lines that do not appear, in order, in ``actual`` ([] when the transcript holds)."""
    position = 0
    for expected in (s for s in shown if s.strip() != ELLIPSIS):
        prefix = expected.endswith(ELLIPSIS)
        text = expected.removesuffix(ELLIPSIS).rstrip() if prefix else expected
        while position < len(actual):
            line = actual[position]
            position += 1
            if (line.startswith(text) if prefix else line.rstrip() == text.rstrip()):
                break
        else:
            return [expected]
    return []


def test_the_transcript_reader_understands_the_convention() -> None:
    # Given a transcript with a continued command, a prefix line and left-out lines
    body = "$ echo a \\\n    b\na …\n…\n$ true\n"
    parsed = steps(body)
    # Then the commands and their shown lines are read, and matching follows the ellipses
    assert parsed == [Step("echo a b", ("a …", ELLIPSIS)), Step("true", ())]
    assert missing(("a …", ELLIPSIS, "c"), ["a b", "x", "c"]) == []
    assert missing(("c", "a …"), ["a b", "c"]) == ["a …"]  # order matters


def _blocks() -> list[tuple[int, list[str], str]]:
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, (m.group("needs") or "").split(",") if m.group("needs") else [],
             m.group("body")) for m in _BLOCK.finditer(text)]


def test_readme_has_a_transcript() -> None:
    assert _blocks(), "README.md has no ```console transcript block"


@pytest.mark.slow
@pytest.mark.parametrize(("line", "needs", "body"), _blocks(), ids=[f"README.md:{n}" for n, _, _ in _blocks()])
def test_readme_transcript_is_what_rmxdiag_prints(line: int, needs: list[str], body: str, tmp_path: Path) -> None:
    # Given the peers it needs, rmxdiag first on PATH, an 80-column width and a scratch directory
    for peer in needs:
        need(peer)
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1",
           "COLUMNS": "80", "TMPDIR": str(tmp_path)}
    for step in steps(body):
        # When each command runs
        done = subprocess.run(["bash", "-c", step.command], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=180, check=False)
        # Then every line the README shows is in its output, in order
        assert missing(step.shown, done.stdout.splitlines()) == [], (
            f"README.md:{line}: $ {step.command}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-1000:]}")
