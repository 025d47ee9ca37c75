"""`rmxdiag alarms`: output, exit codes by hint, and one-line exit 3 for every bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.peers import without_file_privilege

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alarms"


def _rmxdiag(*args: str, prefix: Callable[[list[str]], list[str]] = list) -> subprocess.CompletedProcess[str]:
    return subprocess.run(prefix([sys.executable, "-m", "daemon.cli", "alarms", *args]), capture_output=True,
                          text=True, timeout=60)


def test_registration_alarms_exit_2_and_explain() -> None:
    # Given a saved report with registration alarms
    result = _rmxdiag(str(FIXTURES / "report_tabs.txt"))
    # Then exit 2, the hint, the meanings and the not-proof sentence are printed
    assert result.returncode == 2, result.stderr
    out = result.stdout
    assert "RMX_ALARM_REGISTRATION" in out
    assert "usually means: The TLS handshake with the Front End failed" in out
    assert "An alarm alone is not proof" in out
    assert "registration 2, certificate 0, ice 1, revocation 0, other 1" in out


def test_json_document_of_several_files() -> None:
    result = _rmxdiag(str(FIXTURES / "report_spaces.txt"), str(FIXTURES / "syslog_5424.log"), "--format", "json")
    assert result.returncode == 2, result.stderr
    doc = json.loads(result.stdout)
    (target,) = doc["targets"]
    (probe,) = target["probes"]
    codes = {f["code"]: f for f in probe["findings"]}
    assert codes["RMX_ALARM_CERTIFICATE"]["severity"] == "critical"  # "Certificate has expired"
    assert probe["result"]["counts"] == {"registration": 2, "certificate": 2, "ice": 1, "revocation": 1,
                                         "other": 0}
    assert {s["kind"] for s in probe["result"]["sources"]} == {"report", "syslog"}
    assert {h["code"] for h in target["hints"]} == {"RMX_ALARM_REGISTRATION", "RMX_ALARM_CERTIFICATE"}


def test_certificate_warning_only_exits_1(tmp_path: Path) -> None:
    report = tmp_path / "r.txt"
    report.write_text("ID\tTime\tGMT Time\tCategory\tLevel\tDescription\n"
                      "1\t2026-11-26 10:00\t2026-11-26 09:00\tGeneral\tMinor\t"
                      "SIP TLS: Certificate is about to expire\n")
    assert _rmxdiag(str(report)).returncode == 1


def test_cleared_alarms_leave_nothing_active_exit_0(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    log.write_text("<134>Nov 26 21:00:00 rmx1 RMX: SIP TLS: Registration transport error\n"
                   "<134>Nov 26 21:05:00 rmx1 RMX: SIP TLS: Registration transport error cleared\n")
    result = _rmxdiag(str(log))
    assert result.returncode == 0, result.stdout
    assert "active RMX alarms: 0" in result.stdout


@pytest.mark.parametrize(("make", "expected"), [
    (lambda d: d / "missing.txt", "alarm file does not exist"),
    (lambda d: d, "is a directory, expected an alarm file"),
    (lambda d: (d / "empty.txt", (d / "empty.txt").write_bytes(b""))[0], "the file is empty"),
    (lambda d: FIXTURES / "not_alarms.txt", "not an RMX alarm file"),
    (lambda d: (d / "bin", (d / "bin").write_bytes(bytes(range(256)) * 10))[0], "not an RMX alarm file"),
    (lambda d: (d / "fifo", __import__("os").mkfifo(d / "fifo"))[0], "not a regular file"),  # must not hang
])
def test_bad_input_exits_3_with_one_line(tmp_path: Path, make: object, expected: str) -> None:
    # Given a bad input file, Then exit 3 with exactly one line naming the file, no traceback
    path = make(tmp_path)  # type: ignore[operator]
    result = _rmxdiag(str(path))
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert result.stdout == "UNKNOWN: " + lines[0].removeprefix("rmxdiag: error: ") + "\n"
    assert len(lines) == 1 and expected in lines[0] and str(path) in lines[0]
    assert "Traceback" not in result.stderr


def test_unreadable_file_exits_3(tmp_path: Path) -> None:
    # Given a file of mode 000, read by a process that file modes bind (root without its overrides)
    path = tmp_path / "secret.txt"
    path.write_text("x")
    path.chmod(0)
    result = _rmxdiag(str(path), prefix=without_file_privilege)
    # Then exit 3 with one line naming the file and the permission problem
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "permission denied" in lines[0].lower() and str(path) in lines[0], lines


@pytest.mark.parametrize("args", [
    (),  # nothing to read
    ("--xml-api", "https://127.0.0.1:1/"),  # no credential files
    ("--password-file", "/nonexistent"),  # credentials without an API
])
def test_usage_errors_exit_3_with_one_line(args: tuple[str, ...]) -> None:
    result = _rmxdiag(*args)
    assert result.returncode == 3
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


HEADER = "ID\tTime\tGMT Time\tCategory\tLevel\tDescription\n"
REGISTRATION = "1\t2026-11-26 10:00\t2026-11-26 09:00\tGeneral\tMajor\tSIP TLS: Registration transport error\n"
OVERLONG = "2\t2026-11-26 10:05\t2026-11-26 09:05\tGeneral\tMajor\tSIP TLS: Registration failed " + "x" * 8000 + "\n"


def test_skipped_lines_are_named_as_not_checked(tmp_path: Path) -> None:
    """Given a report with one readable alarm and one line too long to read
    When rmxdiag alarms judges it
    Then the verdict is the readable alarm's, and the first line says the skipped line was not checked."""
    report = tmp_path / "r.txt"
    report.write_text(HEADER + REGISTRATION + OVERLONG)
    result = _rmxdiag(str(report))
    first = result.stdout.splitlines()[0]
    assert result.returncode == 2, result.stdout
    assert f"not checked: 1 skipped line(s) of {report} (1 overlong from line 3)" in first


