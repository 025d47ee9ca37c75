"""RMX alarms from SNMP traps as Net-SNMP's ``snmptrapd`` logs them (``-Lf FILE``).

POLYCOM-RMX-MIB (enterprise 13885; objects under rmxMib1EventsParams 1.3.6.1.4.1.13885.9.1.1.2.1):
rmxAlarmDescription .1, rmxActiveAlarmDateAndTime .2, rmxActiveAlarmIndex .3,
rmxActiveAlarmListName .4, rmxActiveAlarmRmxStatus .5 (0 normal, 1 startup, 2 minor, 3 major).
Notifications live under rmxTraps 1.3.6.1.4.1.13885.9.1.1.2.2.0: ``rmx<Name>AlarmFault`` = N
and ``rmx<Name>AlarmClear`` = N + 10000 (e.g. SipSecuredCommunicationFailed 5012 / 15012).
These OIDs come from the published MIB; :class:`SnmpOids` lets a deployment override them.

snmptrapd prints a header line (date, host, transport) and then the varbinds TAB-separated on
one line, as names (MIB loaded), ``SNMPv2-SMI::enterprises.…`` or ``iso.3.6…`` / ``.1.3.6…``
(no MIB). The layout of the RMX administrator's guide and of MIB browsers (and of snmptrapd with
``-F '%B [%b]:\n%V\n%v\n'``) puts one ``OID = value`` binding per line, with or without the value
type: consecutive binding lines form one trap, which ends at a blank or other line, at the next
sysUpTime / snmpTrapOID binding, or when a field repeats. All forms are accepted. Pure: never raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from probes.alarms.lines import ParseResult, decode_line, split_lines
from probes.alarms.model import Alarm, AlarmSource, AlarmState, make_alarm

RMX_STATUS = {0: "normal", 1: "startup", 2: "minor", 3: "major"}


@dataclass(frozen=True)
class SnmpOids:
    """Where the RMX alarm varbinds and notifications live (defaults: POLYCOM-RMX-MIB)."""

    params: str = "1.3.6.1.4.1.13885.9.1.1.2.1"  # rmxMib1EventsParams
    traps: str = "1.3.6.1.4.1.13885.9.1.1.2.2.0"  # rmxTraps
    clear_offset: int = 10000  # rmx<Name>AlarmClear = rmx<Name>AlarmFault + 10000


_NAMES = {"rmxalarmdescription": 1, "rmxactivealarmdateandtime": 2, "rmxactivealarmindex": 3,
          "rmxactivealarmlistname": 4, "rmxactivealarmrmxstatus": 5}
_HEADER = re.compile(r"^(?:\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} .*(UDP|TCP|udp|tcp)|\S+ \[(UDP|TCP|udp|tcp): \[)")
_HEADER_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})")
# Net-SNMP's value types (MIB browsers print some as OctetString / ObjectIdentifier): only these
# are a type prefix, so an untyped alarm text such as "SIP TLS: Registration ..." stays whole.
_TYPES = ("STRING|Hex-STRING|OCTET STRING|OctetString|INTEGER|Integer32|Gauge32|Counter32|Counter64|Unsigned32|"
          "UInteger32|Timeticks|TimeTicks|OID|Object ID|ObjectIdentifier|IpAddress|Network Address|BITS|Opaque|NULL")
_VARBIND = re.compile(rf"^\s*(?P<oid>\S+) = (?:(?P<type>{_TYPES}): ?)?(?P<value>.*?)\s*$")
_QUOTED_HEX = re.compile(r'^"?(?:[0-9A-Fa-f]{2} )*[0-9A-Fa-f]{2} ?"?$')
_TRAP_OID = ("snmpv2-mib::snmptrapoid", "iso.3.6.1.6.3.1.1.4.1", ".1.3.6.1.6.3.1.1.4.1", "1.3.6.1.6.3.1.1.4.1")
_TRAP_HEADER_OIDS = (*_TRAP_OID, "snmpv2-mib::sysuptime", "disman-event-mib::sysuptimeinstance",
                     "iso.3.6.1.2.1.1.3.", ".1.3.6.1.2.1.1.3.", "1.3.6.1.2.1.1.3.")
_V1_SPECIFIC = re.compile(r"Enterprise Specific Trap \((\d+)\)")
_PREFIXES = (("SNMPv2-SMI::enterprises.", "1.3.6.1.4.1."), ("enterprises.", "1.3.6.1.4.1."),
             ("iso.", "1."), (".", ""))


def _numeric(oid: str) -> str:
    for prefix, replacement in _PREFIXES:
        if oid.startswith(prefix):
            return replacement + oid[len(prefix):]
    return oid


def _field(oid: str, oids: SnmpOids) -> int | None:
    """Which RMX param (1..5) an OID names, or None."""
    name = oid.split("::", 1)[1] if "::" in oid else oid
    base = name.split(".", 1)[0].lower()
    if base in _NAMES:
        return _NAMES[base]
    num = _numeric(oid)
    if num.startswith(oids.params + "."):
        arcs = num[len(oids.params) + 1:].split(".")
        if arcs[0].isdigit() and (len(arcs) == 1 or arcs[1:] == ["0"]):
            return int(arcs[0])
    return None


def _trap_state(value: str, oids: SnmpOids) -> AlarmState | None:
    """Raised/cleared from the snmpTrapOID.0 value; None when it is not an RMX trap."""
    name = value.split("::", 1)[1] if "::" in value else value
    if name.startswith("rmx") and name.endswith("Clear"):
        return AlarmState.CLEARED
    if name.startswith("rmx") and name.endswith("Fault"):
        return AlarmState.RAISED
    num = _numeric(value)
    if num.startswith(oids.traps + "."):
        last = num[len(oids.traps) + 1:]
        if last.isdigit():
            return AlarmState.CLEARED if int(last) >= oids.clear_offset else AlarmState.RAISED
    return None


def _string(kind: str | None, value: str) -> str:
    if kind == "Hex-STRING":  # snmptrapd prints non-ASCII (UTF-8 dashes...) as hex bytes
        try:
            raw = bytes.fromhex(value.replace(" ", ""))
        except ValueError:
            return value
        return raw.decode("utf-8", "replace").rstrip("\x00")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"')
    return value


def _date_and_time(kind: str | None, value: str) -> str:
    """SNMPv2-TC DateAndTime (8 or 11 octets) as ISO 8601; other shapes are kept as printed."""
    if kind is None and _QUOTED_HEX.match(value):  # printed without its type (snmptrapd -OQ, MIB browsers)
        kind, value = "Hex-STRING", value.strip('"')
    if kind != "Hex-STRING":
        return _string(kind, value)
    try:
        raw = bytes.fromhex(value.replace(" ", ""))
    except ValueError:
        return value
    if len(raw) not in (8, 11):
        return value
    year = int.from_bytes(raw[:2], "big")
    text = f"{year:04d}-{raw[2]:02d}-{raw[3]:02d}T{raw[4]:02d}:{raw[5]:02d}:{raw[6]:02d}"
    if len(raw) == 11 and raw[8:9] in (b"+", b"-"):
        text += f"{raw[8:9].decode()}{raw[9]:02d}:{raw[10]:02d}"
    return text


_HEX_CONTINUATION = re.compile(r"^(?:[0-9A-Fa-f]{2} )+")
_HEX_FULL_ROW = re.compile(r"(?:[0-9A-Fa-f]{2} ){16}$")  # snmptrapd wraps Hex-STRING every 16 bytes
_MAX_PENDING = 4096


class TrapLogParser:
    """Line-by-line parser of an snmptrapd log (or of traps printed one binding per line).

    State: the last header's time, one trap line whose Hex-STRING value snmptrapd wrapped onto
    the following lines (it breaks hex dumps every 16 bytes; seen with non-ASCII alarm texts such
    as an en dash), and the trap being collected from one-binding lines. Call :meth:`flush` at the
    end of a whole file.
    """

    def __init__(self, oids: SnmpOids | None = None, file: str | None = None) -> None:
        self.oids = oids or SnmpOids()
        self.file = file
        self.header_time: str | None = None
        self._pending: str | None = None
        self._pending_line: int | None = None
        # SNMPv1: snmptrapd logs "Enterprise Specific Trap (N)" on its own line before the
        # varbinds; N carries raise (N) vs clear (N + 10000) for the next varbind line.
        self._v1_state: AlarmState | None = None
        self._group: dict[int, tuple[str | None, str]] = {}  # RMX fields of the trap being collected
        self._group_state: AlarmState | None = None
        self._group_line: int | None = None

    def feed(self, text: str, line_no: int | None = None) -> tuple[bool, list[Alarm]]:
        """(recognised as snmptrapd output, the RMX alarms completed by this line)."""
        out: list[Alarm] = []
        if self._pending is not None:
            if _HEX_CONTINUATION.match(text) or text.startswith("\t"):
                self._pending += text
                if _HEX_FULL_ROW.search(text) and len(self._pending) < _MAX_PENDING:
                    return True, []
                return True, self._complete_pending()
            out = self._complete_pending()
        if _HEADER.match(text):
            out += self._close_group()
            m = _HEADER_TIME.match(text)
            self.header_time = m.group(1) if m else None
            self._v1_state = None
            return True, out
        last = text.rsplit("\t", 1)[-1]
        if _HEX_FULL_ROW.search(text) and "Hex-STRING:" in last:
            self._pending, self._pending_line = text, line_no
            return True, out
        recognised, alarms = self._logical(text, line_no)
        return recognised or bool(out), out + alarms

    def flush(self) -> list[Alarm]:
        """The alarms still being put together (a wrapped trap line, a one-binding-per-line trap)."""
        return self._complete_pending() + self._close_group()

    def _complete_pending(self) -> list[Alarm]:
        if self._pending is None:
            return []
        text, line_no = self._pending, self._pending_line
        self._pending = self._pending_line = None
        return self._logical(text, line_no)[1]

    def _logical(self, text: str, line_no: int | None) -> tuple[bool, list[Alarm]]:
        """One complete line: a single binding joins the trap being collected; anything else ends it."""
        if "\t" not in text.strip():
            m = _VARBIND.match(text)
            if m is not None and self._binding_oid(m.group("oid")):
                return True, self._bind(m.group("oid"), m.group("type"), m.group("value"), line_no)
        out = self._close_group()
        recognised, alarm = self._parse(text, line_no)
        return recognised or bool(out), out + ([alarm] if alarm else [])

    def _binding_oid(self, oid: str) -> bool:
        return _is_trap_header(oid) or _field(oid, self.oids) is not None or "." in oid or "::" in oid

    def _bind(self, oid: str, kind: str | None, value: str, line_no: int | None) -> list[Alarm]:
        """Add one binding line to the trap being collected; the alarms a new trap closes."""
        if _is_trap_header(oid):  # sysUpTime / snmpTrapOID open a trap: a collected one is complete
            out = self._close_group() if self._group else []
            if oid.lower().startswith(_TRAP_OID):
                self._group_state = _trap_state(value, self.oids) or self._group_state
            return out
        index = _field(oid, self.oids)
        if index is None:
            return []
        out = self._close_group() if index in self._group else []
        self._group[index] = (kind, value)
        self._group_line = self._group_line or line_no
        return out

    def _close_group(self) -> list[Alarm]:
        fields, state, line_no = self._group, self._group_state or self._v1_state, self._group_line
        self._group, self._group_state, self._group_line = {}, None, None
        alarm = self._alarm(fields, state, line_no)
        return [alarm] if alarm else []

    def _parse(self, text: str, line_no: int | None) -> tuple[bool, Alarm | None]:
        fields: dict[int, tuple[str | None, str]] = {}
        state = self._v1_state
        saw_varbind = False
        v1 = _V1_SPECIFIC.search(text)
        if v1 is not None:
            state = AlarmState.CLEARED if int(v1.group(1)) >= self.oids.clear_offset else AlarmState.RAISED
            self._v1_state = state
        for part in text.split("\t"):
            m = _VARBIND.match(part)
            if m is None:
                continue
            saw_varbind = True
            oid, kind, value = m.group("oid"), m.group("type"), m.group("value")
            if oid.lower().startswith(_TRAP_OID):
                state = _trap_state(value, self.oids) or state
                continue
            index = _field(oid, self.oids)
            if index is not None:
                fields[index] = (kind, value)
        if 1 not in fields:
            return saw_varbind or v1 is not None, None
        return True, self._alarm(fields, state, line_no)

    def _alarm(self, fields: dict[int, tuple[str | None, str]], state: AlarmState | None,
               line_no: int | None) -> Alarm | None:
        """The alarm of one trap's RMX fields (None without a description)."""
        if 1 not in fields:
            return None
        description = _string(*fields[1])
        if not description.strip():
            return None
        alarm_id = _string(*fields[3]) if 3 in fields else None
        when = _date_and_time(*fields[2]) if 2 in fields else self.header_time
        level = _level(*fields[5]) if 5 in fields else None
        return make_alarm(AlarmSource.SNMP, description, alarm_id=alarm_id, time=when,
                          level=level, state=state or AlarmState.RAISED, file=self.file, line=line_no)


