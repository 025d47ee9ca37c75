"""MTLS probe engine: client CPU per MTLS+OPTIONS probe against a local Kamailio, side by side with
a bare stdlib-ssl loop doing the same exchange and with Prometheus blackbox_exporter's tcp prober
(TLS + client certificate + OPTIONS via query_response); plus a 200-target sweep with 10% tarpits.

Goals (issue 3): engine <= 1.3x the bare loop, <= 0.75x blackbox; sweep (deadline 2 s,
concurrency 64) done within deadline + 0.5 s. Medians of 5 interleaved rounds.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import statistics
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from daemon.lab import pki
from probes.mtls import probe as mtls
from probes.target import Registrar
from tests.bench.common import Row, print_table
from tests.support.kamailio import kamailio_registrar
from tests.support.mtls import tarpit
from tests.support.mtls_sweep import SweepJob, sweep
from tests.support.peers import free_port, kill_group, wait_for_port

POOL = "pool.lab.example"
ROUNDS, PER_ROUND = 5, 100  # 100 probes: blackbox CPU is read in 10 ms clock ticks
OPTIONS = ("OPTIONS sip:pool.lab.example:5061;transport=tls SIP/2.0\r\n"
           "Via: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bKbench;rport\r\nMax-Forwards: 70\r\n"
           "From: <sip:rmx.lab.example>;tag=1\r\nTo: <sip:pool.lab.example>\r\nCall-ID: bench\r\n"
           "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")


def _bare_loop(port: int, ctx: ssl.SSLContext) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname=POOL) as tls:
        tls.sendall(OPTIONS.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = tls.recv(4096)
            if not chunk:
                break
            data += chunk
        assert data.startswith(b"SIP/2.0 200"), data[:40]


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _per_probe_cpu(fn: Callable[[], None]) -> float:
    start = time.process_time()
    for _ in range(PER_ROUND):
        fn()
    return (time.process_time() - start) / PER_ROUND


def _blackbox_config(d: Path, paths: dict[str, Path], ca: Path) -> Path:
    # blackbox appends "\n" to each send: end the request with "\r\n\r" so the wire gets CRLF CRLF.
    send = OPTIONS[:-1].replace("\r", "\\r").replace("\n", "\\n")
    cfg = d / "blackbox.yml"
    cfg.write_text(f"""modules:
  sip_mtls:
    prober: tcp
    timeout: 5s
    tcp:
      tls: true
      tls_config:
        ca_file: {ca}
        cert_file: {paths['cert']}
        key_file: {paths['key']}
        server_name: {POOL}
      query_response:
        - send: "{send}"
        - expect: "^SIP/2.0 200"
""")
    return cfg


def main() -> int:
    """Measure and print the table."""
    d = Path(tempfile.mkdtemp(prefix="rmxdiag-bench-probe-"))
    root = pki.root_ca()
    issuing = pki.intermediate_ca(root)
    fe = pki.issue(pki.name("fe01.lab.example"), issuing, sans=[POOL], ip_sans=["127.0.0.1"])
    rmx = pki.issue(pki.name("rmx.lab.example"), issuing)
    ca = d / "ca.pem"
    ca.write_bytes(pki.pem(root.cert) + pki.pem(issuing.cert))
    paths = rmx.write(d, "rmx")
    full = d / "rmx-full.pem"
    full.write_bytes(rmx.cert_pem + rmx.chain_pem)
    spec = mtls.ClientSpec(cert=paths["cert"], key=paths["key"], chain=paths["chain"], ca_bundle=ca)
    rows: list[Row] = []
    with kamailio_registrar(d / "kam", fe, ca, trusted_cn="rmx.lab.example") as kam:
        registrar = Registrar(host="127.0.0.1", port=kam.port, sni=POOL)
        cache: dict[object, object] = {}

        def engine() -> None:
            out = mtls.probe([registrar], spec, deadline=time.monotonic() + 5, cache=cache)
            assert out.failure is None, out.failure

        bare_ctx = ssl.create_default_context(cafile=str(ca))
        bare_ctx.load_cert_chain(full, paths["key"])
        bbe = shutil.which("prometheus-blackbox-exporter")
        samples: dict[str, list[float]] = {"engine": [], "bare": [], "blackbox": []}
        proc = None
        bb_port = free_port()
        if bbe:
            argv = [bbe, f"--config.file={_blackbox_config(d, {'cert': full, 'key': paths['key']}, ca)}",
                    f"--web.listen-address=127.0.0.1:{bb_port}"]
            with (d / "blackbox.log").open("wb") as log:
                proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            wait_for_port(bb_port, proc=proc)
        url = f"http://127.0.0.1:{bb_port}/probe?module=sip_mtls&target=127.0.0.1:{kam.port}"
        try:
            engine()
            _bare_loop(kam.port, bare_ctx)
            for _ in range(ROUNDS):
                samples["engine"].append(_per_probe_cpu(engine))
                samples["bare"].append(_per_probe_cpu(lambda: _bare_loop(kam.port, bare_ctx)))
                if proc is not None:
                    before = _proc_cpu(proc.pid)
                    for _ in range(PER_ROUND):
                        with urllib.request.urlopen(url, timeout=10) as resp:
                            assert b"probe_success 1" in resp.read()
                    samples["blackbox"].append((_proc_cpu(proc.pid) - before) / PER_ROUND)
        finally:
            if proc is not None:
                kill_group(proc)
        med = {k: statistics.median(v) * 1000 for k, v in samples.items() if v}
        rows.append(Row("bare stdlib ssl loop, CPU/probe", med["bare"], "ms"))
        rows.append(Row("engine vs bare loop, CPU/probe", med["engine"], "ms", f"{med['bare']:.3f} ms bare",
                        med["engine"] / med["bare"], "<= 1.30x", med["engine"] / med["bare"] <= 1.3))
        if "blackbox" in med:
            rows.append(Row("blackbox_exporter tcp+TLS+query, CPU/probe", med["blackbox"], "ms"))
            ratio = med["engine"] / med["blackbox"]
            rows.append(Row("engine vs blackbox_exporter, CPU/probe", med["engine"], "ms",
                            f"{med['blackbox']:.3f} ms blackbox", ratio, "<= 0.75x", ratio <= 0.75))
        else:
            print("prometheus-blackbox-exporter is not installed: blackbox comparison skipped")

        with tarpit() as pit:
            jobs = [SweepJob(f"t{i}", (Registrar(host="127.0.0.1", port=pit if i % 10 == 0 else kam.port,
                                                 sni=POOL),), spec) for i in range(200)]
            start = time.monotonic()
            outcomes = sweep(jobs, deadline_seconds=2.0, concurrency=64, cache=cache)
            wall = time.monotonic() - start
        healthy = sum(o.failure is None for o in outcomes)
        timeouts = sum(o.failure == ("tls", "no_answer") for o in outcomes)
        rows.append(Row(f"sweep 200 (10% tarpit) wall, ok={healthy} tarpit={timeouts}", wall, "s",
                        "deadline 2.0 s", wall / 2.0, "<= 2.5 s", wall <= 2.5 and healthy == 180 and timeouts == 20))
    return print_table("mtls probe engine", rows)