def test_a_report_whose_only_alarm_was_skipped_is_nothing_to_judge(tmp_path: Path) -> None:
    """Given a report whose only alarm line is too long to read
    When rmxdiag alarms judges it
    Then UNKNOWN (exit 3), never 'no problem found'."""
    report = tmp_path / "r.txt"
    report.write_text(HEADER + OVERLONG)
    result = _rmxdiag(str(report))
    assert result.returncode == 3, result.stdout
    assert result.stdout.startswith(f"UNKNOWN: {report}: nothing to judge (alarms: ") and "no readable report line" \
        in result.stdout.splitlines()[0]


def test_a_forced_format_on_binary_content_is_refused(tmp_path: Path) -> None:
    """Given 200 KB of random-looking bytes read with --as syslog
    When rmxdiag alarms reads it
    Then one line saying it is binary, exit 3 (not 'OK: no problem found')."""
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 800)
    result = _rmxdiag(str(blob), "--as", "syslog")
    assert result.returncode == 3
    assert result.stderr == f"rmxdiag: error: {blob}: binary content (NUL bytes), not a syslog file; a UTF-16 " \
                            "export needs its byte order mark, or save it as UTF-8\n"


def test_the_verdict_names_the_files_as_given(tmp_path: Path) -> None:
    """Given two reports with the same base name in two directories
    When rmxdiag alarms reads both
    Then the verdict names each by its path (as cert and pcap do), not 'r.txt, r.txt'."""
    paths = []
    for site in ("hq", "branch"):
        (tmp_path / site).mkdir()
        path = tmp_path / site / "r.txt"
        path.write_text(HEADER + REGISTRATION)
        paths.append(path)
    result = _rmxdiag(*map(str, paths))
    assert result.stdout.startswith(f"CRITICAL: {paths[0]}, {paths[1]}: "), result.stdout


def test_a_report_with_cr_only_line_ends_is_read(tmp_path: Path) -> None:
    """Given an Active Alarms report saved with classic Mac line ends (CR only)
    When rmxdiag alarms reads it
    Then its registration alarm is found (exit 2), not 'not an RMX alarm file'."""
    report = tmp_path / "mac.txt"
    report.write_bytes((HEADER + REGISTRATION).replace("\n", "\r").encode())
    result = _rmxdiag(str(report))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "[RMX_ALARM_REGISTRATION]" in result.stdout.splitlines()[0]
