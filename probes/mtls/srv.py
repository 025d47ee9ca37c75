"""Pool members of a SIP domain from its ``_sipinternaltls._tcp`` SRV records."""

from __future__ import annotations

from probes.resolve import srv_records


def srv_name(domain: str) -> str:
    """The SRV owner name Lync clients and servers use for server-to-server MTLS."""
    return f"_sipinternaltls._tcp.{domain.strip('.')}"


def srv_members(domain: str, deadline: float, nameserver: tuple[str, int] | None = None) -> list[tuple[str, int]]:
    """(host, port) of every pool member, by priority then weight, within the deadline (ResolveError).

    ``nameserver``: ask this (ip, port) instead of the system resolvers (tests, split DNS).
    """
    return srv_records(srv_name(domain), deadline, nameserver)
