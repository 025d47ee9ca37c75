"""Secret values with the real daemon: empty secret files are refused, echoed secrets are redacted.

An empty file must never mean "no password": `check-config` and `rmxdiag serve` both refuse it
with one line naming the file, and a password file emptied while the daemon runs locks the
endpoint instead of opening it.
"""

from __future__ import annotations

import base64
import html
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.conftest import LabPKI
from tests.support.alarms import LOGIN_OK, ok_answer, xml_api_server
from tests.support.peers import eventually
from tests.support.secrets import API_PASSWORD, WEBHOOK_TOKEN, echoes, encodings
from tests.support.served import SERVE, daemon_dir, secret, serve, write

pytestmark = [pytest.mark.peer, pytest.mark.slow]
CLI = [sys.executable, "-m", "daemon.cli"]

# kind -> (config text added to the target or the top level, the secret file that is empty)
_TARGET_PFX = "    certificate:\n      pfx: rmx.pfx\n      password_file: empty.secret\n"
_TARGET_API = ("    alarms:\n      xml_api:\n        url: http://127.0.0.1:9/\n        user_file: {user}\n"
               "        password_file: {pw}\n")
KINDS = {
    "basic_auth_password": ("server:\n  basic_auth:\n    - username: prom\n      password_file: empty.secret\n", ""),
    "webhook_token": ("", "webhook_token"),
    "notify_token": ("notify:\n  url: http://127.0.0.1:9/hook\n  token_file: empty.secret\n", ""),
    "pfx_password": ("", _TARGET_PFX),
    "xml_api_user": ("", _TARGET_API.format(user="empty.secret", pw="full.secret")),
    "xml_api_password": ("", _TARGET_API.format(user="full.secret", pw="empty.secret")),
}


def _config_with_an_empty(kind: str, d: Path, lab_pki: LabPKI) -> tuple[Path, int]:
    top, target = KINDS[kind]
    secret(d / "empty.secret", b"")
    secret(d / "full.secret", b"someone\n")
    secret(d / "rmx.pfx", lab_pki.rmx.pfx(b"pfx-pw"))
    config, port = daemon_dir(d, {"rmx-a": 9}, top)
    text = config.read_text()
    if target == "webhook_token":
        secret(d / "token", b"")
    elif target:
        text = text.replace("        port: 9\n", "        port: 9\n" + target, 1)
    return write(config, text), port


@pytest.mark.parametrize("kind", list(KINDS))
def test_an_empty_secret_file_is_refused_by_check_config_and_serve(kind: str, tmp_path: Path,
                                                                   lab_pki: LabPKI) -> None:
    """Given a config whose KIND secret file is empty, When check-config and serve start, Then check-config
    exits 3 and serve exits 78, each with one line naming the file and saying it is empty."""
    config, _ = _config_with_an_empty(kind, tmp_path, lab_pki)
    empty = "token" if KINDS[kind][1] == "webhook_token" else "empty.secret"
    results = [_run([*CLI, "check-config", "-c", str(config)]), _run([*SERVE, "-c", str(config)])]
    print(f"{kind}: check-config -> {results[0]}; serve -> {results[1]}")
    for (code, stderr), expected in zip(results, (3, 78), strict=True):
        lines = stderr.strip().splitlines()
        assert code == expected, stderr
        assert len(lines) == 1 and str(tmp_path / empty) in lines[0] and "empty" in lines[0], lines
        assert "Traceback" not in stderr


