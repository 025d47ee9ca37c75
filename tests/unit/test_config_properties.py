"""The config loader never fails with anything but one ConfigError line, whatever the YAML (hypothesis)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.config.load import ConfigError, load_config
from daemon.config.model import Config

KEYS = ["settings", "targets", "server", "webhook", "notify", "actions", "reports", "name", "fqdn", "firmware",
        "certificate", "pfx", "password_file", "cert", "key", "registrars", "host", "port", "srv_domain", "tls_min",
        "tls_max", "alarms", "report_files", "capture", "files", "interval", "deadline", "code", "command",
        "credential", "password", "keep", "listen", "basic_auth", "username", "url", "bogus"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 70000), st.floats(allow_nan=True),
                    st.sampled_from(["rmx", "7.x", "8.x", "1.2", "fe.example.com", "a.pem", "CERT_EXPIRED",
                                     "127.0.0.1:9817", "", " ", "../x", "/dev/null", "http://x"]),
                    st.text(max_size=8))
documents = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)), max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS[:7]), documents, max_size=4))
def test_any_document_gives_a_config_or_one_config_error(document: dict[str, object]) -> None:
    # Given any YAML document built from schema-like keys and values
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rmxdiag.yaml"
        path.write_text(yaml.safe_dump(document))
        # When loaded, Then it is a Config or a ConfigError of one line naming the file
        try:
            assert isinstance(load_config(path), Config)
        except ConfigError as exc:
            assert str(exc).startswith(str(path)) and "\n" not in str(exc)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_give_a_config_error(data: bytes) -> None:
    # Given arbitrary bytes as a config file, Then loading fails with one ConfigError line (never a crash)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rmxdiag.yaml"
        path.write_bytes(data)
        try:
            load_config(path)
        except ConfigError as exc:
            assert "\n" not in str(exc)
