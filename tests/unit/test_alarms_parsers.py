"""Alarm parsers: saved reports in several variants, syslog 3164/5424, snmptrapd logs, bounded lines."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probes.alarms.lines import MAX_LINE, ParseResult, Skips, iter_prefiltered, iter_stream_lines
from probes.alarms.model import AlarmCategory, AlarmState, classify
from probes.alarms.report import parse_report
from probes.alarms.snmp import SnmpOids, parse_snmptrapd
from probes.alarms.sources import FileFormat, detect
from probes.alarms.syslog import parse_syslog

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alarms"


def _fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_report_with_tabs_and_title_line() -> None:
    # Given a tab-separated export with a title line, an empty Category cell and an "other" alarm
    result = parse_report(_fixture("report_tabs.txt"), "report_tabs.txt")
    # Then every row is an alarm with its columns, nothing is skipped
    assert result.recognised and result.skips.total == 0
    assert [a.alarm_id for a in result.alarms] == ["1", "2", "3", "4"]
    first, second, ice, other = result.alarms
    assert (first.time, first.gmt_time, first.rmx_category, first.level) == (
        "26/11/2026 10:00:00", "26/11/2026 09:00:00", "General", "Major")
    assert second.cs_id == 1 and second.category is AlarmCategory.REGISTRATION
    assert ice.rmx_category is None and ice.category is AlarmCategory.ICE
    assert other.category is AlarmCategory.OTHER and other.level == "System Message"


def test_report_space_aligned_lowercase_header_counts_the_broken_row() -> None:
    # Given a space-aligned export with a lower-case, oddly spaced header and one broken row
    result = parse_report(_fixture("report_spaces.txt"))
    assert result.recognised
    assert [a.alarm_id for a in result.alarms] == ["12", "13", "14"]
    assert result.alarms[1].rmx_category == "File System" and result.alarms[1].level == "Minor"
    assert result.alarms[1].time == "11/04/2026 10:22 AM"
    # Then the broken row is skipped, counted and located
    assert result.skips.unrecognised == 1 and result.skipped_at == [4]


def test_report_uppercase_header_crlf_and_en_dash() -> None:
    result = parse_report(_fixture("report_title_crlf.txt"))
    assert result.recognised and len(result.alarms) == 2
    assert result.alarms[0].description == "Security mode failed – Certificate expired"
    assert all(a.category is AlarmCategory.CERTIFICATE for a in result.alarms)


def test_report_saved_as_utf16_is_read() -> None:
    # Given the same list saved by a Windows tool as UTF-16 with a BOM
    data = _fixture("report_tabs.txt").decode().encode("utf-16")
    result = parse_report(data)
    assert result.recognised and len(result.alarms) == 4


def test_report_skips_and_counts_overlong_binary_and_undecodable_rows() -> None:
    header = b"ID\tTime\tGMT Time\tCategory\tLevel\tDescription\n"
    good = b"5\t2026-11-26 10:00:00\t2026-11-26 09:00:00\tGeneral\tMajor\tSIP TLS: Registration transport error\n"
    data = (header + good + b"6\t" + b"x" * (MAX_LINE + 10) + b"\n" + b"7\t\x00\x01\x02binary\n"
            + b"8\t\xff\xfe\xfd not utf-8\n")
    result = parse_report(data)
    assert len(result.alarms) == 1
    assert (result.skips.overlong, result.skips.binary, result.skips.undecodable) == (1, 1, 1)
    assert result.skipped_at == [3, 4, 5]


def test_text_without_header_is_not_a_report() -> None:
    assert not parse_report(_fixture("not_alarms.txt")).recognised
    assert detect(_fixture("not_alarms.txt")) is None


@pytest.mark.parametrize(("name", "fmt"), [
    ("report_tabs.txt", FileFormat.REPORT), ("report_spaces.txt", FileFormat.REPORT),
    ("report_title_crlf.txt", FileFormat.REPORT), ("syslog_3164.log", FileFormat.SYSLOG),
    ("syslog_5424.log", FileFormat.SYSLOG), ("snmptrapd_mib.log", FileFormat.SNMPTRAPD),
])
def test_format_detection(name: str, fmt: FileFormat) -> None:
    assert detect(_fixture(name)) is fmt


def test_syslog_rfc3164_alarm_lines_and_clear() -> None:
    # Given RFC 3164 lines with alarms, other traffic and a clear
    result = parse_syslog(_fixture("syslog_3164.log"), "s.log")
    texts = [(a.description, a.state) for a in result.alarms]
    assert texts == [
        ("SIP TLS: Registration transport error", AlarmState.RAISED),
        ("SIP TLS: Certificate subject name is not valid or DNS failed to resolve this name", AlarmState.RAISED),
        ("Registration failed for some conference", AlarmState.RAISED),
        ("SIP TLS: Registration transport error", AlarmState.CLEARED),
    ]
    assert result.lines == 6 and result.ignored == 2
    assert result.alarms[0].time == "Nov 26 21:00:00"


def test_syslog_rfc5424_with_structured_data() -> None:
    result = parse_syslog(_fixture("syslog_5424.log"))
    assert [a.category for a in result.alarms] == [AlarmCategory.REGISTRATION, AlarmCategory.ICE,
                                                   AlarmCategory.CERTIFICATE]
    assert result.alarms[0].time == "2026-11-26T21:00:00.123Z"
    assert result.alarms[2].description == "SIP TLS: Certificate has expired"  # SD with an escaped ']'


def test_snmptrapd_log_with_mib_names_and_numeric_oids() -> None:
    # Given traps logged with the MIB loaded and without it, then a clear of index 21
    result = parse_snmptrapd(_fixture("snmptrapd_mib.log"))
    assert [(a.alarm_id, a.state) for a in result.alarms] == [
        ("21", AlarmState.RAISED), ("22", AlarmState.RAISED), ("21", AlarmState.CLEARED)]
    assert result.alarms[0].level == "major" and result.alarms[1].level == "major"
    assert result.alarms[0].time == "2026-11-26,21:10:0.0"


def test_snmp_oid_table_is_configurable() -> None:
    # Given a deployment whose MIB lives elsewhere, When the OID table is overridden, Then it parses
    line = (b"2026-11-26 21:00:00 h [UDP: [1.2.3.4]:1->[5.6.7.8]:162]:\n"
            b"iso.3.6.1.6.3.1.1.4.1.0 = OID: iso.3.6.1.4.1.99.2.0.15\t"
            b"iso.3.6.1.4.1.99.1.1 = STRING: \"SIP TLS: Registration transport error\"\n")
    assert parse_snmptrapd(line).alarms == []
    oids = SnmpOids(params="1.3.6.1.4.1.99.1", traps="1.3.6.1.4.1.99.2.0", clear_offset=10)
    (alarm,) = parse_snmptrapd(line, oids=oids).alarms
    assert alarm.state is AlarmState.CLEARED and alarm.category is AlarmCategory.REGISTRATION


def test_prefilter_across_chunk_boundaries_and_overlong_lines() -> None:
    # Given alarm lines straddling tiny chunk boundaries and one unterminated monster line
    lines = [b"noise %d" % i if i % 3 else b"x SIP TLS: Registration transport error %d" % i for i in range(300)]
    data = b"\n".join(lines) + b"\n" + b"certificate" * 1000 + b"\nlast certificate line"
    skips = Skips()
    found, total = [], 0
    for cands, count in iter_prefiltered(io.BytesIO(data), skips, chunk=97):
        found += cands
        total += count
    # Then exactly the matching lines come back, the monster is counted once, memory stayed bounded
    assert found == [ln for ln in lines if b"Registration" in ln] + [b"last certificate line"]
    assert skips.overlong == 1
    assert total == 301


def test_stream_lines_drop_overlong_and_keep_the_rest() -> None:
    data = b"a\n" + b"b" * (3 * MAX_LINE) + b"\nc\nd"
    skips = Skips()
    assert list(iter_stream_lines(io.BytesIO(data), skips, chunk=100)) == [b"a", b"c", b"d"]
    assert skips.overlong == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=6000))
def test_parsers_never_raise_on_arbitrary_bytes(data: bytes) -> None:
    # Given arbitrary bytes, When every parser and the detector read them, Then none raises
    # And each result's counts are consistent with the input
    for result in (parse_report(data), parse_syslog(data), parse_snmptrapd(data)):
        _assert_consistent(result, data)
    detect(data)


def _assert_consistent(result: ParseResult, data: bytes) -> None:
    """The counters of a parse add up: no more lines than the input has, no more skips than lines."""
    assert result.lines <= data.count(b"\n") + 1
    assert result.skips.total <= result.lines
    assert len(result.alarms) <= result.events
    assert result.skipped_at == sorted(result.skipped_at)
    assert all(1 <= n <= result.lines for n in result.skipped_at)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([
    "ID\tTime\tGMT Time\tCategory\tLevel\tDescription", "1\t2026-01-01 00:00\t2026-01-01 00:00\tG\tM\tSIP TLS: x",
    "<134>1 - - - - - - SIP TLS: Certificate has expired", "Nov  1 00:00:00 h RMX: ICE failure: y",
    "2026-11-26 21:10:00 h [UDP: [1.1.1.1]:1->[2.2.2.2]:162]:", "iso.3.6.1.4.1.13885.9.1.1.2.1.1 = Hex-STRING: ZZ",
    "\x00\xff", "\t\t\t", "=", " = : ", "cs id99999999999",
]), max_size=30), st.binary(max_size=50))
def test_parsers_never_raise_on_near_miss_lines(lines: list[str], tail: bytes) -> None:
    data = "\n".join(lines).encode("utf-8", "surrogateescape") + tail
    for result in (parse_report(data), parse_syslog(data), parse_snmptrapd(data)):
        _assert_consistent(result, data)


def test_snmptrapd_wrapped_hex_string_as_logged_by_real_snmptrapd() -> None:
    # Given a log written by snmptrapd 5.9.3 without MIBs (captured from the integration test):
    # a non-ASCII description is logged as a Hex-STRING wrapped every 16 bytes onto new lines
    result = parse_snmptrapd(_fixture("snmptrapd_nomib_wrapped.log"))
    assert [(a.alarm_id, a.state, a.description) for a in result.alarms] == [
        ("7", AlarmState.RAISED, "SIP TLS: Registration handshake failure"),
        ("8", AlarmState.RAISED, "Security mode failed – Certificate expired"),
        ("7", AlarmState.CLEARED, "SIP TLS: Registration handshake failure")]
    assert result.alarms[1].time == "2026-11-26T12:30:45" and result.alarms[1].level == "minor"
    # And snmptrapd's own start/stop messages are the only lines it did not understand
    assert result.skips.unrecognised == 4


def test_snmptrapd_wrapped_trap_at_end_of_input_is_flushed() -> None:
    data = _fixture("snmptrapd_nomib_wrapped.log").split(b"\n")
    cut = next(i for i, line in enumerate(data) if line.startswith(b"63 61 74 65"))
    result = parse_snmptrapd(b"\n".join(data[:cut]))  # the trap ends in the middle of its hex dump
    assert result.alarms[-1].description.startswith("Security mode failed")


def test_grep_accelerated_and_python_prefilter_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a syslog file big enough for the grep accelerator, with alarms, clears and noise
    import probes.alarms.grep as accel
    from probes.alarms.syslog import parse_syslog_file, parse_syslog_stream
    from tests.bench.bench_alarms import generate

    path = tmp_path / "big.log"
    generate(path, lines=20_000, alarm_share=0.05, near_miss=0.05)
    with path.open("ab") as f:  # plus an over-long alarm line and binary junk
        f.write(b"<134>Nov 26 21:00:00 rmx1 RMX: SIP TLS: Certificate has expired " + b"x" * 5000 + b"\n\x00\x01\n")
    monkeypatch.setattr(accel, "MIN_SIZE", 0)
    fast = parse_syslog_file(path)
    with path.open("rb") as stream:
        slow = parse_syslog_stream(stream, str(path))
    # Then both paths see the same matches, events and active set
    assert not fast.lines_known and slow.lines_known
    assert fast.matched == slow.matched and fast.events == slow.events > 0
    assert [a.to_json() for a in fast.active.alarms()] == [a.to_json() for a in slow.active.alarms()]
    assert fast.skips.overlong == slow.skips.overlong == 1


def test_grep_missing_falls_back_to_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import probes.alarms.grep as accel
    from probes.alarms.syslog import parse_syslog_file

    path = tmp_path / "s.log"
    path.write_bytes(_fixture("syslog_3164.log"))
    monkeypatch.setattr(accel, "MIN_SIZE", 0)
    monkeypatch.setattr(accel, "grep_path", lambda: None)
    result = parse_syslog_file(path)
    assert result.lines_known and result.events == 4


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000) | st.text(alphabet='<>/="&;!?[]ABCDEFIMNOSTU_ \n', max_size=400).map(str.encode))
def test_xml_answer_parser_raises_only_its_own_error(data: bytes) -> None:
    # Given arbitrary bytes as an XML API answer, Then only XmlApiError (a clean probe error) escapes
    from probes.alarms.xmlapi import XmlApiError, parse_answer

    try:
        assert isinstance(parse_answer(data), dict)
    except XmlApiError as exc:
        assert "\n" not in str(exc)


def test_snmptrapd_v1_trap_specific_number_says_clear() -> None:
    # Given an SNMPv1 trap as snmptrapd 5.9.3 logs it (captured): the specific trap number 15012
    # (Fault 5012 + 10000) sits on its own line before the varbinds
    result = parse_snmptrapd(_fixture("snmptrapd_v1.log"))
    assert [(a.alarm_id, a.state) for a in result.alarms] == [("9", AlarmState.CLEARED)]
    assert result.skips.unrecognised == 4 and result.skipped_at == [1, 2, 6, 7]  # its start/stop messages


def test_grep_output_batches_in_small_pieces_drop_monster_lines() -> None:
    # Given grep output arriving 100 bytes at a time, with a 10 KiB line in the middle
    from probes.alarms.grep import _batches

    data = b"a registra\n" + b"m" * 10_000 + b"\nb certificate\nc ocsp"

    class Pipe:
        def __init__(self) -> None:
            self.pos = 0

        def read1(self, n: int) -> bytes:
            piece = data[self.pos:self.pos + 100]
            self.pos += len(piece)
            return piece

    skips = Skips()
    lines = [line for batch in _batches(Pipe(), skips) for line in batch]  # type: ignore[arg-type]
    # Then every normal line arrives whole and the monster is dropped and counted once
    assert lines == [b"a registra", b"b certificate", b"c ocsp"] and skips.overlong == 1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.sampled_from(
    ["<134>", "<30>", "1 ", "Nov 26 21:00:00 ", "Nov  1 01:02:03 ", "2026-11-26T21:00:00Z ", "rmx1 ", "RMX[12]: ",
     "RMX: ", "- ", "[x@1 a=\"\\]\"] ", "[y@2] ", "SIP TLS: ", "Registration handshake failure", "\ufeff", " ",
     ":", "[", "]", "\\", "\t", "\r", "é", "x"]), max_size=12).map("".join), max_size=20))
def test_batch_framing_equals_line_framing(lines: list[str]) -> None:
    # Given any mix of syslog-looking lines, When framed in one batch pass and one by one,
    # Then both agree on framed/timestamp/message for every line
    from probes.alarms.syslog import _frame, frames

    lines = [line.replace("\n", " ") for line in lines]
    assert list(frames(lines)) == [_frame(line) for line in lines]


def test_batch_framing_equals_line_framing_on_fixtures() -> None:
    from probes.alarms.syslog import _frame, frames

    lines = (_fixture("syslog_3164.log") + _fixture("syslog_5424.log")).decode().splitlines()
    assert list(frames(lines)) == [_frame(line) for line in lines]


# The trap layout of the RMX administrator's guide, as a MIB browser shows it: one binding per line,
# names or numeric OIDs, untyped values (an alarm text with a colon stays whole), blank lines between traps.
GUIDE_LAYOUT = """\
1.3.6.1.2.1.1.3.0 = 12345
1.3.6.1.6.3.1.1.4.1.0 = 1.3.6.1.4.1.13885.9.1.1.2.2.0.5012
1.3.6.1.4.1.13885.9.1.1.2.1.1 = SIP TLS: Registration handshake failure
1.3.6.1.4.1.13885.9.1.1.2.1.3 = 11
1.3.6.1.4.1.13885.9.1.1.2.1.5 = 3

