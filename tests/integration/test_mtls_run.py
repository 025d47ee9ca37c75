"""The mtls probe's scheduler entry point, SRV pools, the key log and the CLI exit codes."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.rdatatype
import dns.rrset
import pytest

from daemon.cli import main
from daemon.engine import run_probe
from probes.model import ErrorKind, ProbeStatus
from probes.mtls import probe as mtls
from probes.mtls.tls import ClientContext
from probes.target import CertificateSource, ProbeContext, Registrar, SecretFile, Settings, Target
from tests.conftest import LabPKI
from tests.support import mtls as peers
from tests.support.kamailio import Registrar as Fe
from tests.support.kamailio import kamailio_registrar
from tests.support.mtls_sweep import SweepJob, sweep

pytestmark = pytest.mark.peer
POOL = "pool.lab.example"


@pytest.fixture(scope="module")
def files(lab_pki: LabPKI, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Given the RMX identity as PEM files and as a PFX with a password file, and the FE trust anchors."""
    d = tmp_path_factory.mktemp("mtls-run")
    paths = lab_pki.rmx.write(d, "rmx")
    paths["ca"] = lab_pki.ca_bundle(d)
    paths["pfx"] = d / "rmx.pfx"
    paths["pfx"].write_bytes(lab_pki.rmx.pfx(b"pfx-secret"))
    paths["pw"] = d / "pw.txt"
    paths["pw"].write_text("pfx-secret\n")
    paths["pw"].chmod(0o600)
    paths["dir"] = d
    return paths


@pytest.fixture(scope="module")
def fe(lab_pki: LabPKI, files: dict[str, Path]) -> Iterator[Fe]:
    """Given a Kamailio Front End that trusts the lab CA and the RMX name."""
    with kamailio_registrar(files["dir"] / "kam", lab_pki.fe, files["ca"], trusted_cn=lab_pki.fqdn) as registrar:
        yield registrar


def _ctx(seconds: float) -> ProbeContext:
    return ProbeContext(now=dt.datetime.now(dt.UTC), deadline=time.monotonic() + seconds)


def test_run_with_pfx_target_reuses_the_cached_context(fe: Fe, files: dict[str, Path]) -> None:
    """Given a target with a PFX, When run twice with one cache, Then healthy and the context is built once."""
    target = Target("rmx-hq", fqdn="rmx.lab.example", ca_bundle=files["ca"],
                    certificate=CertificateSource("pfx", path=files["pfx"], password=SecretFile(files["pw"])),
                    registrars=(Registrar(host="127.0.0.1", port=fe.port, sni=POOL, tls_max="1.2"),))
    ctx = _ctx(5)
    first = run_probe("mtls", target, Settings(), ctx)
    second = run_probe("mtls", target, Settings(), ctx)
    assert first.status is ProbeStatus.OK and first.failure is None and second.failure is None
    # One slot per client spec holding (file signature, context): the second run reused it.
    contexts = [v[1] for k, v in ctx.cache.items() if k[0] == "mtls-client-context"]
    assert len(contexts) == 1 and isinstance(contexts[0], ClientContext)
    result = second.result
    assert isinstance(result, mtls.MtlsResult)
    r = result.registrars[0]
    assert r.tls_version == "TLSv1.2" and r.sip_status == 200
    assert r.rmx_issuer_listed is True and "CN=rmxdiag Lab Issuing CA,O=rmxdiag lab" in (r.ca_names or ())


def test_run_reports_bad_password_as_error_kind(files: dict[str, Path], tmp_path: Path) -> None:
    """Given a wrong PFX password, When run, Then status failed with BAD_PASSWORD and no secret in the detail."""
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)
    target = Target("rmx", certificate=CertificateSource("pfx", path=files["pfx"], password=SecretFile(wrong)),
                    registrars=(Registrar(host="127.0.0.1", port=1),))
    out = run_probe("mtls", target, Settings(), _ctx(2))
    assert out.status is ProbeStatus.FAILED and out.error is not None
    assert out.error.kind is ErrorKind.BAD_PASSWORD and "not-the-password" not in out.error.detail


def test_run_reports_missing_password_file_as_unreadable(files: dict[str, Path], tmp_path: Path) -> None:
    """Given a password file that does not exist, When run, Then FILE_UNREADABLE naming it (not a probe bug)."""
    missing = tmp_path / "gone.txt"
    target = Target("rmx", certificate=CertificateSource("pfx", path=files["pfx"], password=SecretFile(missing)),
                    registrars=(Registrar(host="127.0.0.1", port=1),))
    out = run_probe("mtls", target, Settings(), _ctx(2))
    assert out.error is not None and out.error.kind is ErrorKind.FILE_UNREADABLE and str(missing) in out.error.detail


