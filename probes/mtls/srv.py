"""Pool members of a SIP domain from its ``_sipinternaltls._tcp`` SRV records (dnspython)."""

from __future__ import annotations

import time

import dns.exception
import dns.resolver


class SrvLookupError(Exception):
    """The SRV lookup failed; ``timeout`` tells a silent resolver from a negative answer."""

    def __init__(self, message: str, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


def srv_name(domain: str) -> str:
    """The SRV owner name Lync clients and servers use for server-to-server MTLS."""
    return f"_sipinternaltls._tcp.{domain.strip('.')}"


def srv_members(domain: str, deadline: float, nameserver: tuple[str, int] | None = None) -> list[tuple[str, int]]:
    """(host, port) of every SRV target, by priority then weight (highest first), within the deadline.

    ``nameserver``: ask this (ip, port) instead of the system resolvers (tests, split DNS).
    """
    resolver = dns.resolver.Resolver(configure=nameserver is None)
    if nameserver is not None:
        resolver.nameservers = [nameserver[0]]
        resolver.port = nameserver[1]
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise SrvLookupError(f"{srv_name(domain)}: no time left for the SRV lookup", timeout=True)
    resolver.lifetime = remaining
    resolver.timeout = min(remaining, 2.0)
    try:
        answer = resolver.resolve(srv_name(domain), "SRV")
    except dns.exception.Timeout as exc:
        raise SrvLookupError(f"{srv_name(domain)}: the DNS server did not answer in time", timeout=True) from exc
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers) as exc:
        raise SrvLookupError(f"{srv_name(domain)}: no SRV record ({type(exc).__name__})") from exc
    except dns.exception.DNSException as exc:
        raise SrvLookupError(f"{srv_name(domain)}: lookup failed ({type(exc).__name__})") from exc
    records = sorted(answer, key=lambda r: (r.priority, -r.weight))
    return [(str(r.target).rstrip("."), int(r.port)) for r in records]


def host_addresses(host: str, deadline: float, nameserver: tuple[str, int]) -> list[str]:
    """A then AAAA addresses of ``host`` from ``nameserver`` (ip, port), within the deadline.

    The injectable alternative to getaddrinfo (split DNS, tests): dnspython honours its lifetime
    in the calling thread, so a silent server costs no extra thread. Raises SrvLookupError.
    """
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [nameserver[0]]
    resolver.port = nameserver[1]
    found: list[str] = []
    for rdtype in ("A", "AAAA"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SrvLookupError(f"{host}: no time left for the DNS lookup", timeout=True)
        resolver.lifetime = remaining
        resolver.timeout = min(remaining, 2.0)
        try:
            found += [str(r) for r in resolver.resolve(host, rdtype)]
        except dns.exception.Timeout as exc:
            raise SrvLookupError(f"{host}: the DNS server did not answer in time", timeout=True) from exc
        except (dns.resolver.NXDOMAIN, dns.resolver.NoNameservers) as exc:
            raise SrvLookupError(f"{host}: no such name ({type(exc).__name__})") from exc
        except dns.resolver.NoAnswer:
            continue
        except dns.exception.DNSException as exc:
            raise SrvLookupError(f"{host}: lookup failed ({type(exc).__name__})") from exc
    if not found:
        raise SrvLookupError(f"{host}: no A or AAAA record")
    return found
