"""The README's runnable shell blocks really run: every command a reader copies is tested.

Convention: a fenced block whose info string is ``sh runnable`` is run by bash, as one script,
from a scratch directory, with the venv's ``bin`` (hence ``rmxdiag``) first on PATH. The block
passes when bash exits 0, i.e. when its *last* command succeeds; write an expected non-zero
exit as ``rmxdiag lab --scenario untrusted-ca; test $? -eq 2`` and chain other steps with
``&&`` so an early failure is not hidden. Blocks marked plain ``sh`` are shown, not run (e.g.
``make demo``, which would recurse into the suite's own venv). ``sh runnable needs=tshark,openssl``
names the peer programs a block runs: without them the block is skipped (failed in CI).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.peers import need

README = Path(__file__).resolve().parents[2] / "README.md"
# ```sh runnable [needs=a,b] (also ~~~ fences), up to the matching closing fence.
_BLOCK = re.compile(r"^(?P<fence>```|~~~)[ \t]*sh[ \t]+runnable(?:[ \t]+needs=(?P<needs>[\w,-]+))?[ \t]*\n"
                    r"(?P<body>.*?)^(?P=fence)[ \t]*$", re.MULTILINE | re.DOTALL)


def runnable_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, script) of every ``sh runnable`` block in ``text``."""
    return [(text.count("\n", 0, m.start()) + 1, m.group("body")) for m in _BLOCK.finditer(text)]


def block_needs(text: str) -> dict[int, list[str]]:
    """The peer programs each runnable block names with ``needs=``, by line number."""
    return {text.count("\n", 0, m.start()) + 1: m.group("needs").split(",")
            for m in _BLOCK.finditer(text) if m.group("needs")}


def test_the_extractor_finds_only_runnable_blocks() -> None:
    # Given a document with a runnable block, a plain sh block and a python block
    doc = "x\n```sh runnable\necho a\n```\n```sh\nmake demo\n```\n```python\nprint()\n```\n~~~sh runnable\ntrue\n~~~\n"
    # Then only the two runnable ones are extracted, with their line numbers
    assert runnable_blocks(doc) == [(2, "echo a\n"), (11, "true\n")]
    # And a block's needs= are read
    assert block_needs("```sh runnable needs=tshark,openssl\nx\n```\n") == {1: ["tshark", "openssl"]}


def test_readme_has_runnable_blocks() -> None:
    # A README without a single tested command would make this docs test vacuous
    assert README.exists(), "README.md is missing"
    assert runnable_blocks(README.read_text(encoding="utf-8")), "README.md has no ```sh runnable block"


def _blocks() -> list[tuple[int, str]]:
    return runnable_blocks(README.read_text(encoding="utf-8")) if README.exists() else []


@pytest.mark.slow
@pytest.mark.parametrize(("line", "script"), _blocks(), ids=[f"README.md:{n}" for n, _ in _blocks()])
def test_readme_block_runs(line: int, script: str, tmp_path: Path) -> None:
    # Given the peers the block names, rmxdiag from this venv first on PATH and a scratch working directory
    for peer in block_needs(README.read_text(encoding="utf-8")).get(line, []):
        need(peer)
    bindir = Path(sys.executable).parent
    assert (bindir / "rmxdiag").exists(), f"{bindir}/rmxdiag missing: run `make venv`"
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1",
           "TMPDIR": str(tmp_path)}
    # When the block runs as one bash script
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=180, check=False)
    # Then it exits 0
    assert done.returncode == 0, (f"README.md:{line} block exited {done.returncode}\n--- script\n{script}"
                                  f"--- stdout (tail)\n{done.stdout[-2000:]}\n--- stderr (tail)\n{done.stderr[-2000:]}")
