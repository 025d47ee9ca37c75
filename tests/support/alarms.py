"""Test helpers for the alarms area: a real snmptrapd on loopback and an RMX XML API emulator."""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import socketserver
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.peers import free_port, need, started

RMX_PARAMS = "1.3.6.1.4.1.13885.9.1.1.2.1"
RMX_TRAPS = "1.3.6.1.4.1.13885.9.1.1.2.2.0"


@dataclass
class TrapDaemon:
    """A running snmptrapd writing its log to ``log``."""

    port: int
    log: Path
    env: dict[str, str]
    pid: int = 0

    def reopen_log(self) -> None:
        """SIGHUP: snmptrapd reopens its -Lf file (what logrotate's postrotate does)."""
        import signal

        os.kill(self.pid, signal.SIGHUP)

    def send(self, trap_number: int, description: str, index: int, status: int = 3, v1: bool = False) -> None:
        """Send one POLYCOM-RMX-MIB trap with the real snmptrap CLI (numeric OIDs, no MIB)."""
        head = [need("snmptrap"), "-v", "1" if v1 else "2c", "-c", "public", "-m", "", "-M", "/dev/null",
                f"udp:127.0.0.1:{self.port}"]
        if v1:  # enterprise rmxNotify, agent address, enterpriseSpecific(6), specific trap number, uptime
            head += [RMX_TRAPS.rsplit(".", 1)[0], "127.0.0.1", "6", str(trap_number), ""]
        else:
            head += ["", f"{RMX_TRAPS}.{trap_number}"]
        argv = [*head,
                f"{RMX_PARAMS}.1", "s", description,
                f"{RMX_PARAMS}.2", "x", "07EA0B1A0C1E2D00",
                f"{RMX_PARAMS}.3", "u", str(index),
                f"{RMX_PARAMS}.4", "s", "Active Alarms",
                f"{RMX_PARAMS}.5", "i", str(status)]
        subprocess.run(argv, check=True, capture_output=True, timeout=20, env=self.env)

    def wait_for(self, count: int, timeout: float = 10.0) -> str:
        """The log once it holds ``count`` RMX description varbinds (fails after ``timeout``)."""
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace") if self.log.exists() else ""
            if len(re.findall(r"13885\.9\.1\.1\.2\.1\.1 = ", text)) >= count:
                return text
            time.sleep(0.05)
        raise TimeoutError(f"snmptrapd logged {text.count('13885')} RMX OIDs, wanted {count}:\n{text}")


@contextlib.contextmanager
def snmptrapd(directory: Path, *log_format: str) -> Iterator[TrapDaemon]:
    """A foreground snmptrapd on a free loopback UDP port, accepting any community (test only).

    ``log_format``: extra output options (e.g. ``-OQ -F FORMAT``) for another log layout.
    """
    binary = need("snmptrapd")
    need("snmptrap")
    conf = directory / "snmptrapd.conf"
    conf.write_text("disableAuthorization yes\n")
    state = directory / "snmp-state"
    state.mkdir()
    # Keep both programs away from the system's /var/lib/snmp and ~/.snmp.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SNMP_PERSISTENT_DIR": str(state),
           "SNMPCONFPATH": str(directory), "HOME": str(directory)}
    port = free_port(__import__("socket").SOCK_DGRAM)
    log = directory / "traps.log"
    argv = [binary, "-f", "-C", "-c", str(conf), "-Lf", str(log), "-m", "", "-M", "/dev/null", *log_format,
            f"--persistentDir={state}", f"udp:127.0.0.1:{port}"]
    with started(argv, directory / "snmptrapd.out", env=env) as proc:
        deadline = time.monotonic() + 10
        while not (log.exists() and "NET-SNMP version" in log.read_text(errors="replace")):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("snmptrapd did not start: " + (directory / "snmptrapd.out").read_text())
            time.sleep(0.05)
        yield TrapDaemon(port, log, env, proc.pid)


# -- RMX XML API emulator ------------------------------------------------------------------------

Handler = Callable[[bytes], tuple[int, bytes, float]]  # request body -> (HTTP status, body, delay)


def ok_answer(action: str, inner: str = "", status: int = 0, desc: str = "Status OK") -> bytes:
    """A RESPONSE_TRANS_MCU document as the RMX answers."""
    return (f"<RESPONSE_TRANS_MCU><RETURN_STATUS><ID>{status}</ID><DESCRIPTION>{desc}</DESCRIPTION>"
            f"</RETURN_STATUS><ACTION><{action}>{inner}</{action}></ACTION></RESPONSE_TRANS_MCU>").encode()


LOGIN_OK = ok_answer("LOGIN", "<MCU_TOKEN>4711</MCU_TOKEN><MCU_USER_TOKEN>4712</MCU_USER_TOKEN>")
STATE_MAJOR = ok_answer("GET_STATE", "<MCU_STATE><ID>3</ID><DESCRIPTION>major</DESCRIPTION></MCU_STATE>"
                        "<NUMBER_OF_ACTIVE_ALARMS>2</NUMBER_OF_ACTIVE_ALARMS>")
LOGOUT_OK = ok_answer("LOGOUT")


def rmx_default(body: bytes) -> tuple[int, bytes, float]:
    """A healthy RMX: LOGIN ok, GET_STATE major with 2 alarms, LOGOUT ok."""
    if b"<LOGIN>" in body:
        return 200, LOGIN_OK, 0.0
    if b"<GET_STATE/>" in body and b"<MCU_TOKEN>4711<" in body:
        return 200, STATE_MAJOR, 0.0
    if b"<LOGOUT/>" in body:
        return 200, LOGOUT_OK, 0.0
    return 200, ok_answer("X", status=-1, desc="bad token"), 0.0


@dataclass
class XmlEmulator:
    """A loopback HTTP server answering XML API transactions through ``handler``."""

    url: str
    requests: list[bytes] = field(default_factory=list)


@contextlib.contextmanager
def xml_api_server(handler: Handler, ssl_context: object | None = None) -> Iterator[XmlEmulator]:
    """Run the emulator in a thread on 127.0.0.1:0 (HTTPS when an ssl context is given)."""
    seen: list[bytes] = []

    class _H(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            seen.append(body)
            status, answer, delay = handler(body)
            if delay:
                time.sleep(delay)
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            except OSError:
                pass  # the client gave up (timeout tests)

        def log_message(self, *args: object) -> None:
            pass

    class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True

    server = _Server(("127.0.0.1", 0), _H)
    scheme = "http"
    if ssl_context is not None:
        server.socket = ssl_context.wrap_socket(server.socket, server_side=True)  # type: ignore[attr-defined]
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        emulator = XmlEmulator(f"{scheme}://127.0.0.1:{server.server_address[1]}/", seen)
        yield emulator
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
