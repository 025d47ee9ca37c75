"""Which Host headers the daemon serves: the DNS rebinding check and where it applies."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from daemon.config.model import Config, ServerConfig
from daemon.serve.access import exposure_warning, host_allowed
from probes.target import Settings


def _config(listen: str, **server: object) -> Config:
    return Config(Path("rmxdiag.yaml"), Settings(listen=listen), (), server=ServerConfig(**server))  # type: ignore[arg-type]


@pytest.mark.parametrize("listen", ["127.0.0.1:9817", "[::1]:9817", "localhost:9817"])
def test_a_loopback_daemon_serves_only_names_that_are_its_own(listen: str) -> None:
    """Given a daemon on loopback (reachable from outside only through a browser on this machine),
    When requests name a rebound foreign name, or this machine's own names and addresses,
    Then the foreign name is refused and the others are served."""
    config = _config(listen)
    assert not host_allowed(config, "rebind.attacker.example:9817")
    assert not host_allowed(config, "rebind.attacker.example")
    for host in ("127.0.0.1:9817", "[::1]:9817", "localhost", "app.localhost:9817", f"{socket.gethostname()}:9817",
                 "LOCALHOST.", None, ""):
        assert host_allowed(config, host), host


def test_a_daemon_beyond_loopback_serves_any_name_unless_a_list_is_given() -> None:
    """Given a daemon listening on every address (the network reaches it; basic auth guards it),
    When it is reached by a DNS alias nobody listed,
    Then it is served, and a missing basic auth is warned about instead;
    And once server.allowed_hosts is set, only the listed (and own) names are served."""
    open_daemon = _config("0.0.0.0:9817")
    assert host_allowed(open_daemon, "monitoring-alias.corp.example:9817")
    warning = exposure_warning(open_daemon)
    assert warning is not None and "basic_auth" in warning
    listed = _config("0.0.0.0:9817", allowed_hosts=("rmxdiag-01.corp.example",))
    assert host_allowed(listed, "rmxdiag-01.corp.example:9817")
    assert host_allowed(listed, "10.1.2.3:9817")
    assert not host_allowed(listed, "monitoring-alias.corp.example:9817")
    assert not host_allowed(listed, "bad host with spaces")
