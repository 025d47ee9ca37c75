"""A real Kamailio 5.6 with its TLS module as a Lync Front End stand-in, for tests and benches.

What it does, like a Front End's MTLS port: it requires and verifies a client certificate
against ``ca_pem``; an ``OPTIONS`` from a peer whose certificate CN equals ``trusted_cn`` gets
``200 OK``; any other request gets ``403`` with an ``ms-diagnostics: 1010`` header (the FE's
"certificate trust with next hop could not be established"). Other methods get ``405``.

Usage::

    with kamailio_registrar(tmp_path, lab_pki.fe, lab_pki.ca_bundle(tmp_path),
                            trusted_cn=lab_pki.fqdn) as fe:
        probe(fe.host, fe.port, ...)

or the pytest fixture ``kamailio_fe`` (a factory taking the same keyword arguments), see
:func:`kamailio_fe`.

Measured constraints: Debian 12's Kamailio 5.6.3 with OpenSSL 3 crashes within a
few hundred TLS connections with several children, so it runs with ``children=1`` (start several
instances for parallelism); ``-x tlsf`` because the default debug allocator triples its CPU per
handshake; foreground ``-DD -E`` so the process group can be killed as a whole. Kamailio cannot
bind port 0, so a free port is picked first (a tiny race, retried once).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon.lab import pki
from tests.support.peers import free_port, kill_group, need

TLS_MODULE = "/usr/lib/*/kamailio/modules/tls.so"  # kamailio-tls-modules, in the multiarch directory
MS_DIAG_REASON = "Certificate trust with next hop could not be established"
MS_DIAG_SOURCE = "fe01.lab.example"

_CFG = r"""#!KAMAILIO
debug=1
log_stderror=yes
fork=yes
children=1
tcp_children=1
auto_aliases=no
disable_tcp=no
enable_tls=yes
tcp_connection_lifetime=30
listen=tls:{host}:{port}
mpath="{modules}"
loadmodule "tls.so"
loadmodule "sl.so"
loadmodule "textops.so"
loadmodule "pv.so"
loadmodule "xlog.so"
modparam("tls", "config", "{tls_cfg}")

request_route {{
    if (!is_method("OPTIONS")) {{
        sl_send_reply("405", "Method Not Allowed");
        exit;
    }}
    if ($tls_peer_subject_cn == "{trusted_cn}") {{
        sl_send_reply("200", "OK");
        exit;
    }}
    xlog("L_NOTICE", "untrusted peer cn=[$tls_peer_subject_cn]\n");
    append_to_reply("ms-diagnostics: 1010;reason=\"{reason}\";source=\"{source}\"\r\n");
    sl_send_reply("403", "Forbidden");
    exit;
}}
"""

_TLS_CFG = """[server:default]
method = {method}
verify_certificate = {verify}
require_certificate = {require}
private_key = {key}
certificate = {cert}
ca_list = {ca}

[client:default]
verify_certificate = no
require_certificate = no
"""


@dataclass(frozen=True)
class Registrar:
    """A running Kamailio registrar: where it listens and its files."""

    host: str
    port: int
    log: Path
    cfg: Path
    pid: int

    @property
    def address(self) -> str:
        """``host:port``."""
        return f"{self.host}:{self.port}"


def _write_config(workdir: Path, port: int, server: pki.Issued, ca_pem: Path, trusted_cn: str, *,
                  method: str, require_certificate: bool, modules: str) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    cert = workdir / "fe-cert.pem"
    key = workdir / "fe-key.pem"
    cert.write_bytes(server.cert_pem + server.chain_pem)
    key.touch(mode=0o600)
    key.write_bytes(server.key_pem)
    tls_cfg = workdir / "tls.cfg"
    yes_no = "yes" if require_certificate else "no"
    tls_cfg.write_text(_TLS_CFG.format(method=method, verify=yes_no, require=yes_no, key=key, cert=cert,
                                       ca=ca_pem.resolve()))
    cfg = workdir / "kamailio.cfg"
    cfg.write_text(_CFG.format(host="127.0.0.1", port=port, modules=modules, tls_cfg=tls_cfg,
                               trusted_cn=trusted_cn, reason=MS_DIAG_REASON, source=MS_DIAG_SOURCE))
    return cfg


def _wait_tls(port: int, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """True once a TLS handshake completes on ``port`` (False if kamailio exited)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # reviewed: readiness check only (no data exchanged); the tests verify the FE chain themselves.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as raw:
                with ctx.wrap_socket(raw) as tls:
                    tls.version()
                    return True
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError):
            pass  # accepted but closed before speaking TLS: not ready yet
        except ssl.SSLError:
            return True  # a TLS alert (e.g. no client certificate) is a TLS answer: it is up
        except OSError:
            pass  # refused: not listening yet
        time.sleep(0.05)
    raise TimeoutError(f"kamailio on 127.0.0.1:{port} did not complete a TLS handshake in {timeout}s")


@contextlib.contextmanager
def kamailio_registrar(workdir: Path, server: pki.Issued, ca_pem: Path, trusted_cn: str, *,
                       method: str = "TLSv1.2+", require_certificate: bool = True,
                       shm_mib: int = 64, timeout: float = 15.0) -> Iterator[Registrar]:
    """Run Kamailio as an MTLS Front End on 127.0.0.1; yield its address; kill its process group.

    ``server``: the FE certificate/key (its ``chain`` is sent after it); ``ca_pem``: the CAs it
    accepts client certificates from; ``trusted_cn``: the client CN that gets 200 to OPTIONS.
    ``method``: Kamailio's tls ``method`` (``TLSv1.2+``, ``TLSv1.2``, ``TLSv1.3``...);
    ``require_certificate=False`` makes it a plain TLS listener (no client certificate request).
    """
    binary = need("kamailio")
    modules = str(Path(need(TLS_MODULE)).parent)
    workdir.mkdir(parents=True, exist_ok=True)
    for attempt in range(2):
        port = free_port()
        cfg = _write_config(workdir, port, server, ca_pem, trusted_cn, method=method,
                            require_certificate=require_certificate, modules=modules)
        log = workdir / "kamailio.log"
        runtime = workdir / "run"
        runtime.mkdir(exist_ok=True)
        argv = [binary, "-f", str(cfg), "-DD", "-E", "-x", "tlsf", "-m", str(shm_mib), "-M", "8",
                "-Y", str(runtime), "-w", str(workdir)]
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        try:
            if _wait_tls(port, proc, timeout):
                yield Registrar("127.0.0.1", port, log, cfg, proc.pid)
                return
        finally:
            kill_group(proc)
        if attempt == 1:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"kamailio exited with {proc.returncode}:\n{tail}")


KamailioFactory = Callable[..., Registrar]


@pytest.fixture
def kamailio_fe(tmp_path: Path) -> Iterator[KamailioFactory]:
    """Given a factory ``start(server, ca_pem, trusted_cn, **kw) -> Registrar``; all stopped after.

    Takes the arguments of :func:`kamailio_registrar` except ``workdir`` (a fresh directory under
    ``tmp_path`` per instance).
    """
    with contextlib.ExitStack() as stack:
        count = 0

        def start(server: pki.Issued, ca_pem: Path, trusted_cn: str, **kw: object) -> Registrar:
            nonlocal count
            count += 1
            return stack.enter_context(kamailio_registrar(tmp_path / f"kamailio{count}", server, ca_pem,
                                                          trusted_cn, **kw))  # type: ignore[arg-type]

        yield start
