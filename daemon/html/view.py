"""What the pages show, read from report documents (JSON schema 1), never from live objects.

The daemon's latest results, its stored runs and the CLI's report all have this one shape, so
one set of readers serves every page. Documents are read defensively: a missing or mistyped
field shows as absent, never as an exception (a stored run is a file on disk).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

STATUSES = ("critical", "unknown", "warning", "ok")  # worst first; "pending": no run finished yet
PROBES = ("certificate", "mtls", "alarms", "capture")


def as_dict(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a JSON object, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> Sequence[Any]:
    """``value`` when it is a JSON array, else an empty one."""
    return value if isinstance(value, list | tuple) else ()


def text(value: Any, default: str = "") -> str:
    """A scalar as text (None as ``default``)."""
    return default if value is None else str(value)


def status_of(target: Mapping[str, Any]) -> str:
    """The target's verdict word (one of :data:`STATUSES`; ``unknown`` when unreadable)."""
    status = target.get("status")
    return status if status in STATUSES else "unknown"


def probe_of(target: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """The outcome of probe ``name`` in a target document (empty when absent)."""
    for probe in as_list(target.get("probes")):
        if as_dict(probe).get("probe") == name:
            return as_dict(probe)
    return {}


def result_of(target: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """The ``result`` of probe ``name`` (empty when absent)."""
    return as_dict(probe_of(target, name).get("result"))


def verdict_line(target: Mapping[str, Any]) -> str:
    """One line: verdict word, target and the head root cause (the text report's first line)."""
    name = text(target.get("name"), "?")
    status = status_of(target)
    hints = [as_dict(h) for h in as_list(target.get("hints"))]
    if status == "unknown":
        reasons = [f"{text(p.get('probe'))}: {text(as_dict(p.get('error')).get('detail'))}"
                   for p in map(as_dict, as_list(target.get("probes"))) if p.get("error")]
        return f"UNKNOWN: {name}: could not run " + ("; ".join(reasons) or "any probe")
    if hints:
        head = hints[0]
        more = f" (+{len(hints) - 1} more)" if len(hints) > 1 else ""
        return f"{status.upper()}: {name}: {text(head.get('title'))} [{text(head.get('code'))}]{more}"
    return f"OK: {name}: no problem found"


def evidence_parts(line: str) -> tuple[str, str]:
    """An evidence line ``probe: what was seen (details)`` as (probe, the rest); probe may be ''."""
    head, sep, rest = line.partition(": ")
    if sep and head in PROBES:
        return head, rest
    return "", line


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time of a report (``...Z``) as an aware datetime, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def days_left(not_after: Any, now: datetime) -> float | None:
    """Days from ``now`` until ``not_after`` (negative once expired), or None."""
    when = parse_time(not_after)
    return None if when is None else (when - now).total_seconds() / 86400


def client_chain(target: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The RMX chain: as the mtls probe presented it, else as the certificate probe read it."""
    presented = [as_dict(c) for c in as_list(result_of(target, "mtls").get("client_chain"))]
    if presented:
        return presented
    cert = result_of(target, "certificate")
    leaf = as_dict(cert.get("certificate"))
    chain = [as_dict(c) for c in as_list(cert.get("chain"))]
    return ([{**leaf, "position": 0}] if leaf else []) + [{**c, "position": n} for n, c in enumerate(chain, 1)]


def registrars(target: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every registrar the mtls probe tried."""
    return [as_dict(r) for r in as_list(result_of(target, "mtls").get("registrars"))]


def server_chains(target: Mapping[str, Any]) -> list[tuple[str, list[Mapping[str, Any]]]]:
    """(registrar, the chain its Front End presented) for each registrar that presented one."""
    out = []
    for reg in registrars(target):
        chain = [as_dict(c) for c in as_list(reg.get("server_chain"))]
        if chain:
            out.append((text(reg.get("registrar"), "?"), chain))
    if not out:  # no probe of the registrar: the capture's view of the chain, when it has one
        for conn in connections(target):
            chain = [as_dict(c) for c in as_list(conn.get("server_chain"))]
            if chain:
                return [(text(conn.get("connection"), "capture"), chain)]
    return out


def earliest(chain: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The certificate of ``chain`` that expires first (None when none has a notAfter)."""
    dated = [(parse_time(c.get("not_after")), c) for c in chain]
    known = [(t, c) for t, c in dated if t is not None]
    return min(known, key=lambda pair: pair[0])[1] if known else None


def connections(target: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The capture's per-connection summaries."""
    return [as_dict(c) for c in as_list(result_of(target, "capture").get("connection_summaries"))]


def alarms(target: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The RMX's active alarms the alarms probe read."""
    return [as_dict(a) for a in as_list(result_of(target, "alarms").get("active"))]
