"""Helpers for the certificate tests: run the real rmxdiag, write generated PKI to files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from cryptography import x509

from daemon.lab import pki

# The password canary: it must never appear in any output, whatever the input.
CANARY = "canary-Pw-7f3e91x"
FQDN = "rmx.lab.example"


def rmxdiag(*args: str | Path, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the real CLI (``python -m daemon.cli``) and capture its output."""
    return subprocess.run([sys.executable, "-m", "daemon.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, check=False)


def report(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The single target of a ``--format json`` report."""
    doc: dict[str, Any] = json.loads(proc.stdout)
    target: dict[str, Any] = doc["targets"][0]
    return target


def problems(proc: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """Warning and critical hint codes of a JSON report, with their severities."""
    return {h["code"]: h["severity"] for h in report(proc)["hints"] if h["severity"] != "info"}


def findings(proc: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    """Every finding of the first probe of a JSON report."""
    result: list[dict[str, Any]] = report(proc)["probes"][0]["findings"]
    return result


def write(path: Path, *objs: x509.Certificate | x509.CertificateSigningRequest | bytes) -> Path:
    """Write PEM objects (or raw bytes) to ``path``."""
    path.write_bytes(b"".join(o if isinstance(o, bytes) else pki.pem(o) for o in objs))
    return path


def password_file(directory: Path, value: str = CANARY) -> Path:
    """A password file holding ``value`` (the canary by default)."""
    path = directory / f"pw-{abs(hash(value))}.txt"
    path.write_text(value + "\n")
    path.chmod(0o600)  # secret files are private, on the command line as in the configuration
    return path


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *expected: str) -> None:
    """Exit 3, exactly one stderr line naming what is wrong, no traceback, no canary."""
    assert proc.returncode == 3, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("rmxdiag: error: ")
    assert "Traceback" not in proc.stderr + proc.stdout
    assert CANARY not in proc.stderr + proc.stdout
    for text in expected:
        assert text in lines[0], lines[0]
    if not proc.stdout.lstrip().startswith("{"):  # JSON mode: the error document instead
        assert_unknown_stdout(proc)


def assert_unknown_stdout(proc: subprocess.CompletedProcess[str]) -> None:
    """Text mode of an exit 3: stdout is one status line, ``UNKNOWN:`` and the stderr line's detail."""
    detail = proc.stderr.strip().splitlines()[0].removeprefix("rmxdiag: error: ")
    assert proc.stdout == f"UNKNOWN: {detail}\n", (proc.stdout, proc.stderr)
