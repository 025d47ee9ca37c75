"""A fleet of RMX targets for scale tests and benches: each with its OWN certificate and key file.

Every real RMX has its own key pair, so no cache across targets may hide the cost of loading one:
:func:`fleet_pki` issues ``count`` leaf certificates (same CN, the one the Kamailio registrar
trusts; distinct RSA-2048 keys) under one issuing CA and writes them as PEM files, and
:func:`write_config` writes an ``rmxdiag`` configuration naming them. Key generation is the slow
part (tens of ms per key): it runs in a process pool, and a directory that already holds a complete
fleet of the same size is reused (a bench run twice generates it once).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import select
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from daemon.lab import pki
from tests.support.kamailio import kamailio_registrar
from tests.support.peers import free_port, need, started, wait_for_port

POOL = "pool.lab.example"
RMX_CN = "rmx.lab.example"
CDP = "http://pki.lab.example/issuing.crl"  # present (the RMX checks want one); fetched only when asked


@dataclass(frozen=True)
class FleetFiles:
    """The PKI of a fleet on disk: CA bundle, the Front End identity, one (cert, key) per target."""

    ca: Path
    fe: pki.Issued
    leaves: tuple[tuple[Path, Path], ...]  # (certificate + chain PEM, key PEM, mode 0600)


def _key_pem(_: int) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _keys(count: int) -> list[bytes]:
    with cf.ProcessPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        return list(pool.map(_key_pem, range(count), chunksize=8))


def _reuse(directory: Path, count: int) -> FleetFiles | None:
    stamp = directory / "complete"
    if not stamp.exists() or stamp.read_text() != str(count):
        return None
    chain = x509.load_pem_x509_certificates((directory / "fe.pem").read_bytes())
    key = serialization.load_pem_private_key((directory / "fe.key").read_bytes(), None)
    fe = pki.Issued(chain[0], key, chain[1:])  # type: ignore[arg-type]
    leaves = tuple((directory / f"rmx-{i:04d}.pem", directory / f"rmx-{i:04d}.key") for i in range(count))
    return FleetFiles(directory / "ca.pem", fe, leaves)


def fleet_pki(directory: Path, count: int) -> FleetFiles:
    """``count`` distinct client certificates (same CA, same trusted CN) written under ``directory``."""
    found = _reuse(directory, count)
    if found is not None:
        return found
    directory.mkdir(parents=True, exist_ok=True)
    root = pki.root_ca()
    issuing = pki.intermediate_ca(root)
    fe = pki.issue(pki.name("fe01.lab.example"), issuing, sans=[POOL], ip_sans=["127.0.0.1"])
    ca = directory / "ca.pem"
    ca.write_bytes(pki.pem(root.cert) + pki.pem(issuing.cert))
    leaves = []
    for index, key_pem in enumerate(_keys(count)):
        key = serialization.load_pem_private_key(key_pem, None, unsafe_skip_rsa_key_validation=True)
        issued = pki.issue(pki.name(RMX_CN), issuing, key=key, cdp=[CDP])  # type: ignore[arg-type]
        cert_path, key_path = directory / f"rmx-{index:04d}.pem", directory / f"rmx-{index:04d}.key"
        cert_path.write_bytes(issued.cert_pem + issued.chain_pem)
        key_path.touch(mode=0o600)
        key_path.write_bytes(key_pem)
        leaves.append((cert_path, key_path))
    (directory / "fe.pem").write_bytes(fe.cert_pem + fe.chain_pem)
    (directory / "fe.key").touch(mode=0o600)
    (directory / "fe.key").write_bytes(fe.key_pem)
    (directory / "complete").write_text(str(count))
    return FleetFiles(ca, fe, tuple(leaves))


def write_config(path: Path, files: FleetFiles, ports: Sequence[int], *, deadline: float, concurrency: int,
                 tarpit_port: int | None = None, tarpit_every: int = 10, interval: float = 60.0,
                 listen: str = "127.0.0.1:9817", schedule: bool = True, extra: str = "",
                 only: int | None = None) -> list[str]:
    """Write an rmxdiag config with one target per leaf (the first ``only`` ones); return the target names.

    Target ``i`` registers with ``ports[i % len(ports)]`` (Kamailio instances), or with the
    tarpit when ``tarpit_port`` is set and ``i % tarpit_every == 0``.
    """
    names, lines = [], []
    for index, (cert, key) in enumerate(files.leaves[:only]):
        name = f"rmx-{index:04d}"
        names.append(name)
        pit = tarpit_port is not None and index % tarpit_every == 0
        port = tarpit_port if pit else ports[index % len(ports)]
        lines += [f"  - name: {name}",
                  f"    fqdn: {RMX_CN}",
                  "    certificate:",
                  f"      cert: {cert}",
                  f"      key: {key}",
                  f"    ca_bundle: {files.ca}",
                  "    registrars:",
                  "      - host: 127.0.0.1",
                  f"        port: {port}",
                  f"        sni: {POOL}"]
    path.write_text(f"""settings:
  listen: "{listen}"
  interval: {interval:g}
  concurrency: {concurrency}
  deadline: {deadline:g}
  state_dir: {path.parent / 'state'}
