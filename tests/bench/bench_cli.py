"""Start-up goals of issue 2: `rmxdiag --version` <= 2x and `rmxdiag cert small.pem` <= 4x the
wall time of `python3 -c 'import ssl'`, measured interleaved in one run on this machine, all three
with bytecode cached as an installed package has it."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.bench.common import Row, installed_env, interleaved, print_table


def _rmxdiag() -> list[str]:
    script = Path(sys.executable).parent / "rmxdiag"
    return [str(script)] if script.exists() else [sys.executable, "-m", "daemon.cli"]


def main() -> int:
    """Measure and print the table; non-zero when a goal is missed."""
    from daemon.lab import pki

    with tempfile.TemporaryDirectory(prefix="rmxdiag-bench-") as tmp:
        small = Path(tmp) / "small.pem"
        root = pki.root_ca()
        small.write_bytes(pki.issue(pki.name("rmx.lab.example"), root, cdp=["http://127.0.0.1:9/x.crl"]).cert_pem)
        times = interleaved({
            "ssl": [sys.executable, "-c", "import ssl"],
            "version": [*_rmxdiag(), "--version"],
            "cert": [*_rmxdiag(), "cert", str(small)],
        }, runs=21, env=installed_env())
    base = times["ssl"]
    rows = [
        Row("python3 -c 'import ssl' (baseline)", base * 1000, "ms"),
        Row("rmxdiag --version", times["version"] * 1000, "ms", f"{base * 1000:.1f} ms", times["version"] / base,
            "<= 2.0x", times["version"] / base <= 2.0),
        Row("rmxdiag cert small.pem", times["cert"] * 1000, "ms", f"{base * 1000:.1f} ms", times["cert"] / base,
            "<= 4.0x", times["cert"] / base <= 4.0),
    ]
    return print_table("CLI start-up (median of 21 interleaved runs)", rows)


if __name__ == "__main__":
    sys.exit(main())
