"""The Kamailio Front End stand-in itself: MTLS required, 200 for the trusted CN, 403 otherwise."""

from __future__ import annotations

import os
import ssl
import time
from pathlib import Path

import pytest

from daemon.lab import pki
from probes.mtls import probe as mtls
from probes.target import Registrar as ProbeRegistrar
from tests.conftest import LabPKI
from tests.support.kamailio import (
    MS_DIAG_REASON,
    KamailioFactory,
    Registrar,
    kamailio_fe,  # noqa: F401 (the fixture, used by name)
    kamailio_registrar,
)
from tests.support.lab import options_exchange

pytestmark = pytest.mark.peer


def _options(fe: Registrar, client: pki.Issued, ca: Path, tmp: Path) -> bytes:
    paths = client.write(tmp, "client")
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.load_cert_chain(paths["cert"], paths["key"])
    return options_exchange((fe.host, fe.port), ctx)


def test_trusted_peer_gets_200_and_others_403(tmp_path: Path, lab_pki: LabPKI) -> None:
    """Given the helper's Kamailio, When the trusted and an untrusted client send OPTIONS, Then 200 / 403."""
    ca = lab_pki.ca_bundle(tmp_path)
    stranger = pki.issue(pki.name("stranger.lab.example"), lab_pki.issuing)
    with kamailio_registrar(tmp_path / "k", lab_pki.fe, ca, trusted_cn=lab_pki.fqdn) as fe:
        ok = _options(fe, lab_pki.rmx, ca, tmp_path)
        denied = _options(fe, stranger, ca, tmp_path)
        pid = fe.pid
    assert ok.startswith(b"SIP/2.0 200 "), ok
    assert denied.startswith(b"SIP/2.0 403 "), denied
    assert f'ms-diagnostics: 1010;reason="{MS_DIAG_REASON}"'.encode() in denied
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_fixture_factory_without_client_certificates(kamailio_fe: KamailioFactory,  # noqa: F811 (fixture)
                                                     lab_pki: LabPKI, tmp_path: Path) -> None:
    """Given the kamailio_fe fixture with require_certificate=False and TLS 1.2 only, When probed, Then no
    CertificateRequest (CLIENT_CERT_NOT_REQUESTED) and 403 since no peer CN is known."""
    ca = lab_pki.ca_bundle(tmp_path)
    fe = kamailio_fe(lab_pki.fe, ca, lab_pki.fqdn, require_certificate=False, method="TLSv1.2")
    paths = lab_pki.rmx.write(tmp_path, "rmx")
    spec = mtls.ClientSpec(cert=paths["cert"], key=paths["key"], chain=paths["chain"], ca_bundle=ca)
    out = mtls.probe([ProbeRegistrar(host=fe.host, port=fe.port, sni="pool.lab.example")], spec,
                     deadline=time.monotonic() + 5)
    codes = [f.code for f in out.findings]
    assert codes == ["SIP_NOT_TRUSTED", "CLIENT_CERT_NOT_REQUESTED"]
    assert isinstance(out.result, mtls.MtlsResult) and out.result.tls_version == "TLSv1.2"
