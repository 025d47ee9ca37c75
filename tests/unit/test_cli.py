"""The CLI dispatcher: version, usage errors exit 3, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from daemon import __version__
from daemon.cli import SUBCOMMANDS


def _rmxdiag(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daemon.cli", *args], capture_output=True, text=True,
                          timeout=60)


def test_version() -> None:
    result = _rmxdiag("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"rmxdiag {__version__}"


@pytest.mark.parametrize("args", [("no-such-command",), (), ("hints", "--no-such-flag")])
def test_usage_errors_exit_3_without_traceback(args: tuple[str, ...]) -> None:
    result = _rmxdiag(*args)
    assert result.returncode == 3
    assert "Traceback" not in result.stderr


def test_every_subcommand_module_exists() -> None:
    # Given the dispatcher table, Then each module imports cheaply and has the two entry points
    import importlib

    for module_name, _help in SUBCOMMANDS.values():
        module = importlib.import_module(f"daemon.commands.{module_name}")
        assert callable(module.add_arguments) and callable(module.execute)


def test_version_does_not_import_heavy_modules() -> None:
    # Given a monitoring system calling rmxdiag as a check, Then start-up imports stay light
    code = ("import sys; from daemon.cli import main; import contextlib, io\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()): main(['--version'])\n"
            "heavy = [m for m in ('pyshark', 'requests', 'prometheus_client', 'cryptography', 'aiohttp', 'yaml')"
            " if m in sys.modules]\nprint(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr
