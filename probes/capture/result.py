"""Results of capture inspection: one summary per connection, the aggregate, ms-diagnostics parsing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from probes.model import NoSamples
from probes.sip import parse_ms_diagnostics as parse_value


@dataclass(frozen=True)
class ConnectionSummary:
    """What one connection showed: an outcome enum, the history and the facts seen."""

    connection: str
    outcome: str  # ok | tls13_encrypted | alert | empty_client_cert | reset_after_client_cert | no_syn_ack |
    #               refused | no_server_hello | closed_after_client_hello | incomplete | not_tls
    history: tuple[str, ...]
    offered_versions: tuple[str, ...]
    version: str | None
    cipher: str | None
    sni: str | None
    server_chain: tuple[tuple[str, str], ...]
    client_chain: tuple[tuple[str, str], ...]
    ca_names: tuple[str, ...] | None
    rmx_issuer_in_ca_list: bool | None
    alerts: tuple[dict[str, Any], ...]
    retransmissions: int
    sip: tuple[dict[str, Any], ...]

    def to_json(self) -> dict[str, Any]:
        """The JSON shape of one connection summary."""
        return {
            "connection": self.connection, "outcome": self.outcome, "history": list(self.history),
            "offered_versions": list(self.offered_versions), "tls_version": self.version,
            "cipher": self.cipher, "sni": self.sni,
            "server_chain": [{"subject": s, "issuer": i} for s, i in self.server_chain],
            "client_chain": [{"subject": s, "issuer": i} for s, i in self.client_chain],
            "ca_names": None if self.ca_names is None else list(self.ca_names),
            "rmx_issuer_in_ca_list": self.rmx_issuer_in_ca_list, "alerts": list(self.alerts),
            "retransmissions": self.retransmissions, "sip": list(self.sip),
        }

    def line(self) -> str:
        """One text line: connection, outcome, version and the handshake history."""
        facts = [self.outcome]
        if self.version:
            facts.append(self.version)
        if self.retransmissions:
            facts.append(f"{self.retransmissions} retransmissions")
        facts.extend(f"SIP {s['status']}" for s in self.sip if s.get("status"))
        return f"{self.connection}: {', '.join(facts)}: {' '.join(self.history) or '-'}"


@dataclass(frozen=True)
class CaptureResult(NoSamples):  # its counts are per file and free-form: report only
    """The result of a capture inspection: files, counters, connection summaries, warnings."""

    files: tuple[str, ...]
    port: int
    events: int
    connections: int
    outcomes: dict[str, int]
    alerts: dict[str, int]  # "alert_name from_side" -> count
    summaries: tuple[ConnectionSummary, ...]
    omitted: int  # connections analysed but not listed (over MAX_LISTED)
    warnings: tuple[str, ...] = ()
    other_connections: int = 0  # with --rmx-ip: connections on the port between other hosts, not judged

    def to_json(self) -> dict[str, Any]:
        """Details for the JSON report."""
        return {"files": list(self.files), "port": self.port, "events": self.events,
                "connections": self.connections, "outcomes": dict(self.outcomes), "alerts": dict(self.alerts),
                "connection_summaries": [s.to_json() for s in self.summaries],
                "omitted_connections": self.omitted, "warnings": list(self.warnings),
                "other_connections": self.other_connections}

    def counts_line(self) -> str:
        """The aggregate counts as one line."""
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())) or "none"
        alerts = ", ".join(f"{k} {v}" for k, v in sorted(self.alerts.items()))
        return (f"{self.connections} connection(s) on port {self.port} ({self.events} events): {outcomes}"
                + (f"; alerts: {alerts}" if alerts else "")
                + (f"; {self.other_connections} connection(s) of other hosts not judged (--rmx-ip)"
                   if self.other_connections else ""))

    def text_lines(self) -> list[str]:
        """Details for the text report: one line per connection, then the counts and warnings."""
        lines = [s.line() for s in self.summaries]
        if self.omitted:
            lines.append(f"… {self.omitted} more connection(s) not listed")
        lines.append(self.counts_line())
        lines.extend(f"warning: {w}" for w in self.warnings)
        return lines


def parse_ms_diagnostics(headers: str) -> list[dict[str, Any]]:
    """Every ``ms-diagnostics`` (and ``-public``) header value of a raw SIP header block.

    Values are parsed by the probe's parser (:func:`probes.sip.parse_ms_diagnostics`); an
    unparsable value keeps its text as ``reason`` with ``id`` None.
    """
    found: list[dict[str, Any]] = []
    for raw in headers.replace("\r\n", "\n").split("\n"):
        name, sep, value = raw.partition(":")
        header = name.strip().lower()
        if sep and header in ("ms-diagnostics", "ms-diagnostics-public"):
            diag = parse_value(value, public=header.endswith("-public"))
            found.append({**diag.to_json(), "id": diag.id if diag.parsed else None})
    return found