sysUpTime.0 = 12346
snmpTrapOID.0 = rmxSipSecuredCommunicationFailedAlarmFault
rmxAlarmDescription = SIP TLS: Failed to read certificate file
rmxActiveAlarmIndex = 12
rmxActiveAlarmRmxStatus = major(3)
1.3.6.1.6.3.1.1.4.1.0 = 1.3.6.1.4.1.13885.9.1.1.2.2.0.15012
1.3.6.1.4.1.13885.9.1.1.2.1.1 = OctetString: SIP TLS: Registration handshake failure
1.3.6.1.4.1.13885.9.1.1.2.1.3 = 11
"""


def test_guide_layout_one_binding_per_line() -> None:
    # Given traps printed one `OID = value` binding per line (blank line or a new trap OID between traps)
    result = parse_snmptrapd(GUIDE_LAYOUT.encode())
    # Then each trap is one alarm: text whole, index, raise/clear, level; a certificate-file alarm is one
    assert [(a.alarm_id, a.state, a.description, a.level) for a in result.alarms] == [
        ("11", AlarmState.RAISED, "SIP TLS: Registration handshake failure", "major"),
        ("12", AlarmState.RAISED, "SIP TLS: Failed to read certificate file", "major"),
        ("11", AlarmState.CLEARED, "SIP TLS: Registration handshake failure", None)]
    assert result.alarms[1].category is AlarmCategory.CERTIFICATE
    assert detect(GUIDE_LAYOUT.encode()) is FileFormat.SNMPTRAPD


@pytest.mark.parametrize("text", ["SIP TLS: Certificate files are missing", "SIP TLS: Failed to read certificate file",
                                  "Cannot open TLS certificate file", "Secured SIP communication failed: certificate "
                                  "file not found", "SIP TLS: certificate file is unreadable"])
def test_missing_or_unreadable_certificate_files_are_certificate_alarms(text: str) -> None:
    # Given alarm texts about certificate files that are missing or cannot be read, Then certificate alarms
    assert classify(text).category is AlarmCategory.CERTIFICATE
