"""The web pages and the HTML report in a real browser (headless Chromium driven by selenium).

Against ``rmxdiag lab --serve`` daemons: the pages load without console errors, the ladder draws
the recorded handshake steps of the healthy, unknown-CA and SIP-403 scenarios in wire order, and
the verdict's colour and word match the JSON report. The report file opens with the network
off and asks for nothing. Hostile certificate names, SIP reason phrases and alarm texts served by
real peers execute nothing, in the daemon's pages and in `rmxdiag run --format html`.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.x509.oid import NameOID

from daemon.lab import pki
from daemon.lab.scenarios import write_alarm_report
from tests.support.browser import HitCounter, chromium, console_errors, lab_daemon, ladder_labels, requests_made
from tests.support.mtls import drip_sip_server
from tests.support.peers import eventually, free_port
from tests.support.served import TOKEN, secret, serve, write

pytestmark = [pytest.mark.slow, pytest.mark.peer("chromium", "chromedriver")]

# The verdict colours of the stylesheet, as the browser computes them.
COLOURS = {"ok": "rgba(26, 127, 55, 1)", "warning": "rgba(154, 103, 0, 1)", "critical": "rgba(207, 34, 46, 1)",
           "unknown": "rgba(130, 80, 223, 1)"}
KEY_STEPS = ["ClientHello", "ServerHello", "Certificate (the Front End chain)", "CertificateRequest",
             "Certificate (the RMX chain)", "Finished"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module (fresh profile)."""
    with chromium() as driver:
        yield driver


