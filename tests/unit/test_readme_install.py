"""The README's production install, followed into a temporary root as far as it goes without systemd.

The apt-get and pip lines need the network and root; they are the only ones not run: the test
suite's own ``rmxdiag`` stands in for ``/opt/rmxdiag/bin/rmxdiag``. Every other line of the block
runs as written, with ``/etc``, ``/opt`` and ``/usr/bin`` moved under ``tmp_path``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from daemon.lab import pki
from tests.support.config import ROOT

README = ROOT / "README.md"
PASSWORD = b"install-test-pfx-password"


def _install_block() -> list[str]:
    """The command lines of the first ``sh`` block of the README's production install section."""
    section = README.read_text(encoding="utf-8").split("## Installing for production", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"^```sh\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    assert block, "the production install section has no ```sh block"
    return [line.split("  #", 1)[0].strip() for line in block[1].splitlines() if line.strip()]


def _moved(line: str, root: Path) -> str:
    """``line`` with the system paths moved under ``root`` and the venv's rmxdiag as the installed one."""
    line = line.replace("/opt/rmxdiag/bin/rmxdiag", str(Path(sys.executable).parent / "rmxdiag"))
    for system in ("/etc/rmxdiag", "/usr/bin"):
        line = line.replace(system, f"{root}{system}")
    return line


def _run(line: str, root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{root}/usr/bin{os.pathsep}{os.environ['PATH']}", "NO_COLOR": "1"}
    return subprocess.run(["bash", "-c", _moved(line, root)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_install_steps_then_check_config_guide_the_admin(tmp_path: Path) -> None:
    # Given the README's install block
    lines = _install_block()
    skipped = [ln for ln in lines if ln.startswith(("apt-get ", "python3 -m venv "))]
    assert len(skipped) == 2, lines  # only the network/root steps are left out
    check = [ln for ln in lines if ln.startswith("rmxdiag check-config")]
    assert check == ["rmxdiag check-config -c /etc/rmxdiag/rmxdiag.yaml"], lines
    (tmp_path / "usr/bin").mkdir(parents=True)
    # When every other step up to the check runs (the symlink, the config, the credentials directory)
    for line in lines:
        if line in skipped or line in check or line.startswith("editor "):
            continue
        done = _run(line, tmp_path)
        assert done.returncode == 0, (line, done.stderr)
    etc = tmp_path / "etc/rmxdiag"
    assert (etc / "rmxdiag.yaml").read_bytes() == (ROOT / "config/rmxdiag.example.yaml").read_bytes()
    assert (etc / "credentials").stat().st_mode & 0o777 == 0o700
    # Then check-config on the unedited example stops at its first missing file: one line, exit 3,
    # as the README shows it
    first = _run(check[0], tmp_path)
    assert first.returncode == 3, first.stdout + first.stderr
    assert first.stderr.splitlines() == [first.stderr.strip()] and "Traceback" not in first.stderr
    shown = re.escape("rmxdiag: error: /etc/rmxdiag/rmxdiag.yaml:39: targets[0].certificate.pfx: no such file")
    assert re.search(shown, README.read_text(encoding="utf-8").replace("\n", " ").replace("  ", " "))
    assert first.stderr.startswith(f"rmxdiag: error: {etc}/rmxdiag.yaml:39: targets[0].certificate.pfx: no such file")

    # When the admin edits it as the README says: keeps one target with its certificate, CA bundle
    # and pool, puts the files where it points, and deletes the optional sections
    doc = yaml.safe_load((etc / "rmxdiag.yaml").read_text())
    hq = doc["targets"][0]
    doc = {"settings": doc["settings"], "targets": [{key: hq[key] for key in (
        "name", "fqdn", "signaling_ip", "firmware", "certificate", "ca_bundle", "registrars")}]}
    (etc / "rmxdiag.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    root = pki.root_ca()
    rmx = pki.issue(pki.name(hq["fqdn"]), root)
    for relative, data, mode in ((hq["certificate"]["pfx"], rmx.pfx(PASSWORD), 0o600),
                                 (hq["certificate"]["password_file"], PASSWORD + b"\n", 0o600),
                                 (hq["ca_bundle"], pki.pem(root.cert), 0o644)):
        path = etc / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=mode)
        path.write_bytes(data)
    # Then check-config says it is valid and what it would probe, exit 0
    valid = _run(check[0], tmp_path)
    assert valid.returncode == 0, valid.stderr
    assert valid.stdout.startswith(f"OK: {etc}/rmxdiag.yaml: valid, 1 target(s)")
    assert "target rmx-hq:" in valid.stdout and "probes: certificate, mtls" in valid.stdout
