"""The certificate probe's scheduler entry point: envelope, cache, deadline, and the `fetch` kind
against a real TLS server (openssl s_server)."""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.engine import run_probe
from daemon.lab import pki
from probes.certificate import probe as certificate
from probes.model import ErrorKind, ProbeStatus
from probes.target import CertificateSource, ProbeContext, SecretFile, Settings, Target
from tests.conftest import LabPKI
from tests.support.cert import CANARY, FQDN, password_file
from tests.support.peers import free_port, need, started, wait_for_port


def _ctx(seconds: float = 10.0, cache: dict[Any, Any] | None = None) -> ProbeContext:
    return ProbeContext(now=dt.datetime.now(dt.UTC), deadline=time.monotonic() + seconds,
                        cache=cache if cache is not None else {})


def _target(source: CertificateSource, bundle: Path | None = None) -> Target:
    return Target(name="rmx-lab", fqdn=FQDN, certificate=source, ca_bundle=bundle)


def test_run_pfx_source_and_cache(lab_pki: LabPKI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a configured PFX source and a counter on the parser
    pfx = tmp_path / "rmx.pfx"
    pfx.write_bytes(lab_pki.rmx.pfx(CANARY.encode()))
    bundle = tmp_path / "root.pem"
    bundle.write_bytes(pki.pem(lab_pki.root.cert))
    target = _target(CertificateSource("pfx", path=pfx, password=SecretFile(password_file(tmp_path))), bundle)
    calls: list[Path] = []
    real = certificate.load_certificate

    def counting(path: Path, password: bytes | None = None) -> Any:
        calls.append(path)
        return real(path, password)

    monkeypatch.setattr(certificate, "load_certificate", counting)
    cache: dict[Any, Any] = {}
    # When the scheduler runs the probe twice with one cache
    first = run_probe("certificate", target, Settings(), _ctx(cache=cache))
    second = run_probe("certificate", target, Settings(), _ctx(cache=cache))
    # Then both are healthy and the unchanged file was parsed once
    assert first.status is ProbeStatus.OK and first.healthy and second.healthy
    assert len(calls) == 1
    # When the file changes (new content, new mtime), Then it is parsed again and judged anew
    pfx.write_bytes(lab_pki.rmx.pfx(b"another password"))
    os.utime(pfx, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    third = run_probe("certificate", target, Settings(), _ctx(cache=cache))
    assert len(calls) == 2
    assert {f.code for f in third.findings} == {"PFX_BAD_PASSWORD"}
    # And the cache holds one slot per source, not one per file version
    assert sum(1 for k in cache if k[0] == "certificate-material") == 1


def test_run_never_raises_on_bad_input(tmp_path: Path) -> None:
    # Given a source whose file does not exist, Then a failed envelope, not an exception
    target = _target(CertificateSource("pem", path=tmp_path / "gone.pem"))
    outcome = run_probe("certificate", target, Settings(), _ctx())
    assert outcome.status is ProbeStatus.FAILED and outcome.error is not None
    assert outcome.error.kind is ErrorKind.FILE_UNREADABLE and "gone.pem" in outcome.error.detail


def test_run_without_certificate_is_skipped() -> None:
    # Given a target without a certificate source, Then the probe is skipped
    assert run_probe("certificate", Target(name="x"), Settings(), _ctx()).status is ProbeStatus.SKIPPED


@pytest.fixture
def s_server(lab_pki: LabPKI, tmp_path: Path) -> Iterator[tuple[int, pki.Issued]]:
    """Given openssl s_server presenting the factory self-signed certificate on loopback."""
    openssl = need("openssl")
    factory = pki.factory_self_signed(FQDN)
    paths = factory.write(tmp_path, "factory")
    port = free_port()
    argv = [openssl, "s_server", "-accept", str(port), "-cert", str(paths["cert"]), "-key", str(paths["key"]),
            "-naccept", "5", "-quiet"]
    with started(argv, tmp_path / "s_server.log") as proc:
        wait_for_port(port, proc=proc)
        yield port, factory


def test_fetch_kind_reads_the_presented_certificate(s_server: tuple[int, pki.Issued]) -> None:
    # Given an RMX stand-in presenting its factory certificate
    port, factory = s_server
    target = _target(CertificateSource("fetch", fetch_address=f"127.0.0.1:{port}"))
    # When the probe fetches and judges it
    outcome = run_probe("certificate", target, Settings(), _ctx())
    # Then the presented certificate is the one judged: self-signed, critical
    assert outcome.status is ProbeStatus.OK and not outcome.healthy
    assert "CERT_SELF_SIGNED" in {f.code for f in outcome.findings}
    assert outcome.result is not None
    assert outcome.result.to_json()["certificate"]["serial"] == format(factory.cert.serial_number, "X")


def test_fetch_kind_honours_the_deadline() -> None:
    # Given a TCP listener that accepts but never speaks TLS (a tarpit)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        target = _target(CertificateSource("fetch", fetch_address=f"127.0.0.1:{silent.getsockname()[1]}"))
        # When the probe runs with a 1 s deadline
        start = time.monotonic()
        outcome = run_probe("certificate", target, Settings(), _ctx(seconds=1.0))
        elapsed = time.monotonic() - start
    # Then it fails as an upstream problem within the deadline (plus a little slack)
    assert outcome.status is ProbeStatus.FAILED and outcome.error is not None
    assert outcome.error.kind is ErrorKind.UPSTREAM
    assert elapsed < 2.5
