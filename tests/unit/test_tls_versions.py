"""TLS versions as users write them: one parser for --tls-min/--tls-max and tls_min/tls_max."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.cli import main
from daemon.config.load import ConfigError, load_config
from probes.target import TLS_VERSIONS, tls_version


@pytest.mark.parametrize(("written", "version"), [
    ("1.2", "1.2"), ("TLSv1.2", "1.2"), ("tlsv1.2", "1.2"), ("TLS1.2", "1.2"), ("tls12", "1.2"), ("TLS12", "1.2"),
    ("TLS 1.3", "1.3"), ("1.0", "1.0"), ("TLSv1.0", "1.0"), ("tls10", "1.0"), ("TLSV1.1", "1.1"), (" 1.3 ", "1.3"),
])
def test_accepted_spellings(written: str, version: str) -> None:
    """Given a version as reports print it, blackbox_exporter spells it or a user types it, Then its canonical form."""
    assert tls_version(written) == version and version in TLS_VERSIONS


@pytest.mark.parametrize("written", ["1.4", "TLSv1.4", "tls13x", "12", "SSLv3", "2", "", "TLS", "v1.2", "1.2.0"])
def test_anything_else_is_one_line_listing_the_forms(written: str) -> None:
    """Given anything else, Then one ValueError line quoting it and listing the accepted forms."""
    with pytest.raises(ValueError, match=r"is not a TLS version: write 1\.0, 1\.1, 1\.2 or 1\.3, also written "
                                         r"TLSv1\.2, TLS1\.2 or tls12 \(any case\)$") as caught:
        tls_version(written)
    assert repr(written) in str(caught.value) and "\n" not in str(caught.value)


def test_cli_refuses_an_unknown_version_with_one_line_and_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    """Given --tls-max TLSv1.4, When the CLI runs, Then exit 3 and one stderr line naming the option and the forms."""
    code = main(["probe", "127.0.0.1:1", "--tls-max", "TLSv1.4"])
    err = capsys.readouterr().err
    assert code == 3 and err.count("\n") == 1
    assert err.startswith("rmxdiag: error: --tls-max: 'TLSv1.4' is not a TLS version: write 1.0") and "tls12" in err


def test_cli_compares_the_parsed_range(capsys: pytest.CaptureFixture[str]) -> None:
    """Given --tls-min tls13 and --tls-max TLSv1.2, Then the range error names the canonical versions."""
    assert main(["probe", "127.0.0.1:1", "--tls-min", "tls13", "--tls-max", "TLSv1.2"]) == 3
    assert "--tls-min 1.3 is above --tls-max 1.2" in capsys.readouterr().err


@pytest.mark.parametrize(("tls_min", "tls_max"), [("1.2", "TLSv1.3"), ('"1.0"', "tls12"), ("TLS1.1", "TLSV1.2")])
def test_config_accepts_the_same_spellings(tls_min: str, tls_max: str, tmp_path: Path) -> None:
    """Given tls_min/tls_max written as users do (an unquoted 1.2 is a YAML number), Then canonical versions."""
    config = tmp_path / "rmxdiag.yaml"
    config.write_text(f"targets:\n  - name: rmx\n    registrars:\n      - host: fe.example.com\n"
                      f"        tls_min: {tls_min}\n        tls_max: {tls_max}\n")
    registrar = load_config(config).targets[0].registrars[0]
    assert (registrar.tls_min, registrar.tls_max) == (tls_version(tls_min.strip('"')), tls_version(tls_max))


def test_config_refuses_a_version_with_file_and_line(tmp_path: Path) -> None:
    """Given tls_min: SSLv3, Then one ConfigError line with the file, the line and the accepted forms."""
    config = tmp_path / "rmxdiag.yaml"
    config.write_text("targets:\n  - name: rmx\n    registrars:\n      - host: fe.example.com\n"
                      "        tls_min: SSLv3\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert str(caught.value).startswith(f"{config}:5: targets[0].registrars[0].tls_min: 'SSLv3' is not a TLS version")
