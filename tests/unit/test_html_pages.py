"""Pages and ladders drawn from committed lab report documents (pure: no daemon, no browser)."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from daemon.html import ladder, pages
from daemon.html.style import CSP_HEADER, CSP_META, CSS, STYLE_HASH
from daemon.html.view import registrars

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "html"
NOW = datetime(2027, 1, 1, tzinfo=UTC)
SCRIPT = "<script>window.__pwned=1</script>"
IMG = '"><img src=x onerror="window.__pwned=2">'


def doc(name: str) -> dict[str, Any]:
    """A committed lab report document."""
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


def target(name: str) -> dict[str, Any]:
    """The one target of a committed lab report document."""
    found: dict[str, Any] = doc(name)["targets"][0]
    return found


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text, of a page."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def named(self, tag: str) -> list[dict[str, str | None]]:
        """Attributes of every ``tag`` element."""
        return [attrs for t, attrs in self.tags if t == tag]


def labels(steps: list[ladder.Step]) -> list[tuple[str, str, str]]:
    """(direction, label, tone) of each step."""
    return [(s.direction, s.label, s.tone) for s in steps]


def test_unknown_ca_ladder_shows_the_ca_list_without_the_issuer_then_the_front_ends_reset() -> None:
    """Given the untrusted-ca lab report, When its mtls attempt is drawn, Then the steps run from the
    ClientHello to the RST the Front End sent right after the RMX certificate, in wire order."""
    t = target("untrusted-ca")
    steps = ladder.mtls_steps(registrars(t)[0], t["probes"][1]["result"]["client_chain"])
    assert [label for _, label, _ in labels(steps)] == [
        "ClientHello", "ServerHello", "Certificate (the Front End chain)", "ServerKeyExchange", "CertificateRequest",
        "ServerHelloDone", "Certificate (the RMX chain)", "ClientKeyExchange", "CertificateVerify",
        "ChangeCipherSpec", "Finished", "TCP RST right after the RMX certificate"]
    request = steps[4]
    assert request.tone == "bad" and "CN=Contoso Lab Root CA,O=rmxdiag lab" in request.details
    assert any("NOT in the list: CN=Fabrikam Partner Issuing CA" in d for d in request.details)
    assert (steps[-1].direction, steps[-1].tone) == ("from_fe", "bad")
    assert "sent by the Front End" in steps[-1].details[0]
    assert "subject CN=rmx.lab.example,O=Contoso" in steps[6].details


def test_sip_403_ladder_ends_with_the_options_and_the_403_with_its_diagnostics() -> None:
    """Given the not-trusted-app lab report, Then the handshake completes and the OPTIONS gets 403 from the FE."""
    t = target("not-trusted-app")
    steps = ladder.mtls_steps(registrars(t)[0], [])
    assert labels(steps)[-2:] == [("from_rmx", "SIP OPTIONS", ""), ("from_fe", "SIP 403 Forbidden", "bad")]
    assert steps[-1].details[0].startswith('ms-diagnostics: 1010;reason="Certificate trust with the peer')


def test_healthy_ladder_ends_green_and_a_refused_connection_is_a_syn_and_a_reset() -> None:
    """Given the healthy and registrar-down reports, Then 200 is good, and refused shows SYN then RST."""
    assert labels(ladder.mtls_steps(registrars(target("healthy"))[0], []))[-1] == ("from_fe", "SIP 200 OK", "good")
    assert labels(ladder.mtls_steps(registrars(target("registrar-down"))[0], [])) == [
        ("from_rmx", "TCP SYN", ""), ("from_fe", "TCP RST: connection refused", "bad")]


def test_an_alert_says_who_sent_it_and_close_notify_is_no_failure() -> None:
    """Given alerts from each side, Then each names its sender; only close_notify is not marked bad."""
    reg = {"stage": "tls", "reason": "alert_unknown_ca", "ladder": [
        {"direction": "from_rmx", "message": "ClientHello"},
        {"direction": "from_fe", "message": "alert 48 unknown_ca (fatal)"}]}
    assert ladder.mtls_steps(reg, [])[-1] == ladder.Step("from_fe", "alert 48 unknown_ca (fatal)",
                                                         ("sent by the Front End",), "bad")
    reg = {"stage": "tls", "reason": "server_cert_untrusted", "verify_message": "unable to get local issuer",
           "ladder": [{"direction": "from_rmx", "message": "alert 48 unknown_ca (fatal)"},
                      {"direction": "from_rmx", "message": "alert 0 close_notify"}]}
    steps = ladder.mtls_steps(reg, [])
    assert steps[0].details == ("sent by the RMX (rmxdiag, as the RMX)",) and steps[1].tone == ""
    assert steps[-1].label == "the RMX cannot verify the Front End chain" and "unable to get local issuer" in \
        steps[-1].details


def test_capture_history_becomes_the_same_ladder() -> None:
    """Given the untrusted-ca capture's connection, Then C:/S: tokens become arrows ending in the FE's RST."""
    conn = target("untrusted-ca")["probes"][3]["result"]["connection_summaries"][0]
    steps = ladder.capture_steps(conn)
    assert labels(steps)[0] == ("from_rmx", "SYN", "")
    assert labels(steps)[-1] == ("from_fe", "TCP RST", "bad")
    assert [s.tone for s in steps if s.label == "CertificateRequest"] == ["bad"]
    sip = ladder.capture_steps(target("not-trusted-app")["probes"][3]["result"]["connection_summaries"][0])
    assert ("from_fe", "SIP 403 Forbidden", "bad") in labels(sip)


def test_svg_rows_follow_the_steps_top_to_bottom() -> None:
    """Given steps, When drawn, Then each is a group in order, lower on the page than the one before."""
    steps = ladder.mtls_steps(registrars(target("not-trusted-app"))[0], [])
    drawing = Tags(ladder.svg(steps, "x"))
    groups = [a for a in drawing.named("g")]
    assert [g["data-n"] for g in groups] == [str(n) for n in range(1, len(steps) + 1)]
    assert [g["data-dir"] for g in groups] == [s.direction for s in steps]
    ys = [float(t["y"] or 0) for t in drawing.named("text") if t.get("class") == "msg"]
    assert ys == sorted(ys) and len(set(ys)) == len(ys) == len(steps)


def test_report_file_is_self_contained_and_its_policy_admits_only_its_own_style() -> None:
    """Given a report, When written as one HTML file, Then it has no script, loads nothing, carries the
    policy in a meta element, and the policy's hash is the hash of its one style element."""
    page = pages.report_file(doc("untrusted-ca"), NOW)
    tags = Tags(page)
    assert tags.named("script") == [] and tags.named("img") == [] and tags.named("iframe") == []
    assert [m["content"] for m in tags.named("meta") if m.get("http-equiv")] == [CSP_META]
    style = re.search(r"<style>(.*?)</style>", page, re.S)
    assert style and style.group(1) == CSS
    assert STYLE_HASH == "'sha256-" + base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode() + "'"
    assert "script-src" not in CSP_META and "default-src 'none'" in CSP_META and "frame-ancestors 'none'" in CSP_HEADER
    for attrs in tags.tags:
        for key in ("href", "src"):
            value = attrs[1].get(key)
            assert value is None or value.startswith(("#", "data:")), value
    assert " style=" not in page and "javascript:" not in page


