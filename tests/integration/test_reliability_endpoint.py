"""The endpoint of the real daemon (`rmxdiag serve`) under load and abuse: /probe budgets, parse errors,
malformed requests, the lifecycle endpoint, the listen backlog and auth schemes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from tests.support import mtls as peers
from tests.support.served import daemon_dir, serve

pytestmark = [pytest.mark.peer, pytest.mark.slow]


async def _scrape(session: aiohttp.ClientSession, url: str, target: str, timeout: str) -> tuple[int, float, str]:
    start = time.monotonic()
    async with session.get(url + "/probe", params={"target": target},
                           headers={"X-Prometheus-Scrape-Timeout-Seconds": timeout}) as response:
        body = await response.text()
    return response.status, time.monotonic() - start, body


def test_probe_answers_within_the_scrape_timeout_under_200_concurrent_scrapes(tmp_path: Path) -> None:
    """Given a target whose registrar is a tarpit (deadline 10 s) and a fast target, When 200 scrapes of the
    tarpit target (X-Prometheus-Scrape-Timeout-Seconds: 2) run at once and the fast target is scraped
    meanwhile, Then every scrape answers 200 within 2.5 s with probe_success 0 for the tarpit, and the
    fast target's scrape is not delayed by them (under 1 s)."""
    with peers.tarpit() as tarpit:
        config, port = daemon_dir(tmp_path, {"rmx-slow": tarpit, "rmx-fast": 9}, deadline=10)
        with serve(config, port) as d:
            async def main() -> tuple[list[tuple[int, float, str]], tuple[int, float, str]]:
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                                 timeout=aiohttp.ClientTimeout(total=30)) as session:
                    slow = [asyncio.create_task(_scrape(session, d.url, "rmx-slow", "2")) for _ in range(200)]
                    await asyncio.sleep(0.5)  # the slow scrapes are in
                    fast = await _scrape(session, d.url, "rmx-fast", "2")
                    return list(await asyncio.gather(*slow)), fast

            slow, fast = asyncio.run(main())
    durations = sorted(s for _, s, _ in slow)
    late = sum(1 for s in durations if s > 2.5)
    print(f"200 concurrent tarpit scrapes (timeout 2 s): {late} over 2.5 s, median {durations[100]:.2f} s, max "
          f"{durations[-1]:.2f} s; fast target scraped meanwhile in {fast[1]:.2f} s")
    assert all(status == 200 for status, _, _ in slow) and fast[0] == 200
    assert late == 0
    assert all('rmxdiag_probe_success{probe="mtls",target="rmx-slow"} 0.0' in body
               or 'probe="engine"' in body for _, _, body in slow)
    assert fast[1] < 1.0 and 'target="rmx-fast"' in fast[2]


def test_a_scrape_that_gets_no_probe_slot_answers_at_its_budget(tmp_path: Path) -> None:
    """Given four tarpit targets holding all four probe slots (concurrency 1, scrape timeout 6 s), When a
    fast target is scraped with a 2 s timeout meanwhile, Then it answers 200 within 2 s with
    probe_success 0 and the reason, and the slow scrapes still answer within their own 6 s."""
    with peers.tarpit() as tarpit:
        slow_targets = {f"rmx-slow{i}": tarpit for i in range(4)}
        config, port = daemon_dir(tmp_path, {**slow_targets, "rmx-fast": 9}, deadline=10)
        config.write_text(config.read_text().replace("  deadline: 10\n", "  deadline: 10\n  concurrency: 1\n", 1))
        with serve(config, port) as d:
            async def main() -> tuple[list[tuple[int, float, str]], tuple[int, float, str]]:
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
                    slow = [asyncio.create_task(_scrape(session, d.url, name, "6")) for name in slow_targets]
                    await asyncio.sleep(0.5)
                    fast = await _scrape(session, d.url, "rmx-fast", "2")
                    return list(await asyncio.gather(*slow)), fast

            slow, fast = asyncio.run(main())
    print(f"no slot: fast target answered {fast[0]} in {fast[1]:.2f} s; slow ones in "
          f"{', '.join(f'{s:.2f}' for _, s, _ in slow)} s")
    assert fast[0] == 200 and fast[1] < 2.0
    assert 'rmxdiag_probe_success{probe="engine",target="rmx-fast"} 0.0' in fast[2]
    assert 'reason="deadline"' in fast[2]
    assert all(status == 200 and seconds < 6.0 for status, seconds, _ in slow)