def test_run_never_raises_on_a_registrar_without_address() -> None:
    """Given a registrar with neither host nor SRV domain, When run, Then a failed outcome, not an exception."""
    out = run_probe("mtls", Target("rmx", registrars=(Registrar(),)), Settings(), _ctx(1))
    assert out.status is ProbeStatus.FAILED and out.error is not None and "registrars[0]" in out.error.detail


@contextlib.contextmanager
def _dns_server(records: list[tuple[str, int]]) -> Iterator[tuple[str, int]]:
    """A UDP DNS server answering the SRV query of lab.example with ``records`` (target, port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except OSError:
                continue
            query = dns.message.from_wire(data)
            response = dns.message.make_response(query)
            question = query.question[0]
            if question.rdtype == dns.rdatatype.SRV and str(question.name) == "_sipinternaltls._tcp.lab.example.":
                texts = [f"0 {10 * i} {port} {target}." for i, (target, port) in enumerate(records)]
                response.answer.append(dns.rrset.from_text(question.name, 60, "IN", "SRV", *texts))
            else:
                response.set_rcode(3)  # NXDOMAIN
            sock.sendto(response.to_wire(), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()
    finally:
        stop.set()
        thread.join(5)
        sock.close()


def test_srv_domain_probes_every_pool_member(fe: Fe, files: dict[str, Path]) -> None:
    """Given SRV records naming a healthy FE and a closed port, When probed, Then both members, one unreachable."""
    closed = peers.closed_port()
    spec = mtls.ClientSpec(cert=files["cert"], key=files["key"], chain=files["chain"], ca_bundle=files["ca"])
    with _dns_server([("localhost", fe.port), ("localhost", closed)]) as ns:
        out = mtls.probe([Registrar(srv_domain="lab.example", sni=POOL)], spec, deadline=time.monotonic() + 5,
                         srv_nameserver=ns)
        missing = mtls.probe([Registrar(srv_domain="nowhere.example")], spec, deadline=time.monotonic() + 3,
                             srv_nameserver=ns)
    assert isinstance(out.result, mtls.MtlsResult)
    by_port = {r.registrar: r for r in out.result.registrars}
    assert by_port[f"localhost:{fe.port}"].sip_status == 200
    assert by_port[f"localhost:{closed}"].reason == "refused"
    assert out.failure == ("connect", "refused")
    assert sorted(f.code for f in out.findings) == ["MTLS_OK", "REGISTRAR_UNREACHABLE"]
    assert missing.failure == ("resolve", "dns_failure") and missing.findings[0].code == "REGISTRAR_DNS_FAILURE"
    assert "_sipinternaltls._tcp.nowhere.example" in missing.findings[0].message


def test_keylog_written_for_tshark(fe: Fe, files: dict[str, Path], tmp_path: Path) -> None:
    """Given --keylog, When the CLI probes over TLS 1.3, Then an NSS key log with traffic secrets is written."""
    keylog = tmp_path / "keys.log"
    code = main(["probe", f"127.0.0.1:{fe.port}", "--sni", POOL, "--cert", str(files["cert"]), "--key",
                 str(files["key"]), "--chain", str(files["chain"]), "--ca-bundle", str(files["ca"]),
                 "--keylog", str(keylog)])
    assert code == 0
    text = keylog.read_text()
    assert "CLIENT_TRAFFIC_SECRET_0 " in text and "SERVER_HANDSHAKE_TRAFFIC_SECRET " in text
    assert keylog.stat().st_mode & 0o777 == 0o600, "a key log decrypts the session: owner-only"


def test_keylog_goes_only_into_a_new_file_or_the_users_own_key_log(fe: Fe, files: dict[str, Path], tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Given a certificate (0644) named by a typo, a symlink to another file, the user's own ssh config (0600,
    first byte '#'), and an earlier private key log."""
    argv = ["probe", f"127.0.0.1:{fe.port}", "--sni", POOL, "--cert", str(files["cert"]), "--key", str(files["key"]),
            "--chain", str(files["chain"]), "--ca-bundle", str(files["ca"]), "--keylog"]
    typo = tmp_path / "rmx.pem"
    typo.write_bytes(files["cert"].read_bytes())
    typo.chmod(0o644)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"not a key log\n")
    (tmp_path / "link.log").symlink_to(victim)
    ssh_config = tmp_path / "config"  # the user's own 0600 file that starts with '#', like a key log's header
    ssh_config.write_bytes(b"# ssh client config\nHost bastion\n  User ops\n")
    ssh_config.chmod(0o600)
    for path, why in ((typo, "mode 0644"), (tmp_path / "link.log", "refusing a symlink"),
                      (ssh_config, "is not a TLS key log (line 1 is not an NSS key log line)")):
        before = (typo.read_bytes(), typo.stat().st_mode, victim.read_bytes(), ssh_config.read_bytes())
        # When the probe is told to write its key log there
        code = main([*argv, str(path)])
        # Then one line refuses it, exit 3, before any connection, and no byte of a secret landed anywhere
        err = capsys.readouterr().err
        assert code == 3 and err.count("\n") == 1 and str(path) in err and why in err, err
        assert (typo.read_bytes(), typo.stat().st_mode, victim.read_bytes(), ssh_config.read_bytes()) == before
    # And a key log written earlier (0600, the user's) gets the new session appended (one file for Wireshark)
    keylog = tmp_path / "keys.log"
    assert main([*argv, str(keylog)]) == 0
    first = keylog.read_text()
    assert main([*argv, str(keylog)]) == 0
    second = keylog.read_text()
    assert second.startswith(first) and second.count("CLIENT_TRAFFIC_SECRET_0 ") == 2 * first.count(
        "CLIENT_TRAFFIC_SECRET_0 ") > 0
    assert keylog.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("written", ["TLSv1.2", "tls12", "TLS1.2"])
