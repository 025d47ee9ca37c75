"""The limits of the first output line, which monitoring systems read as status text and perfdata.

Nagios keeps 4 KB of a plugin's first line (8 KB of its whole output in 4.x) and reads everything
after the first ``|`` as performance data; a newline starts the long output. So the status text
escapes ``|`` and control characters (a file or target name may hold them), names at most
:data:`MAX_NAMED` targets per state ("+N more"), and is cut at :data:`MAX_STATUS` characters;
beyond :data:`PERF_TARGETS` targets the perfdata is aggregated (targets per state, the nearest
certificate expiry) instead of one set of labels per target. The whole line stays under
:data:`MAX_LINE` characters.
"""

from __future__ import annotations

MAX_NAMED = 5  # targets named per state in a several-target verdict
MAX_STATUS = 1000  # characters of status text (before " | perfdata")
PERF_TARGETS = 10  # more targets than this: aggregated perfdata
MAX_LINE = 4000  # the whole first line, perfdata included: Nagios 3 keeps 4 KB of it

_CONTROL = {i: f"\\x{i:02x}" for i in (*range(0x20), 0x7F)} | {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}


def status_text(text: str) -> str:
    """``text`` safe as Nagios status text: ``|`` shown as ``¦``, control characters escaped, capped."""
    safe = text.translate(_CONTROL).replace("|", "¦")
    return safe if len(safe) <= MAX_STATUS else safe[:MAX_STATUS - 1] + "…"


def named(items: list[str]) -> str:
    """``items`` joined with "; ", at most :data:`MAX_NAMED` of them, then "+N more"."""
    shown = "; ".join(items[:MAX_NAMED])
    return shown + (f"; +{len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else "")


def perf_label(label: str) -> str:
    """A quoted perfdata label (a ``'`` inside is doubled, as the plugin guidelines say; no ``|``/``=``/newline)."""
    clean = status_text(label).replace("=", "_").replace("'", "''")
    return f"'{clean}'"
