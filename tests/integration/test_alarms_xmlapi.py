"""The RMX XML API client against a loopback emulator: documented shapes, errors, hostile XML, secrets."""

from __future__ import annotations

import json
import logging
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from probes.alarms import probe as alarms
from probes.alarms.xmlapi import MAX_ANSWER, XmlApiError, fetch_state
from probes.model import ErrorKind, ProbeOutcome
from probes.target import SecretFile, XmlApi
from tests.support.alarms import LOGIN_OK, ok_answer, rmx_default, xml_api_server

CANARY = "CANARY-pw-7f3a9c<&>\"'"  # XML-special characters on purpose: the body must escape them


@pytest.fixture
def creds(tmp_path: Path) -> tuple[SecretFile, SecretFile]:
    """Given user and password files (the password is a canary that must never leak)."""
    user, password = tmp_path / "user", tmp_path / "password"
    user.write_text("POLYCOM\n")
    password.write_text(CANARY + "\n")
    for secret in (user, password):  # the configuration's rule for secret files holds on the command line too
        secret.chmod(0o600)
    return SecretFile(user), SecretFile(password)


def _api(url: str, creds: tuple[SecretFile, SecretFile], timeout: float = 5.0, ca: Path | None = None) -> XmlApi:
    return XmlApi(url, creds[0], creds[1], ca, timeout)


def _assert_no_canary(*texts: str) -> None:
    for text in texts:
        assert "CANARY" not in text


def _failed(outcome: ProbeOutcome, kind: ErrorKind) -> str:
    assert outcome.status == "failed" and outcome.error is not None and outcome.error.kind is kind, outcome
    assert "\n" not in outcome.error.detail
    return outcome.error.detail


def test_login_get_state_logout_over_verified_https(tmp_path: Path, lab_pki: object,
                                                    creds: tuple[SecretFile, SecretFile]) -> None:
    # Given an HTTPS emulator whose certificate chains to the lab CA, and that CA as the bundle
    paths = lab_pki.fe.write(tmp_path / "srv", "fe")  # type: ignore[attr-defined]
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    chain = tmp_path / "fe-full.pem"
    chain.write_bytes(paths["cert"].read_bytes() + paths["chain"].read_bytes())
    ctx.load_cert_chain(chain, paths["key"])
    bundle = lab_pki.ca_bundle(tmp_path)  # type: ignore[attr-defined]
    with xml_api_server(rmx_default, ctx) as rmx:
        outcome = alarms.check([], _api(rmx.url, creds, ca=bundle))
    # Then LOGIN, GET_STATE (with the tokens from LOGIN) and LOGOUT were sent, in order
    assert [b"<LOGIN>" in r for r in rmx.requests] == [True, False, False]
    assert b"<GET_STATE/>" in rmx.requests[1] and b"<MCU_USER_TOKEN>4712</MCU_USER_TOKEN>" in rmx.requests[1]
    assert b"<LOGOUT/>" in rmx.requests[2]
    # And the password was sent escaped (so the canary is meaningful below)
    assert b"<PASSWORD>CANARY-pw-7f3a9c&lt;&amp;&gt;\"'</PASSWORD>" in rmx.requests[0]
    assert outcome.status == "ok" and outcome.result is not None
    assert outcome.result.to_json()["xml_api"] == {"mcu_state": "major", "mcu_state_id": 3, "active_alarms": 2}
    assert [f.code for f in outcome.findings] == ["ALARMS_XML_API"]


def test_unverifiable_https_is_refused_by_default(tmp_path: Path, lab_pki: object,
                                                  creds: tuple[SecretFile, SecretFile]) -> None:
    paths = lab_pki.fe.write(tmp_path / "srv", "fe")  # type: ignore[attr-defined]
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(paths["cert"], paths["key"])
    with xml_api_server(rmx_default, ctx) as rmx:
        detail = _failed(alarms.check([], _api(rmx.url, creds)), ErrorKind.UPSTREAM)
    assert "TLS verification" in detail and rmx.requests == []  # nothing (no password) was sent


