"""The XML API client against hostile raw-socket peers: drips, resets, empty answers, bad credentials."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from probes.alarms import probe as alarms
from probes.alarms.xmlapi import XmlApiError, fetch_state
from probes.model import ErrorKind
from probes.target import SecretFile, XmlApi
from tests.support.alarms import LOGIN_OK, ok_answer, rmx_default, xml_api_server
from tests.support.peers import socket_peer

ROOT = Path(__file__).resolve().parents[2]
DRIP_EVERY = 0.2  # seconds between two bytes of a dripping peer
# Headers that never end: a client without one total timeout reads them for 100 x 11 x 0.2 s
DRIPPED = b"HTTP/1.1 200 OK\r\n" + b"X-Drip: a\r\n" * 1000

Behaviour = Callable[[socket.socket], None]


def _drip(conn: socket.socket) -> None:
    """Read the request, then answer one byte every DRIP_EVERY seconds (status line, headers, body)."""
    conn.recv(65536)
    for byte in DRIPPED:
        conn.sendall(bytes([byte]))
        time.sleep(DRIP_EVERY)


def _reset_mid_body(conn: socket.socket) -> None:
    """Promise 1000 bytes, send 20, then reset the connection (SO_LINGER 0)."""
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 1000\r\n\r\n<RESPONSE_TRANS_MCU>")
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


@contextlib.contextmanager
def raw_peer(behaviour: Behaviour, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """:func:`tests.support.peers.socket_peer` as the XML API URL it serves."""
    with socket_peer(behaviour, tls) as port:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}/"


@pytest.fixture
def creds(tmp_path: Path) -> tuple[Path, Path]:
    """Given private user and password files."""
    user, password = tmp_path / "api.user", tmp_path / "api.pass"
    user.write_text("POLYCOM\n")
    password.write_text("CANARY-hostile-pw-31337\n")
    user.chmod(0o600)
    password.chmod(0o600)
    return user, password


@pytest.fixture
def tls_peer(tmp_path: Path, lab_pki: object) -> tuple[ssl.SSLContext, Path]:
    """Given a server context whose certificate (127.0.0.1) chains to the lab CA, and that CA bundle."""
    paths = lab_pki.fe.write(tmp_path / "srv", "fe")  # type: ignore[attr-defined]
    chain = tmp_path / "fe-full.pem"
    chain.write_bytes(paths["cert"].read_bytes() + paths["chain"].read_bytes())
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(chain, paths["key"])
    return ctx, lab_pki.ca_bundle(tmp_path)  # type: ignore[attr-defined]


def _finish(proc: subprocess.Popen[str], within: float) -> tuple[int, str, str]:
    """The exit code and output once ``proc`` ended; fails (and kills it) after ``within`` seconds."""
    deadline = time.monotonic() + within
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"still running after {within:.0f}s:\n{out}\n{err}")
    out, err = proc.communicate()
    return proc.returncode, out, err


def _cli(*args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "daemon.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=cwd or ROOT)


def test_a_dripping_https_peer_is_cut_at_the_cli_timeout(creds: tuple[Path, Path],
                                                         tls_peer: tuple[ssl.SSLContext, Path]) -> None:
    """Given a TLS peer that answers one byte every 0.2 s (status line, headers, body)
    When `rmxdiag alarms --xml-api ... --timeout 3` asks it
    Then the CLI ends near 3 s with exit 3 and says the LOGIN timed out (was: never ended)."""
    ctx, bundle = tls_peer
    user, password = creds
    # Reference: the same command against a prompt emulator (interpreter start, imports, TLS)
    with xml_api_server(rmx_default, ctx) as rmx:
        started = time.monotonic()
        code, out, err = _finish(_cli("alarms", "--xml-api", rmx.url, "--user-file", str(user), "--password-file",
                                      str(password), "--api-ca", str(bundle), "--timeout", "3"), 120)
        reference = time.monotonic() - started
    assert code == 0, out + err
    with raw_peer(_drip, ctx) as url:
        started = time.monotonic()
        code, out, err = _finish(_cli("alarms", "--xml-api", url, "--user-file", str(user), "--password-file",
                                      str(password), "--api-ca", str(bundle), "--timeout", "3"), 60 + 5 * reference)
        elapsed = time.monotonic() - started
    print(f"dripping HTTPS XML API, --timeout 3: exit {code} after {elapsed:.2f}s (reference {reference:.2f}s)")
    assert code == 3, out + err
    assert "LOGIN timed out" in out.splitlines()[0], out
    assert "Traceback" not in err
    # One total timeout of 3 s (plus start-up) ends what a per-read timeout never would
    assert elapsed < 3 + 3 * reference + 5, (elapsed, reference)


def test_run_with_a_dripping_xml_api_target_exits(tmp_path: Path, creds: tuple[Path, Path]) -> None:
    """Given a config whose only target's XML API drips its answer, and a 4 s run deadline
    When `rmxdiag run` runs it
    Then the process exits with 3 (was: printed at the deadline, then never exited)."""
    user, password = creds
    with raw_peer(_drip) as url:
        config = tmp_path / "rmxdiag.yaml"
        config.write_text(f"""settings:
  state_dir: {tmp_path / 'state'}
  deadline: 4
