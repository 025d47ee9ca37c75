"""The config loader: the documented example loads; every invalid case gives its exact one-line message."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

from daemon.config.load import ConfigError, load_config
from tests.support.config import EXAMPLE, FIXTURES, materialise_example, materialise_fixture_files, touch

INVALID = sorted((FIXTURES / "invalid").glob("*.yaml"))


def _expected(fixture: Path, config: Path) -> str:
    first = fixture.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{fixture.name}: first line must be '# expect: MESSAGE'"
    return first.removeprefix("# expect: ").replace("{file}", str(config)).replace("{dir}", str(config.parent))


@pytest.mark.parametrize("fixture", INVALID, ids=[p.stem for p in INVALID])
def test_each_invalid_config_gives_its_exact_message(fixture: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the invalid config copied next to the files it references
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    materialise_fixture_files(tmp_path)
    config = tmp_path / "rmxdiag.yaml"
    shutil.copyfile(fixture, config)
    # When it is loaded
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    # Then the error is exactly the one line the fixture announces
    assert str(caught.value) == _expected(fixture, config)
    assert "\n" not in str(caught.value)


def test_there_is_a_fixture_per_kind_of_mistake() -> None:
    # Given the committed fixtures, Then the main mistakes each have one
    names = {p.stem for p in INVALID}
    assert {"unknown_top_key", "inline_password", "key_world_readable", "key_symlink", "password_file_too_big",
            "action_shell_string", "missing_file", "syntax_error"} <= names


def test_the_documented_example_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the example config with the files it names, relative to its own directory
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    config = materialise_example(tmp_path)
    # When it is loaded
    loaded = load_config(config)
    # Then every section is typed and relative paths resolved against the config's directory
    hq = loaded.target("rmx-hq")
    assert hq is not None and hq.certificate is not None
    assert hq.certificate.kind == "pfx" and hq.certificate.path == tmp_path / "certs/rmx-hq.pfx"
    assert [r.host for r in hq.registrars] == ["pool01.example.com", None]
    assert hq.registrars[1].srv_domain == "example.com"
    assert hq.interval == 120 and hq.deadline == 15 and hq.expiry_warning_days == 45
    branch = loaded.target("rmx-branch")
    assert branch is not None and branch.firmware == "7.x" and branch.certificate is not None
    assert branch.certificate.kind == "dir7x" and branch.interval == loaded.settings.interval
    assert loaded.server.basic_auth[0].username == "prometheus"
    assert loaded.actions[0].command[0] == "/usr/local/bin/request-rmx-cert" and loaded.actions[0].dry_run
    assert loaded.actions[1].http_url == "https://tickets.example.com/api/rmx"
    assert loaded.reports_keep == 50 and loaded.notify is not None
    assert loaded.schedule is True
    assert loaded.server.external_url == "https://rmxdiag.example.com:9817"


def test_schedule_false_leaves_runs_to_prometheus_and_alerts(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the example with scheduled probing switched off (a sharded, /probe-driven setup)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    config = materialise_example(tmp_path)
    config.write_text(config.read_text().replace("schedule: true", "schedule: false"))
    # Then the loaded config says so, and a non-boolean is refused naming the key
    assert load_config(config).schedule is False
    config.write_text(config.read_text().replace("schedule: false", "schedule: sometimes"))
    with pytest.raises(ConfigError, match="schedule"):
        load_config(config)


def test_every_key_of_the_example_is_commented() -> None:
    # Given the example file, Then every line that sets a key has a comment on it or just above it
    lines = EXAMPLE.read_text().splitlines()
    sections = {"settings:", "targets:", "server:", "webhook:", "notify:", "actions:", "reports:"}
    uncommented = [line for i, line in enumerate(lines)
                   if re.match(r"^\s*-?\s*[a-z_0-9]+:", line) and "#" not in line
                   and not lines[i - 1].lstrip().startswith("#") and line.strip() not in sections]
    assert uncommented == []


def _keys(value: object, prefix: str = "") -> set[str]:
    if isinstance(value, dict):
        found: set[str] = set()
        for key, child in value.items():
            found |= {f"{prefix}{key}"} | _keys(child, f"{prefix}{key}.")
        return found
    if isinstance(value, list):
        return set().union(*(_keys(item, prefix) for item in value)) if value else set()
    return set()


def test_the_example_shows_every_key_of_the_schema() -> None:
    # Given the schema's keys, Then each appears in the example (certificate variants in comments)
    shown = _keys(yaml.safe_load(EXAMPLE.read_text()))
    missing = sorted(SCHEMA_KEYS - shown)
    assert missing == []


SCHEMA_KEYS = {
    *(f"settings.{k}" for k in ("listen", "interval", "concurrency", "deadline", "state_dir",
                                "expiry_warning_days")),
    *(f"targets.{k}" for k in ("name", "fqdn", "signaling_ip", "firmware", "certificate", "ca_bundle",
                               "registrars", "alarms", "capture", "interval", "deadline", "expiry_warning_days",
                               "check_revocation", "certificate.pfx", "certificate.password_file",
                               "certificate.dir7x")),
    *(f"targets.registrars.{k}" for k in ("host", "srv_domain", "port", "sni", "tls_min", "tls_max",
                                          "sip_options")),
    *(f"targets.alarms.{k}" for k in ("report_files", "snmptrapd_log", "syslog_file", "xml_api",
                                      "xml_api.url", "xml_api.user_file", "xml_api.password_file",
                                      "xml_api.ca_bundle", "xml_api.timeout")),
    *(f"targets.capture.{k}" for k in ("files", "directory", "interface", "duration", "port", "max_packets",
                                       "max_bytes", "keylog")),
    *(f"server.{k}" for k in ("tls_cert_file", "tls_key_file", "basic_auth", "basic_auth.username",
                              "basic_auth.password_file", "max_connections", "header_timeout", "body_timeout",
                              "write_timeout", "probe_reuse", "max_body_bytes", "allowed_hosts")),
    *(f"webhook.{k}" for k in ("token_file", "target_label", "cooldown", "live_capture")),
    *(f"notify.{k}" for k in ("url", "token_file", "timeout")),
    *(f"actions.{k}" for k in ("code", "targets", "command", "http", "http.url", "http.method", "timeout",
                               "dry_run")),
    "reports.keep",
    "schedule",
}


def test_no_secret_value_reaches_repr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the example with distinctive secret contents
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    config = materialise_example(tmp_path)
    for name in ("secrets/rmx-hq.pfx.pass", "secrets/webhook.token", "secrets/rmx-hq-api.pass"):
        touch(tmp_path / name, secret=True, content=b"TOPSECRET-VALUE\n")
    # When the config is loaded and shown
    text = repr(load_config(config))
    # Then secrets appear only as paths
    assert "TOPSECRET" not in text and "secrets/webhook.token" in text


def test_credentials_directory_supplies_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a systemd credentials directory holding a group-readable password (systemd owns that dir)
    creds = tmp_path / "creds"
    touch(creds / "rmx-pass", content=b"pw\n")
    touch(tmp_path / "rmx.pfx", secret=True)
    config = tmp_path / "c.yaml"
    config.write_text("targets:\n  - name: rmx\n    certificate:\n      pfx: rmx.pfx\n"
                      "      password_file: {credential: rmx-pass}\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    # When it is loaded
    target = load_config(config).targets[0]
    # Then the password file is $CREDENTIALS_DIRECTORY/NAME
    assert target.certificate is not None and target.certificate.password is not None
    assert target.certificate.password.path == creds / "rmx-pass"


def test_unreadable_config_file_is_one_line(tmp_path: Path) -> None:
    # Given a path that does not exist, Then the error names it
    with pytest.raises(ConfigError, match=r"^.*/absent\.yaml: no such file$"):
        load_config(tmp_path / "absent.yaml")
    if os.geteuid() != 0:
        locked = touch(tmp_path / "locked.yaml")
        locked.chmod(0)
        with pytest.raises(ConfigError, match="cannot read"):
            load_config(locked)


def test_targets_can_share_a_block_with_merge_keys(tmp_path: Path) -> None:
    # Given two targets that merge a shared block and override one key
    (tmp_path / "ca.pem").write_text("x\n")
    config = tmp_path / "rmxdiag.yaml"
    config.write_text("""x-common: &common
  firmware: "7.x"
  ca_bundle: ca.pem
  registrars: [{host: pool.example.com}]
