"""Secret values with the real daemon: empty secret files are refused, echoed secrets are redacted.

An empty file must never mean "no password": `check-config` and `rmxdiag serve` both refuse it
with one line naming the file, and a password file emptied while the daemon runs locks the
endpoint instead of opening it.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import LabPKI
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
