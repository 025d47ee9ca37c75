"""CPU per ``/probe`` scrape: Prometheus scraping `rmxdiag serve` (``schedule: false``), each scrape one
target = its own client certificate + one registrar (two real Kamailio Front Ends), at 16 and 64
scrapes in flight; side by side with Debian's prometheus-blackbox-exporter (a ``tcp`` module per
target: TLS with that target's certificate, the SIP OPTIONS, ``^SIP/2.0 200`` expected) and a bare
stdlib-ssl loop doing the same exchange from ready contexts with as many threads.

Each contender is its own process; its CPU is the kernel's accounting (utime + stime, reaped
children included, from ``/proc``) over a round of 3 scrapes of each of the 64 targets, the
scrapes of one target in sequence (so no two share a run). Rounds alternate between the
contenders; medians. Goals (issue 16): rmxdiag <= 0.75x blackbox and <= 1.5x the bare loop, at
both concurrencies. The certificate files do not change between scrapes, so their parsing and
verification is not redone; the expiry checks and the network are.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import http.client
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.bench.bench_run import CACHE, child_env
from tests.bench.common import Row, print_table
from tests.support.fleet import (
    OPTIONS,
    POOL,
    blackbox_config,
    blackbox_exporter,
    fleet_pki,
    proc_cpu,
    registrars,
    write_config,
)
from tests.support.peers import free_port, kill_group, wait_for_port

TARGETS, PER_TARGET, ROUNDS = 64, 3, 5
CONCURRENCIES = (16, 64)
DEADLINE = 5.0
HEADERS = {"X-Prometheus-Scrape-Timeout-Seconds": f"{DEADLINE + 1:g}"}

# The bare loop: one ready SSLContext per target (its certificate and key loaded once), threads
# doing TLS + OPTIONS + reading the 200; driven over stdin ("<count> <concurrency>" -> "done").
_BARE = r"""
import concurrent.futures as cf, socket, ssl, sys
from pathlib import Path
ca, pool, ports, leaves = sys.argv[1], sys.argv[2], [int(p) for p in sys.argv[3].split(",")], sys.argv[4:]
request = sys.stdin.readline().encode().decode("unicode_escape").encode()
contexts = []
for i, (cert, key) in enumerate(zip(leaves[::2], leaves[1::2])):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(cert, key)
    contexts.append((ctx, ports[i % len(ports)]))
def one(i):
    ctx, port = contexts[i % len(contexts)]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname=pool) as tls:
        tls.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = tls.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.startswith(b"SIP/2.0 200")
