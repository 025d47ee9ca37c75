"""Name resolution with a deadline, for every probe (A/AAAA and SRV).

The system resolver (``getaddrinfo``) has no timeout, so it runs in one small process-wide pool
of threads and the caller waits at most until its deadline: a silent DNS server holds a pool
thread, never a probe, and however many lookups hang the number of threads stays bounded (later
lookups queue and give up at their own deadline). An explicit ``nameserver`` (split DNS, tests)
and SRV records go through dnspython, which honours its lifetime in the calling thread.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

POOL_THREADS = 8
_POOL = ThreadPoolExecutor(max_workers=POOL_THREADS, thread_name_prefix="rmxdiag-resolve")

Address = tuple[int, tuple[Any, ...]]  # (address family, sockaddr)


class ResolveError(Exception):
    """``name`` did not resolve (``why``); ``timeout`` tells no answer in time from a negative answer."""

    def __init__(self, name: str, why: str, *, timeout: bool = False, errno: int | None = None) -> None:
        super().__init__(f"{name}: {why}")
        self.why = why
        self.timeout = timeout
        self.errno = errno


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def addresses(host: str, port: int, deadline: float, *, family: int = 0,
              nameserver: tuple[str, int] | None = None) -> list[Address]:
    """(family, sockaddr) of each address of ``host``, in resolver order, without repeats.

    An IP literal skips DNS. ``family`` restricts to AF_INET or AF_INET6 (0: both);
    ``nameserver`` (ip, port) asks that DNS server instead of the system resolver. Raises
    :class:`ResolveError` (``timeout`` when the absolute ``deadline`` passed first).
    """
    ip = _ip_literal(host)
    if ip is not None:
        return [(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, (str(ip), port))]
    if nameserver is not None:
        found: list[Address] = [(socket.AF_INET6 if ":" in a else socket.AF_INET, (a, port))
                                for a in _dns_addresses(host, deadline, nameserver, family)]
        return found
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ResolveError(host, "no time left for the DNS lookup", timeout=True)
    future = _POOL.submit(socket.getaddrinfo, host, port, family, socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=remaining)
    except FutureTimeout:
        future.cancel()  # still queued behind hung lookups: never start it
        raise ResolveError(host, "no DNS answer within the deadline", timeout=True) from None
    except socket.gaierror as exc:  # the resolver answered: no such name, no address...
        raise ResolveError(host, f"{exc.strerror or type(exc).__name__}", errno=exc.errno) from None
    except UnicodeError as exc:  # a name IDNA cannot encode (label too long, bad characters)
        raise ResolveError(host, f"not a valid DNS name ({type(exc).__name__})") from None
    except OSError as exc:  # the resolver itself failed: treat as no answer
        raise ResolveError(host, f"{exc.strerror or type(exc).__name__}", timeout=True, errno=exc.errno) from None
    out: list[Address] = []
    for fam, _, _, _, sockaddr in infos:
        if (fam, sockaddr) not in out:
            out.append((int(fam), sockaddr))
    return out


def _resolver(nameserver: tuple[str, int] | None) -> Any:
    import dns.resolver  # only lookups that need dnspython pay for importing it

    resolver = dns.resolver.Resolver(configure=nameserver is None)
    if nameserver is not None:
        resolver.nameservers = [nameserver[0]]
        resolver.port = nameserver[1]
    return resolver


def _query(resolver: Any, name: str, rdtype: str, deadline: float) -> list[Any]:
    """The records of one query within the deadline; [] for an empty answer; ResolveError otherwise."""
    import dns.exception
    import dns.resolver

    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ResolveError(name, "no time left for the DNS lookup", timeout=True)
    resolver.lifetime = remaining
    resolver.timeout = min(remaining, 2.0)
    try:
        return list(resolver.resolve(name, rdtype))
    except dns.exception.Timeout:
        raise ResolveError(name, "the DNS server did not answer in time", timeout=True) from None
    except dns.resolver.NoAnswer:
        return []
    except (dns.resolver.NXDOMAIN, dns.resolver.NoNameservers) as exc:
        raise ResolveError(name, f"no {rdtype} record ({type(exc).__name__})") from None
    except dns.exception.DNSException as exc:
        raise ResolveError(name, f"lookup failed ({type(exc).__name__})") from None


def _dns_addresses(host: str, deadline: float, nameserver: tuple[str, int], family: int) -> list[str]:
    """A then AAAA addresses of ``host`` from ``nameserver``, within the deadline."""
    resolver = _resolver(nameserver)
    rdtypes: tuple[str, ...] = ("A", "AAAA")
    if family in (socket.AF_INET, socket.AF_INET6):
        rdtypes = ("A",) if family == socket.AF_INET else ("AAAA",)
    found = [str(r) for rdtype in rdtypes for r in _query(resolver, host, rdtype, deadline)]
    if not found:
        raise ResolveError(host, f"no {' or '.join(rdtypes)} record")
    return found


def srv_records(name: str, deadline: float, nameserver: tuple[str, int] | None = None) -> list[tuple[str, int]]:
    """(host, port) of every SRV target of ``name``, by priority then weight (highest first).

    ``nameserver``: ask this (ip, port) instead of the system's resolvers. Raises ResolveError.
    """
    records = _query(_resolver(nameserver), name, "SRV", deadline)
    if not records:
        raise ResolveError(name, "no SRV record (NoAnswer)")
    records.sort(key=lambda r: (r.priority, -r.weight))
    return [(str(r.target).rstrip("."), int(r.port)) for r in records]