targets:
  - name: rmx1
    fqdn: rmx.example.com
    alarms:
      xml_api:
        url: {url}
        user_file: {user}
        password_file: {password}
        timeout: 20
""")
        started = time.monotonic()
        code, out, err = _finish(_cli("run", "-c", str(config), "--format", "text"), 90)
        elapsed = time.monotonic() - started
    print(f"run, dripping XML API, deadline 4 s: exit {code} after {elapsed:.2f}s")
    assert code == 3, out + err
    assert "rmx1" in out.splitlines()[0] and "Traceback" not in err, out + err
    assert elapsed < 60, elapsed  # the drip alone lasts 37 minutes


def test_a_dripping_peer_ends_fetch_state_at_the_deadline(creds: tuple[Path, Path]) -> None:
    """Given a plain-HTTP peer dripping its status line, and a 1.5 s deadline for the exchange
    Then fetch_state raises a DEADLINE error once the deadline passed, not when the peer is done."""
    user, password = creds
    with raw_peer(_drip) as url:
        started = time.monotonic()
        with pytest.raises(XmlApiError) as info:
            fetch_state(XmlApi(url, SecretFile(user), SecretFile(password), None, 30.0), time.monotonic() + 1.5)
        elapsed = time.monotonic() - started
    assert info.value.kind is ErrorKind.DEADLINE and "timed out" in str(info.value)
    assert 1.4 < elapsed < 15, elapsed


def test_an_answer_cut_by_a_reset_is_an_upstream_failure(creds: tuple[Path, Path]) -> None:
    """Given a peer that promises 1000 bytes, sends 20 and resets the connection
    Then the probe fails as upstream, one line naming the cut answer (was: internal ProtocolError)."""
    user, password = creds
    with raw_peer(_reset_mid_body) as url:
        outcome = alarms.check([], XmlApi(url, SecretFile(user), SecretFile(password), None, 5.0))
    assert outcome.error is not None and outcome.error.kind is ErrorKind.UPSTREAM, outcome
    assert "LOGIN answer cut short" in outcome.error.detail and "\n" not in outcome.error.detail


def test_cli_reports_a_reset_as_unknown_not_as_a_bug(creds: tuple[Path, Path]) -> None:
    """Given the same resetting peer, When the CLI asks it, Then exit 3 with the one-line verdict."""
    user, password = creds
    with raw_peer(_reset_mid_body) as url:
        code, out, err = _finish(_cli("alarms", "--xml-api", url, "--user-file", str(user), "--password-file",
                                      str(password), "--timeout", "5"), 120)
    assert code == 3 and out.startswith("UNKNOWN") and "cut short" in out.splitlines()[0], out + err
    assert "internal error" not in err and "Traceback" not in err


@pytest.mark.parametrize("state", [
    ok_answer("GET_STATE"),
    ok_answer("GET_STATE", "<MCU_STATE><ID>1</ID></MCU_STATE><NUMBER_OF_ACTIVE_ALARMS>many</NUMBER_OF_ACTIVE_ALARMS>"),
    LOGIN_OK,
])
def test_a_successful_answer_without_state_or_count_is_nothing_to_judge(state: bytes,
                                                                        creds: tuple[Path, Path]) -> None:
    """Given an RMX whose GET_STATE says RETURN_STATUS 0 but holds no MCU state and no alarm count
    Then the probe could not judge (upstream, exit 3) and says what was missing (was: OK, exit 0)."""
    user, password = creds

    def handler(body: bytes) -> tuple[int, bytes, float]:
        return 200, (LOGIN_OK if b"<LOGIN>" in body else state if b"<GET_STATE/>" in body
                     else ok_answer("LOGOUT")), 0.0

    with xml_api_server(handler) as rmx:
        outcome = alarms.check([], XmlApi(rmx.url, SecretFile(user), SecretFile(password), None, 5.0))
    assert outcome.error is not None and outcome.error.kind is ErrorKind.UPSTREAM, outcome
    assert "nothing to judge" in outcome.error.detail and "NUMBER_OF_ACTIVE_ALARMS" in outcome.error.detail


def test_a_state_alone_or_a_count_alone_is_enough_to_judge(creds: tuple[Path, Path]) -> None:
    """Given GET_STATE answers with only the MCU state, or only the alarm count, Then the probe runs."""
    user, password = creds
    for inner, expected in (("<MCU_STATE><DESCRIPTION>normal</DESCRIPTION></MCU_STATE>", ("normal", None)),
                            ("<NUMBER_OF_ACTIVE_ALARMS>0</NUMBER_OF_ACTIVE_ALARMS>", (None, 0))):
        def handler(body: bytes, inner: str = inner) -> tuple[int, bytes, float]:
            return 200, (LOGIN_OK if b"<LOGIN>" in body else ok_answer("GET_STATE", inner)), 0.0

        with xml_api_server(handler) as rmx:
            state = fetch_state(XmlApi(rmx.url, SecretFile(user), SecretFile(password), None, 5.0))
        assert (state.description, state.active_alarms) == expected


@pytest.mark.parametrize(("content", "why"), [(b"sec\x00ret\n", "NUL byte"), (b"s\x00e\x00c\x00\n\x00", "NUL byte"),
                                              (b"sec\x1bret\n", "control character")])
def test_a_password_file_with_a_control_character_is_a_bad_input(tmp_path: Path, creds: tuple[Path, Path],
                                                                 content: bytes, why: str) -> None:
    """Given a password file holding a NUL (UTF-16 without BOM) or an escape character
    Then the XML API path refuses it as bad input naming the file, before connecting; the CLI
    prints one line and exits 3."""
    bad = tmp_path / "bad.pass"
    bad.write_bytes(content)
    bad.chmod(0o600)
    with xml_api_server(rmx_default) as rmx:
        outcome = alarms.check([], XmlApi(rmx.url, SecretFile(creds[0]), SecretFile(bad), None, 5.0))
        code, out, err = _finish(_cli("alarms", "--xml-api", rmx.url, "--user-file", str(creds[0]),
                                      "--password-file", str(bad)), 120)
        sent = list(rmx.requests)
    assert outcome.error is not None and outcome.error.kind in (ErrorKind.BAD_INPUT, ErrorKind.FILE_UNREADABLE)
    assert str(bad) in outcome.error.detail, outcome.error.detail
    assert why in outcome.error.detail or "NUL" in outcome.error.detail, outcome.error.detail
    assert sent == []  # nothing was sent
    assert code == 3 and str(bad) in out + err and "Traceback" not in err, out + err


def test_an_rmx_description_cannot_forge_log_lines(creds: tuple[Path, Path]) -> None:
    """Given an RMX that refuses LOGOUT with a description holding newlines, a carriage return and a
    journald priority prefix (a forged CRITICAL entry)
    When the CLI runs at -vv
    Then every stderr line is a record of its own (timestamp, level, logger) and the forged text stays
    inside the genuine INFO line, escaped (was: a separate CRITICAL line)."""
    user, password = creds
    forged = "x&#10;2026-12-02 08:00:00,000 CRITICAL rmxdiag.daemon: FORGED&#13;&#10;&lt;0&gt;emergency"

    def handler(body: bytes) -> tuple[int, bytes, float]:
        if b"<LOGIN>" in body:
            return 200, LOGIN_OK, 0.0
        if b"<GET_STATE/>" in body:
            return 200, ok_answer("GET_STATE", "<NUMBER_OF_ACTIVE_ALARMS>0</NUMBER_OF_ACTIVE_ALARMS>"), 0.0
        return 200, ok_answer("LOGOUT", status=7, desc=forged), 0.0

    with xml_api_server(handler) as rmx:
        code, out, err = _finish(_cli("-vv", "alarms", "--xml-api", rmx.url, "--user-file", str(user),
                                      "--password-file", str(password)), 120)
    assert code == 0, out + err
    import re

    record = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")
    lines = err.splitlines()
    assert lines and all(record.match(line) for line in lines), err
    logout = [line for line in lines if "logout failed" in line]
    assert len(logout) == 1 and "INFO" in logout[0], err
    assert "FORGED\\r\\n<0>emergency" in logout[0] and "\\n2026-12-02 08:00:00,000 CRITICAL" in logout[0]
    assert not any("CRITICAL" in line.split(":")[0] for line in lines)


def test_run_reports_a_password_file_with_a_nul_as_bad_input(tmp_path: Path, creds: tuple[Path, Path]) -> None:
    """Given a configured target whose XML API password file holds a NUL byte
    When `rmxdiag run` runs it, Then the alarms probe could not run (bad input naming the file), exit 3,
    no traceback: the probe thread ends with an outcome, the process exits."""
    bad = tmp_path / "nul.pass"
    bad.write_bytes(b"sec\x00ret\n")
    bad.chmod(0o600)
    with xml_api_server(rmx_default) as rmx:
        config = tmp_path / "rmxdiag.yaml"
        config.write_text(f"""settings:
  state_dir: {tmp_path / 'state'}
  deadline: 10
