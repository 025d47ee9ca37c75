"""Session-wide fixtures: a generated lab PKI (never committed, never expiring mid-run); the peer summary."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon.lab import pki
from tests.support import debian
from tests.support.peers import CAPTURE_DENIED, LET_CAPTURE, PEER_MISSING, need


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``@pytest.mark.peer("tshark", ...)``: the named peers must be there (skip locally, fail in CI)."""
    for mark in item.iter_markers("peer"):
        for peer in mark.args:
            need(peer)

_MISSING = re.compile(re.escape(PEER_MISSING) + r" ([^\s()]+) \(Debian package ([\w.+-]+)\)")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> Iterator[None]:
    """Count the tests skipped for a missing peer (or capture right) and say how to get it.

    A wrapper around pytest's own summary (whose short summary ends it), so these lines come
    right before pytest's closing line: the end of a local run says what it did not test.
    """
    yield
    peers: dict[str, str] = {}
    missing = denied = 0
    for report in terminalreporter.stats.get("skipped", []):
        reason = str(getattr(report, "longrepr", ""))
        found = _MISSING.search(reason)
        if found:
            missing += 1
            peers[found[1]] = found[2]
        denied += CAPTURE_DENIED in reason
    if denied:
        terminalreporter.write_line(f"{denied} tests skipped: {CAPTURE_DENIED} dumpcap cannot capture on lo as "
                                    f"this user: {LET_CAPTURE}", yellow=True, bold=True)
    if missing:
        # What dpkg says is missing (kamailio brings kamailio-tls-modules along), else the peers' own packages
        packages = debian.missing([p.name for p in debian.packages()]) or sorted(set(peers.values()))
        terminalreporter.write_line(
            f"{missing} tests skipped: peer missing ({', '.join(sorted(peers))}): "
            f"install with: {debian.install_command(packages)}", yellow=True, bold=True)


@pytest.fixture(scope="session", autouse=True)
def wide_text_reports() -> Iterator[None]:
    """Text reports of rmxdiag run by the tests are wrapped at 400 columns, so assertions on their
    content do not depend on where a line breaks; the wrapping itself is tested with COLUMNS set."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COLUMNS", "400")
        yield


@dataclass
class LabPKI:
    """Two independent CA hierarchies: the enterprise one and an unrelated one."""

    root: pki.Issued
    issuing: pki.Issued
    other_root: pki.Issued
    rmx: pki.Issued  # healthy RMX certificate (CN = FQDN, both EKUs, CDP) from the issuing CA
    fe: pki.Issued  # Front End certificate for the pool FQDN
    fqdn: str = "rmx.lab.example"
    pool: str = "pool.lab.example"

    def ca_bundle(self, directory: Path) -> Path:
        """The Front End's trust anchors (root + intermediate), PEM."""
        path = directory / "fe-trust.pem"
        path.write_bytes(pki.pem(self.root.cert) + pki.pem(self.issuing.cert))
        return path


@pytest.fixture(scope="session")
def lab_pki() -> Iterator[LabPKI]:
    """Given a fresh enterprise PKI for this test session."""
    root = pki.root_ca()
    issuing = pki.intermediate_ca(root)
    other = pki.root_ca("Unrelated Root CA")
    rmx = pki.issue(pki.name("rmx.lab.example", O="rmxdiag lab"), issuing,
                    cdp=["http://127.0.0.1:9/lab.crl"])
    fe = pki.issue(pki.name("fe01.lab.example"), issuing, sans=["pool.lab.example", "fe01.lab.example"],
                   ip_sans=["127.0.0.1"], cdp=["http://127.0.0.1:9/lab.crl"])
    yield LabPKI(root, issuing, other, rmx, fe)
