"""The README's generated hint reference: ``python -m tests.support.readme`` rewrites it in place.

The section between the two markers is exactly ``rmxdiag hints --format markdown``; a unit test
fails when they differ, so the reference cannot drift from the catalogue.
"""

from __future__ import annotations

import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
START, END = "<!-- hints:start -->", "<!-- hints:end -->"


def section(text: str) -> str:
    """The text between the markers (without them and without the blank lines around)."""
    head, _, rest = text.partition(START)
    body, found, _tail = rest.partition(END)
    if not head or not found:
        raise ValueError(f"README.md must contain {START} ... {END}")
    return body.strip("\n") + "\n"


def regenerate(text: str, markdown: str) -> str:
    """``text`` with the section between the markers replaced by ``markdown``."""
    head, _, rest = text.partition(START)
    _body, _, tail = rest.partition(END)
    return f"{head}{START}\n{markdown.rstrip()}\n{END}{tail}"


def main() -> int:
    """Rewrite README.md from the catalogue."""
    from daemon.commands.hints import catalogue_markdown

    README.write_text(regenerate(README.read_text(), catalogue_markdown()))
    sys.stdout.write(f"updated {README}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