print("ready", flush=True)
for line in sys.stdin:
    count, concurrency = map(int, line.split())
    with cf.ThreadPoolExecutor(concurrency) as pool_:
        ok = sum(pool_.map(one, sorted(range(count), key=lambda i: (i // len(contexts), i))))
    print(ok, flush=True)
"""


def scrape_round(port: int, paths: list[str], concurrency: int, success: Callable[[int, bytes], bool]) -> int:
    """Scrape every path PER_TARGET times from ``concurrency`` threads, each with one keep-alive HTTP
    connection like Prometheus (one path's scrapes in sequence); how many succeeded."""
    def worker(slot: int) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        ok = 0
        try:
            for _ in range(PER_TARGET):
                for index in range(slot, len(paths), concurrency):
                    conn.request("GET", paths[index], headers=HEADERS)
                    ok += success(index, conn.getresponse().read())
        finally:
            conn.close()
        return ok

    with cf.ThreadPoolExecutor(concurrency) as pool:
        return sum(pool.map(worker, range(concurrency)))


def _ours(index: int, body: bytes) -> bool:
    return f'rmxdiag_probe_success{{probe="mtls",target="rmx-{index:04d}"}} 1.0'.encode() in body


def _theirs(_: int, body: bytes) -> bool:
    return b"\nprobe_success 1" in body


def main() -> int:
    """Measure and print the table."""
    files = fleet_pki(CACHE / "fleet-1000", 1000)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="rmxdiag-bench-scrape-") as tmp, contextlib.ExitStack() as stack:
        d = Path(tmp)
        kam = stack.enter_context(registrars(d, files, 2))
        listen = free_port()
        config = d / "rmxdiag.yaml"
        # probe_reuse 0: each scrape is a run (the bench measures runs, not reused results).
        write_config(config, files, kam, deadline=DEADLINE, concurrency=max(CONCURRENCIES), only=TARGETS,
                     listen=f"127.0.0.1:{listen}", schedule=False, extra="server:\n  probe_reuse: 0\n")
        with (d / "serve.log").open("wb") as log:
            serve = subprocess.Popen([sys.executable, "-m", "daemon.cli", "serve", "-c", str(config)], stdout=log,
                                     stderr=subprocess.STDOUT, env={**child_env(), "MALLOC_ARENA_MAX": "2"},
                                     start_new_session=True)
        stack.callback(kill_group, serve)
        wait_for_port(listen, proc=serve, timeout=30)
        bb_port, bb_pid = stack.enter_context(blackbox_exporter(d, blackbox_config(d / "bb.yml", files,
                                                                                   timeout=DEADLINE, only=TARGETS)))
        leaves = [str(p) for leaf in files.leaves[:TARGETS] for p in leaf]
        bare = subprocess.Popen([sys.executable, "-c", _BARE, str(files.ca), POOL, ",".join(map(str, kam)), *leaves],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
        stack.callback(kill_group, bare)
        assert bare.stdin is not None and bare.stdout is not None
        bare.stdin.write(OPTIONS.encode("unicode_escape").decode() + "\n")
        bare.stdin.flush()
        assert bare.stdout.readline().strip() == "ready"

        def bare_round(concurrency: int) -> int:
            bare.stdin.write(f"{TARGETS * PER_TARGET} {concurrency}\n")  # type: ignore[union-attr]
            bare.stdin.flush()  # type: ignore[union-attr]
            return int(bare.stdout.readline())  # type: ignore[union-attr]

        ours = [f"/probe?target=rmx-{i:04d}" for i in range(TARGETS)]
        theirs = [f"/probe?module=rmx-{i:04d}&target=127.0.0.1:{kam[i % len(kam)]}" for i in range(TARGETS)]
        for concurrency in CONCURRENCIES:
            contenders: dict[str, tuple[int, Callable[[], int]]] = {
                "rmxdiag": (serve.pid, functools.partial(scrape_round, listen, ours, concurrency, _ours)),
                "blackbox": (bb_pid, functools.partial(scrape_round, bb_port, theirs, concurrency, _theirs)),
                "bare": (bare.pid, functools.partial(bare_round, concurrency))}
            for _, run in contenders.values():  # warm-up: contexts, parsed files, connections
                run()
            samples: dict[str, list[float]] = {k: [] for k in contenders}
            oks: dict[str, list[int]] = {k: [] for k in contenders}
            for _ in range(ROUNDS):
                for name, (pid, run) in contenders.items():
                    before = proc_cpu(pid)
                    ok = run()
                    samples[name].append((proc_cpu(pid) - before) / (TARGETS * PER_TARGET) * 1000)
                    oks[name].append(ok)
            med = {k: statistics.median(v) for k, v in samples.items()}
            print(f"concurrency {concurrency}: ms/probe {({k: [round(x, 2) for x in v] for k, v in samples.items()})}; "
                  f"ok {oks} (of {TARGETS * PER_TARGET})")
            complete = all(min(v) == TARGETS * PER_TARGET for v in oks.values())
            rows.append(Row(f"bare stdlib-ssl loop, CPU/probe, {concurrency} in flight", med["bare"], "ms"))
            rows.append(Row(f"blackbox_exporter, CPU/probe, {concurrency} in flight", med["blackbox"], "ms"))
            ratio_bb = med["rmxdiag"] / med["blackbox"]
            rows.append(Row(f"/probe CPU/scrape vs blackbox, {concurrency} in flight", med["rmxdiag"], "ms",
                            f"{med['blackbox']:.2f} ms blackbox", ratio_bb, "<= 0.75x", ratio_bb <= 0.75 and complete))
            ratio_bare = med["rmxdiag"] / med["bare"]
            rows.append(Row(f"/probe CPU/scrape vs bare loop, {concurrency} in flight", med["rmxdiag"], "ms",
                            f"{med['bare']:.2f} ms bare", ratio_bare, "<= 1.50x", ratio_bare <= 1.5 and complete))
    return print_table("/probe scrape CPU vs blackbox_exporter and a bare stdlib-ssl loop", rows)


if __name__ == "__main__":
    raise SystemExit(main())