targets:
  - name: rmx1
    fqdn: rmx.example.com
    alarms:
      xml_api:
        url: {rmx.url}
        user_file: {creds[0]}
        password_file: {bad}
""")
        code, out, err = _finish(_cli("run", "-c", str(config)), 120)
        sent = list(rmx.requests)
    assert code == 3 and "Traceback" not in err, out + err
    assert str(bad) in out.splitlines()[0] and "NUL" in out.splitlines()[0], out
    assert sent == []


def test_the_password_echoed_in_every_form_reaches_no_text_or_json_report_nor_log(tmp_path: Path,
                                                                                 tls_peer: tuple[ssl.SSLContext,
                                                                                                 Path]) -> None:
    """Given an HTTPS RMX that accepts the LOGIN and quotes the password back in every form (any case,
    base64 alone / of user:password / of the LOGIN body, hex, JSON, XML, URL, prefix, reversed) in
    GET_STATE and in a refused LOGOUT
    When the CLI writes the text and the JSON report at -vv
    Then no encoding of the password and no 8 characters of it in any case appear in stdout or stderr,
    while the report keeps the state, the alarm count and the user name."""
    from xml.sax.saxutils import escape

    from tests.support.secrets import echoes, encodings

    ctx, bundle = tls_peer
    secret = 'Echo&Canary<"9f2e">pw+/='  # noqa: S105 (a canary)
    user, password = tmp_path / "api.user", tmp_path / "api.pass"
    user.write_text("rmx\n")
    password.write_text(secret + "\n")
    user.chmod(0o600)
    password.chmod(0o600)

    def handler(body: bytes) -> tuple[int, bytes, float]:
        if b"<LOGIN>" in body:
            return 200, LOGIN_OK, 0.0
        quote = escape("session of rmx with " + " | ".join(echoes(secret, "rmx").values()))
        if b"<GET_STATE/>" in body:
            return 200, ok_answer("GET_STATE", f"<MCU_STATE><ID>3</ID><DESCRIPTION>major {quote}</DESCRIPTION>"
                                  "</MCU_STATE><NUMBER_OF_ACTIVE_ALARMS>2</NUMBER_OF_ACTIVE_ALARMS>"), 0.0
        return 200, ok_answer("LOGOUT", status=7, desc=quote), 0.0

    outputs = []
    with xml_api_server(handler, ctx) as rmx:
        for fmt in ("text", "json"):
            code, out, err = _finish(_cli("-vv", "alarms", "--xml-api", rmx.url, "--user-file", str(user),
                                          "--password-file", str(password), "--api-ca", str(bundle),
                                          "--format", fmt), 120)
            assert code == 0, out + err
            outputs += [out, err]
    blob = "\n".join(outputs)
    found = [form for form, raw in encodings(secret).items() if raw.decode() in blob]
    found += [secret[i:i + 8] for i in range(len(secret) - 7) if secret[i:i + 8].lower() in blob.lower()]
    assert found == [], found
    assert "logout failed" in outputs[1] and "session of rmx with [redacted]" in blob
    assert '"active_alarms": 2' in outputs[2]
