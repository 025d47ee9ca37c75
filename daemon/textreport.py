"""The text report: the verdict line first, then each root cause with plain sentences and fix steps,
then what each probe ran and found, wrapped to the terminal width.

Width: ``COLUMNS`` or the terminal's (``shutil.get_terminal_size``), 80 on a pipe. Colour only on a
terminal, never with ``NO_COLOR`` set or ``TERM=dumb``. The first line is never wrapped: monitoring
systems read it whole (status text, then perfdata after ``|``). ``verbose`` shows each piece of
evidence with its facts as key=value (as the JSON report has them) instead of the sentences.
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from collections.abc import Sequence
from typing import TextIO

from daemon.report import Report, TargetStatus, probe_summary, target_verdict, verdict_line, worst_first

MIN_WIDTH = 40


def terminal_width() -> int:
    """COLUMNS, else the terminal's width, else 80 (a pipe)."""
    return max(MIN_WIDTH, shutil.get_terminal_size((80, 24)).columns)


def colour_enabled(stream: TextIO) -> bool:
    """ANSI colour only on a terminal that can show it (https://no-color.org, TERM=dumb)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def shell_wrap(command: str, width: int | None = None, indent: str = "    ") -> list[str]:
    """A command line cut between its options with ``\\`` continuations, so it still pastes into a shell.

    An option stays with its value; a unit longer than the width stays whole on its own line.
    """
    width = width or terminal_width()
    units: list[str] = []
    for word in command.split(" "):
        if units and not word.startswith("-") and units[-1].startswith("-") and " " not in units[-1]:
            units[-1] += " " + word  # the option's value
        else:
            units.append(word)
    lines: list[str] = [indent + units[0]]
    for unit in units[1:]:
        if len(lines[-1]) + 1 + len(unit) + 2 > width and unit.startswith("-"):
            lines[-1] += " \\"
            lines.append(f"{indent}    {unit}")
        else:
            lines[-1] += " " + unit
    return lines


_CODES = {"red": "31", "yellow": "33", "green": "32", "bold": "1", "dim": "2"}
_STATUS_COLOUR = {TargetStatus.OK: "green", TargetStatus.WARNING: "yellow",
                  TargetStatus.CRITICAL: "red", TargetStatus.UNKNOWN: "yellow"}
_SEVERITY_COLOUR = {"critical": "red", "warning": "yellow", "info": "dim"}


class _Out:
    """Collects lines; wraps each to the width with a hanging indent; paints whole lines."""

    def __init__(self, width: int, colour: bool) -> None:
        self.width = width
        self.colour = colour
        self.lines: list[str] = []

    def paint(self, text: str, colour: str | None) -> str:
        return f"\033[{_CODES[colour]}m{text}\033[0m" if colour and self.colour else text

    def raw(self, text: str, colour: str | None = None) -> None:
        self.lines.append(self.paint(text, colour))

    def add(self, text: str, colour: str | None = None, hang: int = 2) -> None:
        body = text.lstrip(" ")
        indent = " " * (len(text) - len(body))
        if not body:
            self.lines.append("")
            return
        pieces = textwrap.wrap(body, self.width, initial_indent=indent, subsequent_indent=indent + " " * hang,
                               break_long_words=False, break_on_hyphens=False) or [indent + body]
        self.lines.extend(self.paint(p, colour) for p in pieces)


def render(report: Report, stream: TextIO | None = None, *, verbose: bool = False, config: bool = False,
           width: int | None = None, intro: Sequence[str] = ()) -> str:
    """The whole text report (see the module docstring); ``intro`` lines come right after the verdict."""
    out = _Out(width or terminal_width(), colour_enabled(stream or sys.stdout))
    out.raw(verdict_line(report, config=config), _STATUS_COLOUR[report.status])
    for line in intro:
        out.add(line)
    targets = worst_first(report.targets)
    if len(targets) > 1:
        for target in targets:
            out.add("  " + target_verdict(target, config), _STATUS_COLOUR[target.status], hang=4)
    for target in targets:
        if target.hints:
            out.add("")
            out.add(f"Problems for {target.name}, root cause first:", "bold")
        for number, hint in enumerate(target.hints, 1):
            out.add("")
            out.add(f"{number}. [{hint.severity.upper()}] {hint.code}: {hint.title}",
                    _SEVERITY_COLOUR[hint.severity], hang=3)
            about = " ".join(s for s in (hint.where_sentence(), hint.confidence_sentence()) if s)
            if about:
                out.add(f"   {about}")
            out.add("   Evidence:")
            for line in (hint.evidence if verbose or not hint.sentences else hint.sentences):
                out.add(f"   - {line}")
            out.add("   Fix:")
            for step_no, step in enumerate(hint.remediation, 1):
                out.add(f"     {step_no}. {step}", hang=3)
        details = [(s, o) for o in target.probes if (s := probe_summary(o, config))]
        if details:
            out.add("")
            out.add(f"Details for {target.name}:", "bold")
        for summary, outcome in details:
            out.add(f"  {summary}", hang=4)
            if outcome.result is not None:
                for line in outcome.result.text_lines():
                    out.add(f"    {line}", hang=4)
    return "\n".join(out.lines) + "\n"
