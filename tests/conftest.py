"""Session-wide fixtures: a generated lab PKI (never committed, never expiring mid-run)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon.lab import pki


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
