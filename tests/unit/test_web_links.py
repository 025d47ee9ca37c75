"""Where the pages are linked from: the external URL, the CLI's text report, the Grafana dashboard."""

from __future__ import annotations

import io
import json
import socket
from contextlib import redirect_stdout
from pathlib import Path

from daemon.commands._common import emit
from daemon.config.model import Config, ServerConfig
from daemon.report import Report, TargetReport, now_utc
from probes.target import Settings
from tests.support.config import ROOT

DASHBOARD = ROOT / "config" / "grafana" / "dashboards" / "rmxdiag.json"


def _config(listen: str, **server: object) -> Config:
    return Config(source=Path("x.yaml"), settings=Settings(listen=listen), targets=(),
                  server=ServerConfig(**server))  # type: ignore[arg-type]


def test_external_url_is_the_configured_one_else_derived_from_listen() -> None:
    """Given listen addresses, Then the page base URL is the configured one, else scheme://host:port
    (the bound port for :0, this host's name for a wildcard, https with TLS)."""
    assert _config("127.0.0.1:9817").external_url() == "http://127.0.0.1:9817"
    assert _config("127.0.0.1:0").external_url(port=40123) == "http://127.0.0.1:40123"
    assert _config("0.0.0.0:9817").external_url() == f"http://{socket.gethostname()}:9817"
    assert _config("[::]:9817").external_url() == f"http://{socket.gethostname()}:9817"
    assert _config("[::1]:9817").external_url() == "http://[::1]:9817"
    tls = _config("rmxdiag.example.com:9443", tls_cert=Path("c.pem"), tls_key=Path("k.pem"))
    assert tls.external_url() == "https://rmxdiag.example.com:9443"
    assert _config("127.0.0.1:9817", external_url="https://mon.example.com/rmxdiag").external_url(port=1) == \
        "https://mon.example.com/rmxdiag"


def test_text_report_names_each_targets_page_only_when_given() -> None:
    """Given a report, When printed as text with and without page URLs, Then only the former names them."""
    report = Report(now_utc(), (TargetReport("rmx-hq", ()),))
    for pages, expected in ((None, False), ({"rmx-hq": "https://mon.example.com/targets/rmx-hq"}, True)):
        out = io.StringIO()
        with redirect_stdout(out):
            emit(report, "text", pages)
        assert ("Web page of rmx-hq: https://mon.example.com/targets/rmx-hq\n" in out.getvalue()) is expected


def test_html_format_writes_one_page_and_keeps_the_exit_code() -> None:
    """Given a report, When emitted as html, Then stdout is one HTML document and the code is the report's."""
    report = Report(now_utc(), (TargetReport("rmx-hq", ()),))
    out = io.StringIO()
    with redirect_stdout(out):
        code = emit(report, "html")
    assert code == report.exit_code and out.getvalue().startswith("<!DOCTYPE html>")
    assert out.getvalue().count("<html") == 1


def test_every_dashboard_panel_links_to_the_target_page_through_the_url_variable() -> None:
    """Given the Grafana dashboard, Then a textbox variable holds the daemon's URL and every panel
    (all are per target) links to ``$rmxdiag_url/targets/<the row's target>``; the dashboard links
    to the overview."""
    dash = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["rmxdiag_url"]["type"] == "textbox" and variables["rmxdiag_url"]["query"].startswith("http")
    for panel in dash["panels"]:
        links = panel["fieldConfig"]["defaults"]["links"]
        field = "${__data.fields.target}" if panel["type"] == "table" else "${__field.labels.target}"
        assert [link["url"] for link in links] == [f"${{rmxdiag_url}}/targets/{field}"], panel["title"]
        assert all("target" in t["expr"] for t in panel["targets"])
    assert [link["url"] for link in dash["links"]] == ["${rmxdiag_url}/"]