def _run(argv: list[str], timeout: float = 15) -> tuple[int | None, str]:
    """(exit code, stderr); None when it was still running after ``timeout`` (then killed)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        return None, (exc.stderr or b"").decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    return done.returncode, done.stderr


def test_a_password_file_emptied_while_running_locks_the_endpoint(tmp_path: Path) -> None:
    """Given a daemon with basic auth whose password file is emptied after start, When a client sends the
    user with an empty password, Then it is refused (401), and the old password no longer works either."""
    password = secret(tmp_path / "web.pass", b"web-pass-1\n")
    extra = "server:\n  basic_auth:\n    - username: prom\n      password_file: web.pass\n"
    config, port = daemon_dir(tmp_path, {"rmx-a": 9}, extra)

    def status(user_password: bytes) -> int:
        auth = "Basic " + base64.b64encode(user_password).decode()
        return requests.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": auth}, timeout=10).status_code

    with serve(config, port):
        assert status(b"prom:web-pass-1") == 200
        password.write_bytes(b"")
        empty, old = status(b"prom:"), status(b"prom:web-pass-1")
    print(f"password file emptied at run time: empty password -> {empty}, old password -> {old}")
    assert (empty, old) == (401, 401)


API_USER = "rmx"  # a user name is no secret: it must survive in target names, FQDNs and subjects
BASIC_PASSWORD = "Basic+Canary/6d0e=44"  # noqa: S105 (a canary)
_CANARIES = {"api password": API_PASSWORD, "webhook token": WEBHOOK_TOKEN, "basic-auth password": BASIC_PASSWORD}


def _echoing_rmx() -> Callable[[bytes], tuple[int, bytes, float]]:
    """An RMX XML API that accepts the LOGIN, then quotes the credentials it got (and two other secrets the
    daemon holds, as a hostile peer could) in its GET_STATE and LOGOUT answers, in every form: any case,
    base64 (alone, as user:password, the whole LOGIN body), hex, JSON, XML, URL, cut short, reversed."""
    from xml.sax.saxutils import escape

    said: dict[str, str] = {}

    def handle(body: bytes) -> tuple[int, bytes, float]:
        if b"<LOGIN>" in body:
            text = body.decode()
            said["user"] = text.split("<USER_NAME>")[1].split("</USER_NAME>")[0]
            said["password"] = html.unescape(text.split("<PASSWORD>")[1].split("</PASSWORD>")[0])
            return 200, LOGIN_OK, 0.0
        forms = [*echoes(said.get("password", ""), said.get("user", "")).values(), WEBHOOK_TOKEN.swapcase(),
                 base64.b64encode(BASIC_PASSWORD.encode()).decode(), BASIC_PASSWORD.encode().hex()]
        quote = escape(f"session of {said.get('user')} with password " + " | ".join(forms))
        if b"<GET_STATE/>" in body:
            return 200, ok_answer("GET_STATE", f"<MCU_STATE><ID>3</ID><DESCRIPTION>major, {quote}</DESCRIPTION>"
                                  "</MCU_STATE><NUMBER_OF_ACTIVE_ALARMS>2</NUMBER_OF_ACTIVE_ALARMS>"), 0.0
        return 200, ok_answer("LOGOUT", status=-1, desc=f"logout refused: {quote}"), 0.0
    return handle


def _found(blob: bytes) -> list[str]:
    """Each canary in any encoding, and any 8 characters of it in any case."""
    low = blob.lower()
    return [f"{name} as {form}" for name, value in _CANARIES.items() for form, raw in encodings(value).items()
            if raw in blob] + [f"{name} piece {value[i:i + 8]!r}" for name, value in _CANARIES.items()
                               for i in range(len(value) - 7) if value[i:i + 8].lower().encode() in low]


def test_secrets_echoed_by_the_xml_api_never_reach_findings_reports_or_logs(tmp_path: Path) -> None:
    """Given a daemon with basic auth and a webhook token whose target's XML API echoes the API password
    (and the other two secrets) in every form in its GET_STATE and LOGOUT answers, When scheduled runs, an
    alert-driven run and the report endpoints are used at debug log level, Then none of the three values,
    in no encoding and no 8 characters of them in any case, appears in /api/v1/report, the stored run
    (file and endpoint), /metrics, /probe or the log, while the finding still says the state, the alarm
    count and the (non-secret) user name."""
    secret(tmp_path / "api.user", API_USER.encode() + b"\n")
    secret(tmp_path / "api.pass", API_PASSWORD.encode() + b"\n")
    secret(tmp_path / "web.pass", BASIC_PASSWORD.encode() + b"\n")
    auth = {"Authorization": "Basic " + base64.b64encode(f"prom:{BASIC_PASSWORD}".encode()).decode()}
    with xml_api_server(_echoing_rmx()) as rmx:
        extra = "server:\n  basic_auth:\n    - username: prom\n      password_file: web.pass\n"
        config, port = daemon_dir(tmp_path, {"rmx-a": 9}, extra, interval=1, schedule=True)
        secret(tmp_path / "token", WEBHOOK_TOKEN.encode())
        api = (f"    alarms:\n      xml_api:\n        url: {rmx.url}\n        user_file: api.user\n"
               "        password_file: api.pass\n        timeout: 2\n")
        write(config, config.read_text().replace("        port: 9\n", "        port: 9\n" + api, 1))
        with serve(config, port) as d:
            url = d.url
            eventually("an active alarm in the report", lambda: "active alarm" in requests.get(
                url + "/api/v1/report", headers=auth, timeout=10).text, 20)
            alert = requests.post(url + "/api/v1/alerts", headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
                                  json={"alerts": [{"status": "firing", "labels": {"target": "rmx-a"}}]}, timeout=10)
            assert alert.status_code == 202
            eventually("a stored run", lambda: requests.get(url + "/api/v1/report/runs", headers=auth,
                                                            timeout=10).json()["runs"], 20)
            run_id = requests.get(url + "/api/v1/report/runs", headers=auth, timeout=10).json()["runs"][0]
            bodies = {path: requests.get(url + path, headers=auth, timeout=10).content for path in (
                "/api/v1/report", f"/api/v1/report/runs/{run_id}", "/metrics", "/probe?target=rmx-a")}
            eventually('"logout failed" in d.log()', lambda: "logout failed" in d.log(), 10)
            log = d.log().encode()
    stored = {str(p): p.read_bytes() for p in (tmp_path / "state" / "reports").glob("*.json")}
    sent = b"".join(rmx.requests)
    report = bodies["/api/v1/report"].decode()
    got_password = encodings(API_PASSWORD)["xml"] in sent
    print(f"echoing XML API: {len(bodies)} responses ({sum(map(len, bodies.values()))} bytes), {len(stored)} "
          f"stored report(s), {len(log)} bytes of log; the RMX got the password: {got_password}")
    leaks = [f"{where}: {hit}" for where, blob in {**bodies, **stored, "log": log}.items() for hit in _found(blob)]
    print("\n".join(leaks))
    assert got_password
    assert leaks == []
    assert "active alarm" in report and "major" in report and "[redacted]" in report
    assert f"session of {API_USER} with password [redacted]" in report  # the user name is kept
    assert '"name": "rmx-a"' in report  # and so is every word that holds it


def test_a_malformed_authorization_header_is_logged_with_its_scheme_only(tmp_path: Path) -> None:
    """Given a daemon at debug log level, When a client sends a Basic Authorization header with a control
    byte after the credentials (a malformed request aiohttp quotes in its error), Then the debug line
    names the scheme only: no 6 characters of the base64 user:password (was 30 of 32)."""
    import socket
    import time

    config, port = daemon_dir(tmp_path, {"rmx-a": 9})
    credentials = base64.b64encode(b"prom:CANARYwebpass-7f3a9").decode()
    with serve(config, port) as d:
        before = len(d.log())
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + credentials.encode()
                         + b"\x01\r\n\r\n")
            status = conn.recv(64).split(b" ")[1]
        eventually("the malformed request logged", lambda: "malformed request" in d.log()[before:], 10)
        time.sleep(0.2)  # let the line finish (no assertion rests on it)
        new = d.log()[before:]
    print(f"malformed Authorization: status {status!r}, logged: {new.strip()[:200]}")
    assert status == b"400"
    assert "Authorization: Basic [redacted]" in new, new
    assert not [credentials[i:i + 6] for i in range(len(credentials) - 5) if credentials[i:i + 6] in new], new