def _is_trap_header(oid: str) -> bool:
    """sysUpTime.0 or snmpTrapOID.0: the two bindings every SNMPv2 trap starts with."""
    return oid.lower().startswith(_TRAP_HEADER_OIDS)


def _level(kind: str | None, value: str) -> str:
    """rmxActiveAlarmRmxStatus: "3" (no MIB) or "major(3)" (MIB loaded) -> "major"."""
    raw = _string(kind, value).strip()
    if raw.isdigit():
        return RMX_STATUS.get(int(raw), raw)
    return raw.split("(", 1)[0] or raw


def parse_snmptrapd(data: bytes, file: str | None = None, oids: SnmpOids | None = None) -> ParseResult:
    """Parse an snmptrapd log held in memory: every RMX raise/clear, in order."""
    result = ParseResult()
    return feed_trap_lines(result, split_lines(data), TrapLogParser(oids, file))


def feed_trap_lines(result: ParseResult, lines: Iterable[bytes], parser: TrapLogParser) -> ParseResult:
    """Run snmptrapd log lines (from memory or a stream) through ``parser`` into ``result``."""
    for line_no, raw in enumerate(lines, 1):
        result.lines = line_no
        text = decode_line(raw, result.skips)
        if text is None:
            result.skip(line_no)
            continue
        recognised, alarms = parser.feed(text, line_no)
        result.recognised = result.recognised or recognised
        if not recognised and text.strip():
            result.skips.unrecognised += 1
            result.skip(line_no)
        for alarm in alarms:
            result.add(alarm)
    for alarm in parser.flush():
        result.add(alarm)
    return result


def looks_like_snmptrapd(data: bytes) -> bool:
    """True when the first lines look like snmptrapd output with RMX varbinds or headers."""
    head = parse_snmptrapd(data[:65536])
    return head.recognised and (head.events > 0 or b"13885" in data[:65536] or b"rmx" in data[:65536])
