"""The README's generated references: ``python -m tests.support.readme`` rewrites them in place.

Two sections, each between its markers: the hint reference (exactly ``rmxdiag hints --format
markdown``) and the routing table (:func:`tests.support.routing.routing_markdown`: every finding
a probe can emit, what it is reported as alone and what it may be folded into). Unit tests fail
when either differs from what the code generates, so neither can drift.
"""

from __future__ import annotations

import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
START, END = "<!-- hints:start -->", "<!-- hints:end -->"
ROUTING = ("<!-- routing:start -->", "<!-- routing:end -->")


def section(text: str, markers: tuple[str, str] = (START, END)) -> str:
    """The text between the markers (without them and without the blank lines around)."""
    start, end = markers
    head, _, rest = text.partition(start)
    body, found, _tail = rest.partition(end)
    if not head or not found:
        raise ValueError(f"README.md must contain {start} ... {end}")
    return body.strip("\n") + "\n"


def regenerate(text: str, markdown: str, markers: tuple[str, str] = (START, END)) -> str:
    """``text`` with the section between the markers replaced by ``markdown``."""
    start, end = markers
    head, _, rest = text.partition(start)
    _body, _, tail = rest.partition(end)
    return f"{head}{start}\n{markdown.rstrip()}\n{end}{tail}"


def main() -> int:
    """Rewrite README.md's hint reference and routing table from the code."""
    from daemon.commands.hints import catalogue_markdown
    from tests.support.routing import routing_markdown

    text = regenerate(README.read_text(), catalogue_markdown())
    README.write_text(regenerate(text, routing_markdown(), ROUTING))
    sys.stdout.write(f"updated {README}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
