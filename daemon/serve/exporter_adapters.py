"""Read probe-specific result fields for metrics, defensively.

The probe results are frozen dataclasses owned by each probe; these adapters only *read* them,
accepting the documented field names (attribute or mapping) and skipping anything missing or of
the wrong type, so a result without a field yields no sample instead of a failed scrape. Every
value that becomes a label is checked against a closed set or a strict pattern here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from probes.model import ProbeOutcome

PHASES = ("resolve", "connect", "tls", "sip")
_TLS_VERSIONS = {"1.0": "TLSv1", "1.1": "TLSv1.1", "1.2": "TLSv1.2", "1.3": "TLSv1.3",
                 "tlsv1": "TLSv1", "tlsv1.0": "TLSv1", "tlsv1.1": "TLSv1.1", "tlsv1.2": "TLSv1.2",
                 "tlsv1.3": "TLSv1.3", "sslv3": "SSLv3"}
_CATEGORY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def field_of(obj: Any, *names: str) -> Any:
    """The first present field among ``names`` (attribute or mapping key), else None."""
    if obj is None:
        return None
    for name in names:
        value = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
        if value is not None:
            return value
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _timestamp(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp() if value.tzinfo else None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed.timestamp() if parsed.tzinfo else None
    return _number(value)


def mtls_phases(outcome: ProbeOutcome) -> Iterator[tuple[str, float]]:
    """(phase, seconds) from the mtls result's ``phases`` mapping (or ``<phase>_seconds`` fields)."""
    phases = field_of(outcome.result, "phases", "phase_durations", "timings")
    for phase in PHASES:
        value = field_of(phases, phase) if phases is not None else field_of(outcome.result, f"{phase}_seconds")
        seconds = _number(value)
        if seconds is not None and seconds >= 0:
            yield phase, seconds


def tls_version(outcome: ProbeOutcome) -> str | None:
    """The negotiated TLS version as ``TLSv1.x`` (closed set), or None."""
    value = field_of(outcome.result, "tls_version", "version")
    if not isinstance(value, str):
        return None
    return _TLS_VERSIONS.get(value.strip().lower().replace(" ", ""))


def sip_status(outcome: ProbeOutcome) -> int | None:
    """The SIP status code of the OPTIONS answer, or None."""
    value = field_of(outcome.result, "sip_status", "status_code")
    return value if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 699 else None


def _chain(value: Any) -> Iterator[tuple[int, float]]:
    if not isinstance(value, list | tuple):
        return
    for position, cert in enumerate(value[:16]):  # bounded label cardinality
        stamp = _timestamp(field_of(cert, "not_after"))
        if stamp is not None:
            yield position, stamp


def cert_not_after(outcome: ProbeOutcome) -> Iterator[tuple[str, int, float]]:
    """(role, position, not_after) of the chains a probe saw: client = the RMX's, server = the FE's."""
    result = outcome.result
    rows = field_of(result, "cert_not_after")
    if isinstance(rows, list | tuple):
        # The probe's own (role, position, unix time) rows (the mtls probe's documented field).
        for row in rows[:32]:
            if isinstance(row, tuple | list) and len(row) == 3 and row[0] in ("client", "server") \
                    and isinstance(row[1], int) and 0 <= row[1] < 16:
                stamp = _timestamp(row[2])
                if stamp is not None:
                    yield str(row[0]), int(row[1]), stamp
        return
    if outcome.probe == "certificate":
        # The certificate probe: ``summary`` describes the RMX leaf (position 0), ``chain`` the
        # CA certificates supplied with it (positions 1..n).
        leaf = _timestamp(field_of(field_of(result, "summary"), "not_after"))
        if leaf is not None:
            yield "client", 0, leaf
        for position, stamp in _chain(field_of(result, "chain")):
            if position + 1 < 16:
                yield "client", position + 1, stamp
        return
    if outcome.probe == "mtls":
        for role, names in (("server", ("server_chain", "fe_chain", "peer_chain")),
                            ("client", ("client_chain", "rmx_chain"))):
            for position, stamp in _chain(field_of(result, *names)):
                yield role, position, stamp


def alarm_counts(outcome: ProbeOutcome) -> Iterator[tuple[str, float]]:
    """(category, active alarm count) from the alarms result's ``counts`` mapping."""
    counts = field_of(outcome.result, "counts", "active_by_category", "categories")
    if not isinstance(counts, Mapping):
        # No per-category counts: count the active alarms' own ``category`` fields instead.
        active = field_of(outcome.result, "active", "alarms")
        if not isinstance(active, list | tuple):
            return
        tally: dict[str, int] = {}
        for alarm in active:
            category = field_of(alarm, "category")
            if isinstance(category, str):
                tally[str(category)] = tally.get(str(category), 0) + 1
        counts = tally
    for category, count in counts.items():
        value = _number(count)
        if isinstance(category, str) and _CATEGORY.match(category) and value is not None:
            yield category, value
