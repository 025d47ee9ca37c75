"""Secret canaries through every daemon path at debug level: they appear nowhere.

The PFX password, the XML API password and the webhook token are canaries with characters that
change under base64/hex/URL encoding. The real daemon (`rmxdiag serve --log-level debug`) runs a
wrong-password start, a corrupt-PFX start, then a good start with faults (a tarpit registrar, an
XML API that quotes the login request back), scrapes, good and bad webhook calls, a failed reload
(syntax, then a wrong PFX password), SIGHUP and SIGTERM. Every byte it produced is searched:
stderr/stdout, every HTTP response (headers and body), every stored report, repr() of the loaded
config, and the argv and environment of every descendant sampled from /proc while it ran.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from daemon.serve.service import load_config
from tests.conftest import LabPKI
from tests.support import mtls as peers
from tests.support import secrets as canary
from tests.support.peers import eventually, free_port, need, wait_for_port

pytestmark = [pytest.mark.peer, pytest.mark.slow]
SERVE = [sys.executable, "-m", "daemon.cli", "serve", "--log-level", "debug"]
CAPTURE = Path(__file__).resolve().parents[1] / "fixtures" / "capture" / "healthy12.pcapng"


def _secret(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    path.chmod(0o600)
    return path


def _config(d: Path, port: int, registrar_port: int, api_url: str) -> Path:
    text = f"""settings:
  listen: "127.0.0.1:{port}"
  state_dir: state
  interval: 2
  deadline: 1
targets:
  - name: rmx-a
    fqdn: rmx.lab.example
    certificate:
      pfx: rmx.pfx
      password_file: pfx.pass
    registrars:
      - host: 127.0.0.1
        port: {registrar_port}
        sni: pool.lab.example
    alarms:
      xml_api:
        url: {api_url}
        user_file: api.user
        password_file: api.pass
        timeout: 1
    capture:
      files:
        - capture.pcapng
webhook:
  token_file: webhook.token
  cooldown: 1
server:
  enable_lifecycle: true
