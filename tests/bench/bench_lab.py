"""Lab benchmark: `rmxdiag lab` well within a minute; the memory-BIO registrar costs little.

Rows: the default lab run against its own start-up cost (``rmxdiag lab --list``) and the 60 s
goal; every scenario once (slowest and total); then 120 MTLS + OPTIONS exchanges (8 at a time)
against the lab registrar and, side by side, against a plain ``ssl.wrap_socket`` server with the
same context, to price the memory-BIO design (which buys the Schannel-style reset and the
transcript for the capture).
"""

from __future__ import annotations

import concurrent.futures as cf
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from daemon.lab.registrar import LabRegistrar
from daemon.lab.scenarios import SCENARIOS
from daemon.lab.wire import sip_response
from tests.bench.common import Row, interleaved, print_table
from tests.support.lab import client_context, make_files, options_exchange

RMXDIAG = [sys.executable, "-m", "daemon.cli"]
EXCHANGES, PARALLEL = 120, 8


class _PlainServer:
    """Baseline: blocking ssl sockets, one thread per connection, same context, fixed 200."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.ctx = ctx
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = tls.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                tls.sendall(sip_response(data, 200, "OK"))
        except (OSError, ssl.SSLError):
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


def _exchanges(address: tuple[str, int], ctx: ssl.SSLContext) -> float:
    start = time.perf_counter()
    with cf.ThreadPoolExecutor(PARALLEL) as pool:
        answers = list(pool.map(lambda _: options_exchange(address, ctx), range(EXCHANGES)))
    elapsed = time.perf_counter() - start
    assert all(a.startswith(b"SIP/2.0 200") for a in answers), "an exchange did not get 200"
    return elapsed


def _registrar_rows() -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        files = make_files(Path(tmp))
        m = files.good
        client = client_context(m)
        lab = LabRegistrar(m.fe_cert, m.fe_key, m.fe_trust, ["rmx.lab.example"], max_connections=64).start()
        plain = _PlainServer(lab.context)
        try:
            _exchanges(lab.address, client)  # warm-up both
            _exchanges(plain.sock.getsockname()[:2], client)
            lab_s, plain_s = [], []
            for _ in range(3):  # interleaved, medians
                lab_s.append(_exchanges(lab.address, client))
                plain_s.append(_exchanges(plain.sock.getsockname()[:2], client))
        finally:
            lab.stop()
            plain.close()
    lab_t, plain_t = sorted(lab_s)[1], sorted(plain_s)[1]
    return [Row(f"lab registrar: {EXCHANGES} MTLS+OPTIONS, {PARALLEL} at once", lab_t, "s",
                f"plain ssl {plain_t:.3f} s", lab_t / plain_t, "<= 1.5x plain", lab_t / plain_t <= 1.5)]


def main() -> int:
    """Measure and print the table."""
    default = interleaved({"lab": [*RMXDIAG, "lab"], "list": [*RMXDIAG, "lab", "--list"]}, runs=3)
    rows = [Row("rmxdiag lab (default scenario), median of 3", default["lab"], "s",
                f"--list {default['list']:.3f} s", default["lab"] / default["list"], "<= 60 s",
                default["lab"] <= 60)]
    times: dict[str, float] = {}
    for name in SCENARIOS:
        start = time.perf_counter()
        subprocess.run([*RMXDIAG, "lab", "--scenario", name, "--format", "json"], capture_output=True,
                       timeout=120, check=False)
        times[name] = time.perf_counter() - start
    slowest = max(times, key=lambda n: times[n])
    rows.append(Row(f"slowest scenario ({slowest})", times[slowest], "s", "", None, "<= 60 s", times[slowest] <= 60))
    rows.append(Row(f"all {len(times)} scenarios, one after another", sum(times.values()), "s", "", None, "", None))
    rows += _registrar_rows()
    return print_table("rmxdiag lab", rows)


if __name__ == "__main__":
    sys.exit(main())