def _open(driver: Any, url: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Load ``url``; (console errors, URLs requested) of that page alone."""
    driver.get("about:blank")
    console_errors(driver)
    requests_made(driver)
    driver.get(url)
    return console_errors(driver), requests_made(driver)


def _drawn(recorded: list[dict[str, str]]) -> list[str]:
    """The labels the ladder gives the recorded steps (certificates are named by whose chain they carry)."""
    names = {("from_fe", "Certificate"): "Certificate (the Front End chain)",
             ("from_rmx", "Certificate"): "Certificate (the RMX chain)"}
    return [names.get((s["direction"], s["message"]), s["message"]) for s in recorded]


def _in_order(wanted: list[str], seen: list[str]) -> bool:
    """True when ``wanted`` appears in ``seen`` in this order (other items may come between)."""
    rest = iter(seen)
    return all(any(item == s for s in rest) for item in wanted)


def _verdict(driver: Any, selector: str) -> tuple[str, str]:
    from selenium.webdriver.common.by import By

    badge = driver.find_element(By.CSS_SELECTOR, selector)
    return badge.text, badge.value_of_css_property("color")


@pytest.mark.parametrize(("scenario", "ending"), [
    ("healthy", ["SIP OPTIONS", "SIP 200 OK"]),
    ("untrusted-ca", ["TCP RST right after the RMX certificate"]),
    ("not-trusted-app", ["SIP OPTIONS", "SIP 403 Forbidden"]),
])
def test_lab_pages_draw_the_handshake_in_order_with_the_verdict_of_the_json_report(
        browser: Any, tmp_path: Path, scenario: str, ending: list[str]) -> None:
    """Given a lab daemon of the scenario, When its target page and overview load in Chromium, Then
    no console error, the mtls ladder shows the recorded steps in wire order and then how it ended,
    and the verdict badge's word and colour are the JSON report's."""
    with lab_daemon(scenario, tmp_path) as lab:
        target = lab.report()["targets"][0]
        mtls = next(p for p in target["probes"] if p["probe"] == "mtls")
        recorded = mtls["result"]["registrars"][0]["ladder"]
        start = time.perf_counter()
        served = requests.get(lab.urls["page"], timeout=10)
        fetched = time.perf_counter() - start
        errors, asked = _open(browser, lab.urls["page"])
        assert errors == []
        steps = ladder_labels(browser)
        labels = [label.split(". ", 1)[1] for _, label, _ in steps]
        assert labels == _drawn(recorded) + ending
        assert [int(label.split(".")[0]) for _, label, _ in steps] == list(range(1, len(steps) + 1))
        assert [y for _, _, y in steps] == sorted({y for _, _, y in steps})  # top to bottom, one row each
        assert _in_order(KEY_STEPS, labels)
        status = target["status"]
        assert _verdict(browser, ".headline .verdict") == (status.upper(), COLOURS[status])
        assert all(u.startswith(lab.urls["overview"]) or u.startswith("data:") for u in asked), asked
        print(f"\n{scenario}: target page {len(served.content)} bytes, fetched in {fetched * 1000:.1f} ms")
        # And the overview shows the same verdict for the target
        errors, _ = _open(browser, lab.urls["overview"])
        assert errors == []
        row = f'tr[data-target="{target["name"]}"] .verdict'
        assert _verdict(browser, row) == (status.upper(), COLOURS[status])


def test_html_report_opens_from_a_file_with_the_network_off_and_asks_for_nothing(
        browser: Any, tmp_path: Path) -> None:
    """Given `rmxdiag lab --format html` of the unknown-CA scenario saved to a file, When Chromium opens
    it with the network emulated offline, Then it renders (verdict, ladder) with no console error and
    the only thing loaded is the file itself."""
    out = tmp_path / "report.html"
    with out.open("w") as fh:
        done = subprocess.run([sys.executable, "-m", "daemon.cli", "lab", "--scenario", "untrusted-ca",
                               "--format", "html"], stdout=fh, stderr=subprocess.PIPE, timeout=120, check=False,
                              env={"TMPDIR": str(tmp_path), "PATH": "/usr/bin:/bin", "NO_COLOR": "1"})
    assert done.returncode == 2, done.stderr
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", {
        "offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    try:
        errors, asked = _open(browser, out.as_uri())
        assert errors == []
        assert [u for u in asked if not u.startswith("data:")] == [out.as_uri()]
        assert _verdict(browser, ".headline .verdict") == ("CRITICAL", COLOURS["critical"])
        assert [label for _, label, _ in ladder_labels(browser)][-1].endswith("TCP RST right after the RMX certificate")
        assert browser.execute_script("return document.scripts.length") == 0
        print(f"\nreport file: {out.stat().st_size} bytes")
        # And it prints: a PDF of several pages, with the ladder drawn and nothing hidden that matters
        pdf = base64.b64decode(browser.print_page())
        assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b", pdf)) >= 2
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
        try:
            from selenium.webdriver.common.by import By

            assert browser.find_element(By.CSS_SELECTOR, ".ladder-box svg").is_displayed()
            assert _verdict(browser, ".headline .verdict") == ("CRITICAL", COLOURS["critical"])
        finally:
            browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    finally:
        browser.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})


def _hostile_name(cn: str) -> x509.Name:
    # Over the 64 characters X.520 allows a CN: cryptography writes it when told not to check.
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn, _validate=False)])


@pytest.mark.filterwarnings("ignore:Attribute's length must be:UserWarning")
def test_hostile_names_reasons_and_alarm_texts_execute_nothing(browser: Any, tmp_path: Path) -> None:
    """Given a Front End whose certificate CN is a script and an img payload, whose issuing CA has a
    10 KB CN, which answers OPTIONS with the payload as reason phrase and ms-diagnostics reason, and an
    alarm report whose text is the payload, When the daemon's pages (overview, target, alert-driven
    run) and `rmxdiag run --format html` (offline) load in Chromium, Then nothing executes: no
    script or img element, window.__pwned unset, the title unchanged, zero hits on the listener the
    payload calls, no console error; the payload is there as text, the 10 KB name cut with its length."""
    with HitCounter() as counter:
        hit = f"http://127.0.0.1:{counter.port}"
        script = f'<script>window.__pwned=1;document.title="pwned";fetch("{hit}/script")</script>'
        img = f'"><img src="{hit}/img" onerror="window.__pwned=2;fetch(\'{hit}/onerror\')">'
        payload = script + img
        long_name = "L" * 10240
        root = pki.root_ca("Hostile Test Root CA")
        issuing = pki.issue(_hostile_name(long_name), root, ca=True, path_length=0)
        fe = pki.issue(_hostile_name(payload), issuing, sans=["pool.lab.example"], ip_sans=["127.0.0.1"])
        rmx = pki.issue(pki.name("rmx.lab.example", O="Contoso"), pki.intermediate_ca(root))
        files = rmx.write(tmp_path, "rmx")
        (tmp_path / "ca.pem").write_bytes(pki.pem(root.cert))
        write_alarm_report(tmp_path / "alarms.txt", (payload,))
        answer = (f"SIP/2.0 403 {payload}\r\nms-diagnostics: 1010;reason=\"{script}\";source=\"{img}\"\r\n"
                  "Content-Length: 0\r\n\r\n").encode()
        port = free_port()
        secret(tmp_path / "webhook.token", TOKEN.encode() + b"\n")
        with drip_sip_server(fe, tmp_path, interval=0, answer=answer, send_chain=True) as fe_port:
            config = write(tmp_path / "rmxdiag.yaml", f"""