"""
    path = d / "rmxdiag.yaml"
    path.write_text(text)
    return path


def _start_fails(config: Path) -> str:
    result = subprocess.run([*SERVE, "-c", str(config)], capture_output=True, timeout=30, check=False)
    assert result.returncode == 78, result.stderr
    return (result.stdout + result.stderr).decode("utf-8", "replace")


def _dump(response: requests.Response) -> bytes:
    head = "".join(f"{k}: {v}\n" for k, v in response.headers.items())
    return f"{response.status_code}\n{head}\n".encode() + response.content


def test_canaries_never_leave_the_daemon(tmp_path: Path, lab_pki: LabPKI) -> None:
    """Given canary secrets, When the daemon runs every path at debug level, Then zero occurrences anywhere."""
    need("tshark")
    d = tmp_path
    pfx = _secret(d / "rmx.pfx", lab_pki.rmx.pfx(canary.PFX_PASSWORD.encode()))
    _secret(d / "pfx.pass", canary.PFX_PASSWORD.encode() + b"\n")
    _secret(d / "api.user", b"rmxdiag\n")
    _secret(d / "api.pass", canary.API_PASSWORD.encode() + b"\n")
    _secret(d / "webhook.token", canary.WEBHOOK_TOKEN.encode() + b"\n")
    shutil.copyfile(CAPTURE, d / "capture.pcapng")
    outputs: dict[str, bytes] = {}
    port = free_port()
    with peers.tarpit() as pit, canary.echoing_xml_api() as (api_url, api_bodies):
        config = _config(d, port, pit, api_url)
        outputs["repr(config)"] = (repr(load_config(config)) + str(load_config(config))).encode()

        # Start with the wrong PFX password, then with a corrupt PFX: exit 78 naming the file.
        _secret(d / "pfx.pass", canary.WRONG_PFX_PASSWORD.encode() + b"\n")
        outputs["start, wrong password"] = _start_fails(config).encode()
        assert str(pfx) in outputs["start, wrong password"].decode()
        _secret(d / "pfx.pass", canary.PFX_PASSWORD.encode() + b"\n")
        good = pfx.read_bytes()
        _secret(pfx, good[:200] + bytes([good[200] ^ 0xFF]) + good[201:])
        outputs["start, corrupt pfx"] = _start_fails(config).encode()
        _secret(pfx, good)

        # A good start with faults; every descendant sampled while it runs.
        proc = subprocess.Popen([*SERVE, "-c", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        responses: list[bytes] = []
        try:
            with canary.ProcessWatch(proc.pid) as watch:
                wait_for_port(port, proc=proc)  # type: ignore[arg-type]
                # Two scheduled runs: the capture worker and tshark run, the XML API is asked.
                eventually("two XML API calls", lambda: len(api_bodies) >= 2, 15)
                for path in ("/metrics", "/probe?target=rmx-a", "/api/v1/report", "/api/v1/report?target=rmx-a",
                             "/-/healthy", "/-/ready"):
                    responses.append(_dump(requests.get(url + path, timeout=10)))
                alert = {"version": "4", "status": "firing", "alerts": [
                    {"status": "firing", "labels": {"alertname": "X", "target": "rmx-a"}}]}
                for token, expected in ((canary.WEBHOOK_TOKEN, 202), ("not-the-token", 401), (None, 401)):
                    headers = {"Authorization": f"Bearer {token}"} if token else {}
                    r = requests.post(url + "/api/v1/alerts", json=alert, headers=headers, timeout=10)
                    assert r.status_code == expected
                    responses.append(_dump(r))
                # The alert-driven run (capture + XML API + tarpit) is stored once it has finished.
                eventually("the alert-driven run", lambda: requests.get(url + "/api/v1/report/runs",
                                                                        timeout=10).json()["runs"], 30)
                responses.append(_dump(requests.get(url + "/api/v1/report/runs", timeout=10)))
                # Failed reloads: a syntax error, then a PFX password that does not open the PFX.
                original = config.read_text()
                config.write_text(original + "targets: [\n")
                responses.append(_dump(requests.post(url + "/-/reload", timeout=15)))
                config.write_text(original)
                _secret(d / "pfx.pass", canary.WRONG_PFX_PASSWORD.encode() + b"\n")
                responses.append(_dump(requests.post(url + "/-/reload", timeout=15)))
                responses.append(_dump(requests.get(url + "/metrics", timeout=10)))  # reload_successful 0
                # SIGHUP with the right password again: a reload that succeeds, seen on /metrics.
                _secret(d / "pfx.pass", canary.PFX_PASSWORD.encode() + b"\n")
                proc.send_signal(signal.SIGHUP)
                eventually("the SIGHUP reload", lambda: "rmxdiag_config_last_reload_successful 1.0" in requests.get(
                    url + "/metrics", timeout=10).text)
                responses.append(_dump(requests.get(url + "/metrics", timeout=10)))
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
            out, err = proc.communicate(timeout=10)
    outputs["daemon stdout+stderr"] = out + err
    outputs["http responses"] = b"\n".join(responses)
    state = d / "state"
    stored = [p for p in state.rglob("*") if p.is_file()]
    outputs["stored reports"] = b"\n".join(p.read_bytes() for p in stored)
    outputs["child argv+environ"] = b"\n".join(watch.seen.values())

    # The paths really ran: the password went to the API, the reload failed, reports were stored.
    assert any(canary.encodings(canary.API_PASSWORD)["xml"] in b for b in api_bodies)
    assert b"rmxdiag_config_last_reload_successful 0.0" in outputs["http responses"]
    assert b"rmxdiag_config_last_reload_successful 1.0" in responses[-1]
    assert b"DEBUG" in err or b"debug" in err.lower()
    assert stored, "no report was stored"
    assert len(watch.seen) >= 2, "no capture worker/tshark was seen running"
    print({where: len(blob) for where, blob in outputs.items()}, "descendants seen:", len(watch.seen))
    found = [leak for where, blob in outputs.items() for leak in canary.leaks(where, blob)]
    assert not found, found
    # Files the daemon wrote are 0600.
    modes = {str(p.relative_to(state)): stat.S_IMODE(p.stat().st_mode) for p in stored}
    assert all(mode == 0o600 for mode in modes.values()), modes
