"""The tail -F follower: rotation, truncation, restart, bounded lines, atomic 0600 state."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from probes.alarms.follow import Follower
from probes.alarms.lines import MAX_LINE
from probes.alarms.model import AlarmCategory
from probes.alarms.sources import FileFormat, FollowedSource


def _append(path: Path, *lines: str) -> None:
    with path.open("ab") as f:
        f.write("".join(line + "\n" for line in lines).encode())


def test_reads_only_new_complete_lines(tmp_path: Path) -> None:
    log = tmp_path / "traps.log"
    _append(log, "one", "two")
    follower = Follower(log, tmp_path / "state.json")
    assert list(follower.poll()) == [b"one", b"two"]
    with log.open("ab") as f:
        f.write(b"thr")  # a line still being written
    assert list(follower.poll()) == []
    with log.open("ab") as f:
        f.write(b"ee\n")
    assert list(follower.poll()) == [b"three"]


def test_restart_neither_repeats_nor_misses(tmp_path: Path) -> None:
    # Given a follower that read two lines and saved its state, then the daemon stopped
    log, state = tmp_path / "traps.log", tmp_path / "st" / "state.json"
    _append(log, "a", "b")
    first = Follower(log, state)
    assert list(first.poll()) == [b"a", b"b"]
    first.save()
    # When lines are written while it is down and a new process starts
    _append(log, "c", "d")
    second = Follower(log, state)
    # Then it reads exactly the lines written while down
    assert list(second.poll()) == [b"c", b"d"]
    # And the state file is private
    assert stat.S_IMODE(state.stat().st_mode) == 0o600


def test_rotation_by_rename_drains_the_old_file_first(tmp_path: Path) -> None:
    # Given a follower that saved its position, then logrotate renamed the file while it was down
    log, state = tmp_path / "traps.log", tmp_path / "state.json"
    _append(log, "old1")
    f = Follower(log, state)
    assert list(f.poll()) == [b"old1"]
    f.save()
    _append(log, "old2")  # written after our last read, before rotation
    log.rename(tmp_path / "traps.log.1")
    _append(log, "new1")
    # When a restarted follower polls, Then it finishes the old file, then reads the new one
    g = Follower(log, state)
    assert list(g.poll()) == [b"old2", b"new1"]
    assert g.gaps == 0
    g.save()
    assert list(Follower(log, state).poll()) == []


def test_rotation_with_old_file_gone_is_counted_as_a_gap(tmp_path: Path) -> None:
    log, state = tmp_path / "traps.log", tmp_path / "state.json"
    _append(log, "old1")
    f = Follower(log, state)
    list(f.poll())
    f.save()
    log.rename(tmp_path / "archived-elsewhere")  # kept (so its inode is not reused) but not findable
    _append(log, "new1")
    g = Follower(log, state)
    assert list(g.poll()) == [b"new1"] and g.gaps == 1


def test_truncation_restarts_at_the_beginning(tmp_path: Path) -> None:
    log = tmp_path / "traps.log"
    _append(log, "aaaaaaaa", "bbbbbbbb")
    f = Follower(log, None)
    assert len(list(f.poll())) == 2
    with log.open("wb") as out:  # copytruncate / "> log"
        out.write(b"x\n")
    assert list(f.poll()) == [b"x"]


def test_rewritten_in_place_past_the_offset_is_detected_by_hash(tmp_path: Path) -> None:
    # Given the file was truncated and regrew beyond our offset between two polls
    log = tmp_path / "traps.log"
    _append(log, "first line")
    f = Follower(log, None)
    list(f.poll())
    with log.open("wb") as out:
        out.write(b"completely different content\nsecond\n")
    # Then the hash before the offset differs and the new content is read from the start
    assert list(f.poll()) == [b"completely different content", b"second"]


def test_unterminated_monster_line_is_skipped_with_bounded_memory(tmp_path: Path) -> None:
    log = tmp_path / "traps.log"
    with log.open("wb") as out:
        out.write(b"ok\n" + b"z" * (MAX_LINE * 4))
    f = Follower(log, None, chunk=1024)
    assert list(f.poll()) == [b"ok"]
    with log.open("ab") as out:
        out.write(b"zzz tail of the monster\nafter\n")
    assert list(f.poll()) == [b"after"]
    assert f.skips.overlong == 1


def test_corrupt_state_file_starts_over_without_crashing(tmp_path: Path) -> None:
    log, state = tmp_path / "traps.log", tmp_path / "state.json"
    _append(log, "a")
    state.write_text("{not json")
    assert list(Follower(log, state).poll()) == [b"a"]


def test_followed_snmp_log_keeps_its_active_set_across_restart(tmp_path: Path) -> None:
    # Given a followed snmptrapd log with one raise
    log, state_dir = tmp_path / "traps.log", tmp_path / "state"
    raise_line = ("iso.3.6.1.6.3.1.1.4.1.0 = OID: iso.3.6.1.4.1.13885.9.1.1.2.2.0.5012\t"
                  "iso.3.6.1.4.1.13885.9.1.1.2.1.1 = STRING: \"SIP TLS: Registration handshake failure\"\t"
                  "iso.3.6.1.4.1.13885.9.1.1.2.1.3 = Gauge32: 4")
    _append(log, "2026-11-26 21:00:00 h [UDP: [1.1.1.1]:1->[2.2.2.2]:162]:", raise_line)
    src = FollowedSource.open(FileFormat.SNMPTRAPD, log, state_dir, "rmx1")
    new, _ = src.poll()
    assert [a.category for a in new] == [AlarmCategory.REGISTRATION]
    # When the daemon restarts, Then the alarm is still active but not reported as new
    again = FollowedSource.open(FileFormat.SNMPTRAPD, log, state_dir, "rmx1")
    new, _ = again.poll()
    assert new == [] and len(again.active) == 1
    # When the clear arrives, Then the active set empties
    _append(log, raise_line.replace(".0.5012", ".0.15012"))
    new, _ = again.poll()
    assert new == [] and len(again.active) == 0
    files = list((state_dir / "alarms").iterdir())
    assert len(files) == 1 and oct(files[0].stat().st_mode & 0o777) == "0o600"
    assert not [p for p in os.listdir(state_dir / "alarms") if p.startswith(".follow-")]