settings: {{listen: "127.0.0.1:{port}", interval: 30, deadline: 5, state_dir: state}}
webhook: {{token_file: webhook.token, cooldown: 0}}
targets:
  - name: hostile
    fqdn: rmx.lab.example
    certificate: {{cert: {files['cert'].name}, key: {files['key'].name}, chain: {files['chain'].name}}}
    ca_bundle: ca.pem
    registrars: [{{host: 127.0.0.1, port: {fe_port}, sni: pool.lab.example}}]
    alarms: {{report_files: [alarms.txt]}}
""")
            with serve(config, port) as daemon:
                eventually("the first run", lambda: requests.get(
                    daemon.url + "/api/v1/report?target=hostile", timeout=10).status_code == 200, timeout=30)
                report = requests.get(daemon.url + "/api/v1/report?target=hostile", timeout=10).json()
                codes = {h["code"] for h in report["targets"][0]["hints"]}
                assert "SIP_NOT_TRUSTED" in codes, codes  # the peer really answered with the payload
                assert daemon.alert("hostile").status_code == 202
                runs = eventually("the stored run", daemon.runs, timeout=30)
                pages = [daemon.url + "/", daemon.url + "/targets/hostile", f"{daemon.url}/runs/{runs[0]}"]
                # The overview names causes, not evidence: the payload is only in attributes there
                _assert_inert(browser, pages[0], payload, shown=False)
                for url in pages[1:]:
                    _assert_inert(browser, url, payload)
                    _assert_long_name(browser, long_name)
            report_file = tmp_path / "report.html"
            with report_file.open("w") as fh:
                done = subprocess.run([sys.executable, "-m", "daemon.cli", "run", "-c", str(config),
                                       "--format", "html"], stdout=fh, stderr=subprocess.PIPE, timeout=60, check=False)
            assert done.returncode == 2, done.stderr
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        try:
            _assert_inert(browser, report_file.as_uri(), payload)
            _assert_long_name(browser, long_name)
        finally:
            browser.execute_cdp_cmd("Network.emulateNetworkConditions", {
                "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        assert counter.hits == []


def _assert_long_name(browser: Any, long_name: str) -> None:
    """The 10 KB CN is on the page whole (a tooltip) and shown cut, with its length."""
    from selenium.webdriver.common.by import By

    assert long_name in browser.page_source
    assert f"({len(long_name) + 3} characters)" in browser.find_element(By.TAG_NAME, "body").text


def _assert_inert(browser: Any, url: str, payload: str, shown: bool = True) -> None:
    """The page at ``url`` loads, ran none of ``payload``, asked only its own origin for anything, and
    (``shown``) shows the payload as text."""
    from selenium.webdriver.common.by import By

    origin = "file://" if url.startswith("file:") else "/".join(url.split("/", 3)[:3]) + "/"
    errors, asked = _open(browser, url)
    assert errors == [], (url, errors)
    assert browser.execute_script("return window.__pwned") is None, url
    assert browser.title.startswith("rmxdiag"), (url, browser.title)
    assert browser.execute_script(
        "return document.querySelectorAll('script,img,iframe,object,embed,foreignObject').length") == 0, url
    assert [u for u in asked if not u.startswith((origin, "data:"))] == [], asked
    assert (payload in browser.find_element(By.TAG_NAME, "body").text) is shown, url