def test_login_refused_with_status_and_echoed_password_is_scrubbed(creds: tuple[SecretFile, SecretFile],
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    # Given an RMX that refuses LOGIN and (worst case) echoes the password, whole or in part
    from xml.sax.saxutils import escape

    caplog.set_level(logging.DEBUG)
    for echoed in (CANARY, CANARY.split("<", maxsplit=1)[0], CANARY[7:15]):
        def handler(body: bytes, echoed: str = echoed) -> tuple[int, bytes, float]:
            return 200, ok_answer("LOGIN", status=-2, desc=escape(f"bad password {echoed}")), 0.0

        with xml_api_server(handler) as rmx:
            detail = _failed(alarms.check([], _api(rmx.url, creds)), ErrorKind.UPSTREAM)
        assert "LOGIN refused" in detail and "withheld" in detail
        _assert_no_canary(detail, caplog.text)
        assert echoed not in detail
    # And an ordinary refusal keeps the RMX's own words
    with xml_api_server(lambda body: (200, ok_answer("LOGIN", status=-2, desc="User name or password is "
                                                                               "incorrect"), 0.0)) as rmx:
        detail = _failed(alarms.check([], _api(rmx.url, creds)), ErrorKind.UPSTREAM)
    assert "LOGIN refused: RETURN_STATUS -2 (User name or password is incorrect)" in detail


@pytest.mark.parametrize(("answer", "kind", "expected"), [
    ((500, b"oops", 0.0), ErrorKind.UPSTREAM, "HTTP 500"),
    ((302, b"", 0.0), ErrorKind.UPSTREAM, "HTTP 302"),
    ((200, b"<RESPONSE_TRANS_MCU><RETURN_STATUS><ID>0</ID>", 0.0), ErrorKind.UPSTREAM, "not well-formed"),
    ((200, b"not xml at all", 0.0), ErrorKind.UPSTREAM, "not well-formed"),
    ((200, ok_answer("LOGIN", "<MCU_TOKEN>1</MCU_TOKEN>"), 0.0), ErrorKind.UPSTREAM, "no MCU_TOKEN/MCU_USER_TOKEN"),
    ((200, b"<RESPONSE_TRANS_MCU/>", 0.0), ErrorKind.UPSTREAM, "no RETURN_STATUS/ID"),
    ((200, LOGIN_OK, 10.0), ErrorKind.DEADLINE, "LOGIN timed out"),
])
def test_error_answers_become_one_line_outcomes(answer: tuple[int, bytes, float], kind: ErrorKind, expected: str,
                                                creds: tuple[SecretFile, SecretFile],
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with xml_api_server(lambda body: answer) as rmx:
        started = time.monotonic()
        # A short timeout only where slowness is the point: a loaded machine must not turn the
        # other cases into timeouts.
        timeout = 0.5 if answer[2] else 5.0
        detail = _failed(alarms.check([], _api(rmx.url, creds, timeout=timeout)), kind)
        elapsed = time.monotonic() - started
    assert expected in detail, detail
    assert elapsed < 5.0  # the 10 s answer is cut at the 0.5 s timeout, not waited for
    _assert_no_canary(detail, caplog.text)


BILLION_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                             for i in range(1, 10))
                  + b']><RESPONSE_TRANS_MCU><RETURN_STATUS><ID>0</ID></RETURN_STATUS>'
                  b'<MCU_TOKEN>&lol9;</MCU_TOKEN><MCU_USER_TOKEN>1</MCU_USER_TOKEN></RESPONSE_TRANS_MCU>')
EXTERNAL = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            b"<RESPONSE_TRANS_MCU><RETURN_STATUS><ID>0</ID><DESCRIPTION>&xxe;</DESCRIPTION></RETURN_STATUS>"
            b"</RESPONSE_TRANS_MCU>")


OVERSIZED = b"<RESPONSE_TRANS_MCU>" + b"<X>y</X>" * (MAX_ANSWER // 8) + b"</RESPONSE_TRANS_MCU>"


@pytest.mark.parametrize("hostile", [BILLION_LAUGHS, EXTERNAL, b"<a>" * 5000 + b"</a>" * 5000, OVERSIZED])
def test_hostile_xml_is_refused_quickly_and_bounded(hostile: bytes, creds: tuple[SecretFile, SecretFile]) -> None:
    # Given an answer that is an entity bomb, an external entity, absurd nesting or oversized
    import resource

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with xml_api_server(lambda body: (200, hostile, 0.0)) as rmx:
        started = time.monotonic()
        detail = _failed(alarms.check([], _api(rmx.url, creds)), ErrorKind.UPSTREAM)
        elapsed = time.monotonic() - started
    # Then it is refused, fast, without expanding anything or reading local files
    assert any(w in detail for w in ("DTDForbidden", "too deep", "larger than")), detail
    assert "root:" not in detail
    assert elapsed < 5.0  # generous for a loaded CI machine; expanding the bomb would take far longer
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 64 * 1024  # KiB: < 64 MiB growth


def test_credentials_from_the_systemd_credentials_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given LoadCredential= files and relative names in the config
    creds_dir = tmp_path / "creds"
    creds_dir.mkdir()
    (creds_dir / "rmx-user").write_text("admin\n")
    (creds_dir / "rmx-password").write_text(CANARY)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds_dir))
    with xml_api_server(rmx_default) as rmx:
        state = fetch_state(XmlApi(rmx.url, SecretFile(Path("rmx-user")), SecretFile(Path("rmx-password"))))
    assert state.active_alarms == 2 and b"<USER_NAME>admin</USER_NAME>" in rmx.requests[0]


def test_missing_secret_file_names_the_file_only(tmp_path: Path) -> None:
    api = XmlApi("http://127.0.0.1:9/", SecretFile(tmp_path / "nope"), SecretFile(tmp_path / "nope2"))
    with pytest.raises(XmlApiError) as info:
        fetch_state(api)
    assert info.value.kind is ErrorKind.FILE_UNREADABLE and str(tmp_path / "nope") in str(info.value)


def test_cli_never_prints_the_password(tmp_path: Path, creds: tuple[SecretFile, SecretFile]) -> None:
    # Given the CLI at maximum verbosity against an RMX that refuses the login, and one that works
    refuse = lambda body: (200, ok_answer("LOGIN", status=1, desc="denied"), 0.0)  # noqa: E731
    for handler, code in ((refuse, 3), (rmx_default, 0)):
        with xml_api_server(handler) as rmx:
            result = subprocess.run(
                [sys.executable, "-m", "daemon.cli", "-vv", "alarms", "--xml-api", rmx.url,
                 "--user-file", str(creds[0].path), "--password-file", str(creds[1].path), "--format", "json"],
                capture_output=True, text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"})
        assert result.returncode == code, result.stderr
        _assert_no_canary(result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        if code == 0:
            doc = json.loads(result.stdout)
            assert doc["targets"][0]["probes"][0]["result"]["xml_api"]["active_alarms"] == 2


def test_secret_that_is_a_device_is_refused(tmp_path: Path) -> None:
    (tmp_path / "user").write_text("u")
    (tmp_path / "user").chmod(0o600)
    api = XmlApi("http://127.0.0.1:9/", SecretFile(tmp_path / "user"), SecretFile(Path("/dev/zero")))
    with pytest.raises(XmlApiError) as info:
        fetch_state(api)
    assert info.value.kind is ErrorKind.BAD_INPUT and "/dev/zero" in str(info.value)