schedule: {'true' if schedule else 'false'}
{extra}targets:
""" + "\n".join(lines) + "\n")
    return names


@contextlib.contextmanager
def holding_tarpit() -> Iterator[int]:
    """A port that accepts every connection and never says a byte, until the client closes it.

    Unlike a listener that never accepts, its backlog never fills: a bench can run round after
    round against it and every connect still completes.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    listener.setblocking(False)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            ready, _, _ = select.select([listener, *held], [], [], 0.1)
            for sock in ready:
                if sock is listener:
                    with contextlib.suppress(BlockingIOError):
                        held.append(listener.accept()[0])
                    continue
                try:
                    closed = not sock.recv(65536)
                except OSError:
                    closed = True
                if closed:
                    held.remove(sock)
                    sock.close()

    thread = threading.Thread(target=serve, name="tarpit", daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for sock in [listener, *held]:
            sock.close()


@contextlib.contextmanager
def registrars(directory: Path, files: FleetFiles, count: int) -> Iterator[list[int]]:
    """``count`` Kamailio Front Ends (children=1 each: Kamailio 5.6 with OpenSSL 3 is stable so) trusting the fleet."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(kamailio_registrar(directory / f"kamailio{i}", files.fe, files.ca,
                                                      trusted_cn=RMX_CN)).port for i in range(count)]


def blackbox_config(path: Path, files: FleetFiles, *, timeout: float, only: int | None = None) -> Path:
    """A blackbox_exporter config with one ``tcp`` module per fleet leaf: TLS with that client
    certificate, then the SIP OPTIONS, expecting ``^SIP/2.0 200`` (module ``rmx-NNNN``)."""
    # blackbox appends "\n" to each send: end the request with "\r\n\r" so the wire gets CRLF CRLF.
    send = OPTIONS[:-1].replace("\r", "\\r").replace("\n", "\\n")
    modules = []
    for index, (cert, key) in enumerate(files.leaves[:only]):
        modules.append(f"""  rmx-{index:04d}:
    prober: tcp
    timeout: {timeout:g}s
    tcp:
      tls: true
      tls_config:
        ca_file: {files.ca}
        cert_file: {cert}
        key_file: {key}
        server_name: {POOL}
      query_response:
        - send: "{send}"
        - expect: "^SIP/2.0 200"
""")
    path.write_text("modules:\n" + "".join(modules))
    return path


@contextlib.contextmanager
def blackbox_exporter(directory: Path, config: Path) -> Iterator[tuple[int, int]]:
    """Debian's prometheus-blackbox-exporter with ``config`` on a free port: yields (port, pid); killed by PID."""
    binary = need("prometheus-blackbox-exporter")
    port = free_port()
    argv = [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"]
    with started(argv, directory / "blackbox.log") as proc:
        wait_for_port(port, proc=proc)
        yield port, proc.pid


OPTIONS = ("OPTIONS sip:pool.lab.example:5061;transport=tls SIP/2.0\r\n"
           "Via: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bKbench;rport\r\nMax-Forwards: 70\r\n"
           "From: <sip:rmx.lab.example>;tag=1\r\nTo: <sip:pool.lab.example>\r\nCall-ID: bench\r\n"
           "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")


def proc_cpu(pid: int) -> float:
    """CPU seconds of process ``pid`` and of its reaped children (utime + stime + cutime + cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")
