"""The daemon's web pages over HTTP: behind the same basic auth and HTTPS as every endpoint, with a
policy that admits no script, and 404s for what is not there."""

from __future__ import annotations

import base64
from pathlib import Path

import requests

from daemon.config.model import BasicAuth, Config, ServerConfig
from probes.target import Registrar, SecretFile, Settings, Target
from tests.conftest import LabPKI
from tests.support.daemon import engine_runner, mtls_probe, running
from tests.support.peers import eventually

PAGES = ("/", "/targets/rmx-bad", "/targets/rmx-ok")


def _config(tmp_path: Path, server: ServerConfig) -> Config:
    targets = (Target("rmx-ok", registrars=(Registrar("fe"),), deadline=1.0, interval=60),
               Target("rmx-bad", registrars=(Registrar("fe"),), deadline=1.0, interval=60))
    return Config(tmp_path / "rmxdiag.yaml", Settings(state_dir=tmp_path / "state"), targets, server=server)


def test_pages_need_the_same_credentials_over_https_and_forbid_scripts(tmp_path: Path, lab_pki: LabPKI) -> None:
    """Given HTTPS and basic auth, When the pages are asked for without, with wrong and with the right
    credentials, Then 401, 401, 200 with the policy and nosniff headers; unknown names are 404."""
    secret = tmp_path / "web.pass"
    secret.write_text("page-pass-canary\n")
    secret.chmod(0o600)
    files = lab_pki.fe.write(tmp_path / "web", "web")
    full = tmp_path / "web" / "full.pem"
    full.write_bytes(lab_pki.fe.cert_pem + lab_pki.fe.chain_pem)
    ca = str(lab_pki.ca_bundle(tmp_path))
    server = ServerConfig(tls_cert=full, tls_key=files["key"], basic_auth=(BasicAuth("ops", SecretFile(secret)),))
    good = {"Authorization": "Basic " + base64.b64encode(b"ops:page-pass-canary").decode()}
    bad = {"Authorization": "Basic " + base64.b64encode(b"ops:wrong").decode()}
    with running(_config(tmp_path, server), runner=engine_runner({"mtls": mtls_probe(faulty=["rmx-bad"])})) as d:
        base = f"https://127.0.0.1:{d.port}"
        eventually("both targets probed", lambda: "rmx-bad" in requests.get(
            base + "/", headers=good, verify=ca, timeout=5).text and len(d.daemon.holder.current.targets) == 2)
        for path in PAGES:
            assert requests.get(base + path, verify=ca, timeout=5).status_code == 401
            assert requests.get(base + path, headers=bad, verify=ca, timeout=5).status_code == 401
            page = requests.get(base + path, headers=good, verify=ca, timeout=5)
            assert page.status_code == 200 and page.headers["Content-Type"] == "text/html; charset=utf-8"
            policy = page.headers["Content-Security-Policy"]
            assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy and "script" not in policy
            assert page.headers["X-Content-Type-Options"] == "nosniff" and "<script" not in page.text
        # The JSON endpoints are never sniffed into HTML either
        report = requests.get(base + "/api/v1/report", headers=good, verify=ca, timeout=5)
        assert report.headers["X-Content-Type-Options"] == "nosniff"
        assert requests.get(base + "/metrics", verify=ca, timeout=5).headers["X-Content-Type-Options"] == "nosniff"
        overview = requests.get(base + "/", headers=good, verify=ca, timeout=5).text
        assert 'data-target="rmx-bad" data-status="critical"' in overview
        assert 'data-target="rmx-ok" data-status="ok"' in overview
        for path in ("/targets/not-configured", "/runs/20260101T000000Z-0001-rmx-ok", "/runs/..%2F..%2Fetc",
                     "/favicon.ico"):
            missing = requests.get(base + path, headers=good, verify=ca, timeout=5)
            assert missing.status_code == 404 and missing.headers["X-Content-Type-Options"] == "nosniff"