def test_cli_tls_max_as_reports_print_it(fe: Fe, files: dict[str, Path], written: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Given --tls-max spelt as a report prints the negotiated version (or blackbox_exporter's tls12),
    When the CLI probes Kamailio (which speaks 1.3), Then the handshake stops at TLS 1.2 and succeeds."""
    code = main(["probe", f"127.0.0.1:{fe.port}", "--sni", POOL, "--cert", str(files["cert"]), "--key",
                 str(files["key"]), "--chain", str(files["chain"]), "--ca-bundle", str(files["ca"]),
                 "--tls-max", written, "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    assert doc["targets"][0]["probes"][0]["result"]["tls_version"] == "TLSv1.2"


def test_cli_fault_exits_2(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Given a closed port, When the CLI probes it, Then exit 2 and the REGISTRAR_UNREACHABLE hint."""
    code = main(["probe", f"127.0.0.1:{peers.closed_port()}", "--ca-bundle", str(files["ca"]), "--timeout", "2"])
    out = capsys.readouterr().out
    assert code == 2 and "REGISTRAR_UNREACHABLE" in out


@pytest.mark.parametrize(("argv", "needle"), [
    (["probe", "127.0.0.1:99999"], "invalid port"),
    (["probe", "127.0.0.1", "--tls-min", "1.3", "--tls-max", "1.2"], "--tls-min 1.3 is above"),
    (["probe", "127.0.0.1", "--cert", "/nonexistent/cert.pem", "--key", "/nonexistent/key.pem"], "/nonexistent"),
    (["probe", "127.0.0.1", "--key", "/etc/hostname"], "need --cert"),
    (["probe", "127.0.0.1", "--timeout", "0"], "--timeout"),
    (["probe", "127.0.0.1", "--ca-bundle", "/etc/hostname"], "/etc/hostname"),
    (["probe", "127.0.0.1", "--keylog", "/nonexistent-dir/keys.log"], "/nonexistent-dir/keys.log"),
])
def test_cli_bad_input_exits_3_with_one_line(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Given bad input, When the CLI runs, Then exit 3 and one stderr line naming what is wrong."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 3 and needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_sweep_shares_one_deadline(fe: Fe, files: dict[str, Path]) -> None:
    """Given 20 targets of which 5 are tarpits, When swept with 1 s, Then all done in ~1 s with the right outcomes."""
    spec = mtls.ClientSpec(cert=files["cert"], key=files["key"], chain=files["chain"], ca_bundle=files["ca"])
    with peers.tarpit() as pit:
        jobs = [SweepJob(f"t{i}", (Registrar(host="127.0.0.1", port=pit if i % 4 == 0 else fe.port, sni=POOL),),
                         spec) for i in range(20)]
        # (the reference: one healthy job alone, what a probe costs on this machine right now)
        start = time.monotonic()
        sweep(jobs[1:2], deadline_seconds=5.0, concurrency=1)
        reference = time.monotonic() - start
        start = time.monotonic()
        outcomes = sweep(jobs, deadline_seconds=1.0, concurrency=8)
        elapsed = time.monotonic() - start
        starved = sweep(jobs, deadline_seconds=0.5, concurrency=2)
    assert elapsed < 1.0 + max(0.5, 10 * reference), (elapsed, reference)  # one shared deadline, not 20
    assert [o.failure for o in outcomes[:4]] == [("tls", "no_answer"), None, None, None]
    assert sum(o.failure is None for o in outcomes) == 15
    # Two workers both held by tarpits until the deadline: later jobs never started and say so
    # (the sweep's load: no verdict on their registrars).
    assert starved[-1].error is not None and starved[-1].error.kind is ErrorKind.OVERLOADED


@pytest.mark.parametrize("host", ["", ":", "[", "[::1", "a:b:c:d", "ünïcode.invalid", "a" * 70 + ".invalid",
                                  "x" * 300, "under_score.invalid", "[::1]:0", "1.2.3.4.5"])
def test_cli_odd_hosts_never_crash(host: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Given odd HOST[:PORT] values, When the CLI probes, Then exit 2 or 3 with a message, never an internal error."""
    code = main(["probe", host, "--timeout", "2"])
    captured = capsys.readouterr()
    assert code in (2, 3)
    assert "internal error" not in captured.err and "Traceback" not in captured.err
    assert captured.err if code == 3 else "REGISTRAR_" in captured.out


def test_tarpit_member_does_not_starve_the_pool(fe: Fe, files: dict[str, Path]) -> None:
    """Given a pool whose first SRV member is a tarpit, When probed with 1.5 s, Then the other still gets 200."""
    spec = mtls.ClientSpec(cert=files["cert"], key=files["key"], chain=files["chain"], ca_bundle=files["ca"])
    with peers.tarpit() as pit, _dns_server([("localhost", pit), ("localhost", fe.port)]) as ns:
        # (the reference: the healthy member alone)
        start = time.monotonic()
        mtls.probe([Registrar(host="127.0.0.1", port=fe.port, sni=POOL)], spec, deadline=start + 5)
        reference = time.monotonic() - start
        start = time.monotonic()
        out = mtls.probe([Registrar(srv_domain="lab.example", sni=POOL)], spec, deadline=start + 1.5,
                         srv_nameserver=ns)
        elapsed = time.monotonic() - start
    assert isinstance(out.result, mtls.MtlsResult)
    reasons = sorted(str(r.reason) for r in out.result.registrars)
    assert reasons == ["no_answer", "ok"] and out.failure == ("tls", "no_answer")
    assert 1.4 <= elapsed < 1.5 + max(0.4, 10 * reference), (elapsed, reference)


@pytest.mark.parametrize("host", ["[::1", "[::1]junk", "[::1]:x"])
def test_cli_malformed_bracketed_host_is_refused(host: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Given a bracketed IPv6 HOST that is not [v6] or [v6]:PORT, Then one input error line and exit 3
    (it used to probe ::1 on 5061, silently dropping what followed the bracket)."""
    code = main(["probe", host, "--timeout", "1"])
    captured = capsys.readouterr()
    assert code == 3 and captured.out == "UNKNOWN: " + captured.err.removeprefix("rmxdiag: error: ")
    assert captured.err.startswith("rmxdiag: error: HOST[:PORT]:") and captured.err.count("\n") == 1


def test_cli_pfx_password_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Given a password-protected PFX, When probed without or with a wrong password file,
    Then one line says which (give --password-file / wrong password in FILE), exit 3, no secret."""
    from daemon.lab import pki

    pfx = tmp_path / "rmx.pfx"
    pfx.write_bytes(pki.issue(pki.name("rmx.lab.example"), pki.root_ca()).pfx(b"Right-Secret-42"))
    wrong = tmp_path / "wrong.pw"
    wrong.write_bytes(b"Wrong-Secret-17\n")
    wrong.chmod(0o600)
    wrong.chmod(0o600)
    assert main(["probe", "127.0.0.1:1", "--pfx", str(pfx)]) == 3
    assert "give --password-file" in capsys.readouterr().err
    assert main(["probe", "127.0.0.1:1", "--pfx", str(pfx), "--password-file", str(wrong)]) == 3
    err = capsys.readouterr().err
    assert f"with the password in {wrong}" in err and err.count("\n") == 1
    assert "Secret" not in err