targets:
  - <<: *common
    name: rmx-a
  - <<: *common
    name: rmx-b
    firmware: "8.x"
""")
    # When loaded, Then an unknown top-level anchor holder is refused...
    with pytest.raises(ConfigError, match=r":1: x-common: unknown key$"):
        load_config(config)
    # ...and without it (anchor defined on the first target) both targets get the shared keys
    config.write_text("""targets:
  - &common
    name: rmx-a
    firmware: "7.x"
    ca_bundle: ca.pem
    registrars: [{host: pool.example.com}]
  - <<: *common
    name: rmx-b
    firmware: "8.x"
""")
    a, b = load_config(config).targets
    assert (a.name, a.firmware, b.name, b.firmware) == ("rmx-a", "7.x", "rmx-b", "8.x")
    assert a.registrars == b.registrars and b.ca_bundle == tmp_path / "ca.pem"


def test_absurd_nesting_is_one_config_error(tmp_path: Path) -> None:
    # Given a file of 100,000 nested lists (the YAML composer recurses once per level)
    config = tmp_path / "deep.yaml"
    config.write_text("targets: " + "[" * 100_000 + "\n")
    # When loaded, Then one ConfigError line, not a RecursionError
    with pytest.raises(ConfigError, match=r"deep\.yaml: (nested too deeply|invalid YAML)"):
        load_config(config)


def test_a_fifo_is_not_accepted_as_a_report_file(tmp_path: Path) -> None:
    # Given a named pipe where an alarm report file is expected
    os.mkfifo(tmp_path / "alerts.txt")
    config = tmp_path / "c.yaml"
    config.write_text("targets:\n  - name: rmx\n    alarms: {report_files: [alerts.txt]}\n")
    # When loaded (without opening it), Then one line says it is not a regular file
    with pytest.raises(ConfigError, match=r"c\.yaml:3: targets\[0\]\.alarms\.report_files\[0\]: .*alerts\.txt: "
                                          r"not a regular file$"):
        load_config(config)


@pytest.mark.parametrize(("yaml_text", "key"), [
    ('targets:\n  - name: "rmx-nl\\n"\n    registrars: [{host: fe.example}]\n', "name"),
    ('targets:\n  - name: rmx\n    registrars: [{host: "fe.example\\n"}]\n', "host"),
    ('targets:\n  - name: rmx\n    registrars: [{host: fe.example}]\nwebhook:\n  target_label: "target\\n"\n',
     "target_label"),
    ('targets:\n  - name: rmx\n    registrars: [{host: fe.example}]\nserver:\n  external_url: "http://x.example/\\n"\n',
     "external_url"),
    ('targets:\n  - name: rmx\n    registrars: [{host: fe.example}]\nnotify:\n  url: "https://chat.example/hook\\n"\n',
     "url"),
])
def test_a_trailing_newline_is_never_accepted_by_a_pattern(tmp_path: Path, yaml_text: str, key: str) -> None:
    """Given a value that is valid but for a trailing newline (`$` matches before one),
    When the config is loaded, Then it is refused naming the key."""
    config = tmp_path / "c.yaml"
    config.write_text(yaml_text)
    with pytest.raises(ConfigError, match=key):
        load_config(config)


def test_external_url_with_inline_credentials_is_refused(tmp_path: Path) -> None:
    """Given server.external_url carrying user:password@, When loaded,
    Then it is refused naming the key (the password not shown)."""
    config = tmp_path / "c.yaml"
    config.write_text("targets:\n  - name: rmx\n    registrars: [{host: fe.example}]\n"
                      "server:\n  external_url: https://user:CANARYpw@rmxdiag.example\n")
    with pytest.raises(ConfigError, match="external_url") as caught:
        load_config(config)
    assert "CANARYpw" not in str(caught.value)
