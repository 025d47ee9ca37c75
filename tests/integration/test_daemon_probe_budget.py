"""/probe runs cut by a short scrape timeout answer only their caller; reloads end reuse and sharing.

Real ``rmxdiag serve`` processes, real registrar peers on loopback: a tarpit (accepts, never speaks)
and a slow non-TLS server (answers 4 KiB of garbage after 0.6 s: a full run says ``not_tls``).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import requests

from tests.support.mtls import tarpit
from tests.support.peers import socket_peer
from tests.support.served import daemon_dir, serve

DELAY = 0.6  # seconds the slow registrar waits before it answers


def _slow_garbage() -> contextlib.AbstractContextManager[int]:
    """A registrar that accepts, waits DELAY s, sends 4 KiB that is not TLS and closes; yields its port."""
    def answer(conn: socket.socket) -> None:
        time.sleep(DELAY)
        conn.sendall(b"X" * 4096)

    return socket_peer(answer)


def _scrape(url: str, timeout: str) -> tuple[float, str]:
    start = time.monotonic()
    answer = requests.get(url + "/probe?target=rmx-a", timeout=30,
                          headers={"X-Prometheus-Scrape-Timeout-Seconds": timeout})
    assert answer.status_code == 200
    return time.monotonic() - start, answer.text


def _mtls_reason(body: str) -> str:
    for line in body.splitlines():
        if line.startswith('rmxdiag_probe_failure_info{probe="mtls"'):
            return line.split('reason="', 1)[1].split('"', 1)[0]
    return ""


def test_a_short_scrape_timeout_never_poisons_other_scrapes_nor_blames_the_registrar(tmp_path: Path) -> None:
    """Given a daemon whose target's registrar answers non-TLS after 0.6 s (deadline 3 s, reuse 30 s),
    When a client scrapes /probe with a 0.6 s scrape timeout,
    Then its own answer blames no registrar (overloaded, not a timeout),
    And Prometheus' next scrape (10 s timeout) gets a new full run (not_tls), not the short one's result,
    And /metrics and the JSON report show the full run's result, never the short one's."""
    with _slow_garbage() as registrar:
        config, port = daemon_dir(tmp_path, {"rmx-a": registrar}, "server:\n  probe_reuse: 30\n", deadline=3)
        with serve(config, port) as d:
            _, short = _scrape(d.url, "0.6")
            assert _mtls_reason(short) not in ("no_answer", "timeout"), short
            assert 'reason="overloaded"' in short, short
            seconds, full = _scrape(d.url, "10")
            assert _mtls_reason(full) == "not_tls", full
            assert seconds >= DELAY, "the full scrape was answered from the short run"
            metrics = requests.get(d.url + "/metrics", timeout=10).text
            report = requests.get(d.url + "/api/v1/report", timeout=10).text
    # The published state is the full run's: the registrar answered something that is not TLS.
    assert _mtls_reason(metrics) == "not_tls", metrics
    assert "not TLS" in report and '"overloaded"' not in report


def test_a_reload_ends_reuse_and_in_flight_sharing(tmp_path: Path) -> None:
    """Given a daemon whose target's registrar is a tarpit (deadline 3 s, reuse 30 s),
    When a scrape starts a run, and the config is changed to a registrar that answers non-TLS after
    0.6 s and reloaded while that run is in flight,
    Then a scrape after the reload runs the new registrar (not_tls, well before the old run's deadline),
    And after the old run ended, a reload of the unchanged config makes the next scrape run again."""
    with tarpit() as silent, _slow_garbage() as garbage:
        config, port = daemon_dir(tmp_path, {"rmx-a": silent},
                                  "server:\n  probe_reuse: 30\n  enable_lifecycle: true\n", deadline=3)
        with serve(config, port) as d:
            first: list[tuple[float, str]] = []
            old = threading.Thread(target=lambda: first.append(_scrape(d.url, "10")))
            old.start()
            time.sleep(0.3)  # the first run is in flight (it lasts the 3 s deadline)
            config.write_text(config.read_text().replace(f"port: {silent}\n", f"port: {garbage}\n"))
            assert requests.post(d.url + "/-/reload", timeout=10).status_code == 200
            seconds, after = _scrape(d.url, "10")
            assert _mtls_reason(after) == "not_tls", after
            assert seconds < 2.5, f"the scrape after the reload waited {seconds:.1f}s for the old run"
            old.join(30)
            assert _mtls_reason(first[0][1]) == "no_answer"
            # The new registrar's result is reused within probe_reuse...
            seconds, again = _scrape(d.url, "10")
            assert _mtls_reason(again) == "not_tls" and seconds < DELAY
            # ...until a reload (files the target names may have been fixed in place).
            assert requests.post(d.url + "/-/reload", timeout=10).status_code == 200
            seconds, rerun = _scrape(d.url, "10")
            assert _mtls_reason(rerun) == "not_tls" and seconds >= DELAY, f"reused after a reload ({seconds:.2f}s)"


def test_a_short_scrape_whose_run_concluded_becomes_the_targets_state(tmp_path: Path) -> None:
    """Given a daemon whose target's registrar port is closed (the kernel refuses at once; deadline 3 s),
    When Prometheus scrapes /probe with a scrape timeout below the deadline (0.9 s),
    Then the cut run concluded (refused: the budget made no difference) and it is the state that
    /metrics and the JSON report show, as a Prometheus with its default scrape timeout expects."""
    from tests.support.peers import free_port

    closed = free_port()
    config, port = daemon_dir(tmp_path, {"rmx-a": closed}, "", deadline=3)
    with serve(config, port) as d:
        _, short = _scrape(d.url, "0.9")
        assert _mtls_reason(short) == "refused", short
        metrics = requests.get(d.url + "/metrics", timeout=10).text
    assert _mtls_reason(metrics) == "refused", metrics