def _poison(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _poison(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_poison(v) for v in value]
    if isinstance(value, str) and value not in ("critical", "warning", "info", "ok", "unknown", "from_fe", "from_rmx"):
        return value + SCRIPT + IMG
    return value


@pytest.mark.parametrize("scenario", ["untrusted-ca", "not-trusted-app", "registrar-down"])
def test_every_string_of_a_hostile_report_stays_text(scenario: str) -> None:
    """Given a report whose every string (subjects, SIP reason, alarm texts, evidence, history) ends in
    a script and an img payload, When drawn as a file, a target page, a run page and the overview,
    Then no script or img element exists and the payload is readable text."""
    hostile = _poison(copy.deepcopy(doc(scenario)))
    t = hostile["targets"][0]
    row = pages.TargetRow("rmx" + SCRIPT, "8.x" + IMG, t, NOW.timestamp() - 5)
    run = pages.RunRow("20270101T000000Z-0001-x", "x", "critical", "2027", "line" + SCRIPT)
    for page in (pages.report_file(hostile, NOW), pages.target_page(row, [run], NOW),
                 pages.run_page("id" + SCRIPT, {**hostile, "actions": [{"code": IMG, "detail": SCRIPT}]}, NOW),
                 pages.overview([row], [run], NOW)):
        tags = Tags(page)
        assert tags.named("script") == [] and tags.named("img") == []
        assert not [a for _, a in tags.tags if any(k.startswith("on") for k in a)]
        assert SCRIPT in "".join(tags.text)


def test_overview_lists_worst_first_groups_each_root_cause_once_and_shows_pending_targets() -> None:
    """Given four targets (healthy, two critical with the same cause, one without a run), Then the
    table runs critical, critical, ok, pending, and the shared cause lists both targets once."""
    rows = [pages.TargetRow("a-healthy", "8.x", target("healthy"), NOW.timestamp() - 30),
            pages.TargetRow("b-403", "8.x", target("not-trusted-app"), NOW.timestamp() - 60),
            pages.TargetRow("c-new", "7.x", None, None),
            pages.TargetRow("d-403", "8.x", target("not-trusted-app"), NOW.timestamp() - 90)]
    tags = Tags(pages.overview(rows, [], NOW))
    table = [(r["data-target"], r["data-status"]) for r in tags.named("tr") if r.get("data-target")]
    assert table == [("b-403", "critical"), ("d-403", "critical"), ("a-healthy", "ok"), ("c-new", "pending")]
    causes = [d["data-code"] for d in tags.named("div") if d.get("data-code")]
    assert causes == ["SIP_NOT_TRUSTED"]
    links = [a["href"] for a in tags.named("a")]
    assert "targets/b-403" in links and "api/v1/report?target=b-403" in links and "metrics" in links


def test_verdict_badges_carry_colour_class_and_word() -> None:
    """Given each scenario, Then the page's badge has the status as class, data and upper-case word."""
    for scenario, status in (("healthy", "ok"), ("untrusted-ca", "critical"), ("registrar-down", "critical")):
        page = pages.report_file(doc(scenario), NOW)
        assert f'<span class="verdict v-{status}" data-status="{status}">{status.upper()}</span>' in page


def test_run_page_shows_actions_and_whether_the_hint_cleared() -> None:
    """Given a stored run with an action and its re-probe, Then both are on the run page."""
    stored = {**doc("not-trusted-app"), "trigger": "alertmanager",
              "actions": [{"code": "SIP_NOT_TRUSTED", "kind": "http", "outcome": "ok", "detail": "HTTP 200",
                           "duration_seconds": 0.1}],
              "after_actions": {"status": "ok", "cleared": {"SIP_NOT_TRUSTED": True}}}
    page = pages.run_page("20270101T000000Z-0007-lab", stored, NOW)
    assert "Remediation actions" in page and "<li><code>SIP_NOT_TRUSTED</code>: cleared</li>" in page
    assert 'href="../api/v1/report/runs/20270101T000000Z-0007-lab"' in page


def test_the_overviews_reduced_documents_draw_the_same_page_as_full_reports() -> None:
    """Given reports with chains, a critical hint and a probe that could not run, When the overview is
    drawn from the reduced documents the daemon uses and from the full ones, Then the pages are equal."""
    from daemon.diagnosis.diagnose import diagnose
    from daemon.report import TargetReport
    from daemon.serve.webpages import overview_doc
    from probes.model import ErrorKind, Finding, ProbeOutcome, ProbeStatus, Severity, failed
    from tests.support.daemon import mtls_result

    ok = ProbeOutcome("mtls", ProbeStatus.OK, 0.1, (Finding("MTLS_OK", Severity.INFO, "ok"),),
                      result=mtls_result(client_chain=(NOW, NOW)))
    bad = ProbeOutcome("mtls", ProbeStatus.OK, 0.1, (Finding("SIP_NOT_TRUSTED", Severity.CRITICAL, "403"),),
                       result=mtls_result(sip_status=403))
    broken = failed("certificate", ErrorKind.FILE_UNREADABLE, "rmx.pem: no such file")
    reports = [TargetReport(name, outcomes, diagnose(outcomes))
               for name, outcomes in (("a", (ok,)), ("b", (bad,)), ("c", (ok, broken)))]
    assert [r.status for r in reports] == ["ok", "critical", "unknown"]
    full = [pages.TargetRow(r.name, "8.x", r.to_json(), 1.0) for r in reports]
    reduced = [pages.TargetRow(r.name, "8.x", overview_doc(r), 1.0) for r in reports]
    assert pages.overview(reduced, [], NOW) == pages.overview(full, [], NOW)
