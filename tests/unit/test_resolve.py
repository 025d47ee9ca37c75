"""The one resolver with a deadline (probes/resolve.py), against real sockets on loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from probes import resolve


@pytest.fixture
def silent_dns() -> Iterator[tuple[str, int]]:
    """A UDP port on loopback that receives DNS queries and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield "127.0.0.1", sock.getsockname()[1]


def test_an_ip_literal_needs_no_dns() -> None:
    deadline = time.monotonic() - 1  # even past its deadline: nothing to wait for
    assert resolve.addresses("192.0.2.7", 5061, deadline) == [(socket.AF_INET, ("192.0.2.7", 5061))]
    assert resolve.addresses("[2001:db8::1]", 5061, deadline) == [(socket.AF_INET6, ("2001:db8::1", 5061))]


def test_the_system_resolver_answers_localhost_without_repeats() -> None:
    found = resolve.addresses("localhost", 5061, time.monotonic() + 10, family=socket.AF_INET)
    assert found == [(socket.AF_INET, ("127.0.0.1", 5061))]


def test_a_silent_nameserver_is_a_timeout_at_the_deadline(silent_dns: tuple[str, int]) -> None:
    # Given a DNS server that never answers, When A/AAAA and SRV records are asked with 0.5 s left
    for lookup in (lambda d: resolve.addresses("fe.lab.example", 5061, d, nameserver=silent_dns),
                   lambda d: resolve.srv_records("_sipinternaltls._tcp.lab.example", d, silent_dns)):
        start = time.monotonic()
        with pytest.raises(resolve.ResolveError) as info:
            lookup(start + 0.5)
        elapsed = time.monotonic() - start
        # Then each gives up as a timeout near the deadline, naming what it looked up
        assert info.value.timeout and "lab.example" in str(info.value)
        assert 0.4 < elapsed < 5 * 0.5


def test_no_time_left_is_a_timeout_before_any_lookup() -> None:
    with pytest.raises(resolve.ResolveError) as info:
        resolve.addresses("fe.lab.example", 5061, time.monotonic() - 1)
    assert info.value.timeout and info.value.why == "no time left for the DNS lookup"


def test_many_concurrent_lookups_share_a_bounded_pool_of_threads() -> None:
    # Given 40 lookups at once (the certificate probe once started one thread per lookup)
    seen: list[int] = []

    def lookup() -> None:
        resolve.addresses("localhost", 0, time.monotonic() + 10)
        seen.append(sum(t.name.startswith("rmxdiag-resolve") for t in threading.enumerate()))

    callers = [threading.Thread(target=lookup) for _ in range(40)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(30)
    # Then every lookup finished and the resolver never ran more than its pool's threads
    assert len(seen) == 40
    assert max(seen) <= resolve.POOL_THREADS
