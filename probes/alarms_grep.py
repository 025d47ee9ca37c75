"""Optional accelerator for big syslog files: GNU grep runs the literal prefilter.

The pure-Python prefilter (:func:`probes.alarms_lines.iter_prefiltered`) scans each chunk once
per literal; grep scans once for all of them (Aho-Corasick style), about 5x faster on a
million-line log. Same literals, same ASCII case folding (``LC_ALL=C -i``), same result: a test
compares both paths. grep is only an accelerator: when it is missing or fails, callers fall back
to the Python path. The file name goes to grep's argv after ``--`` and no shell is involved.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from probes.alarms_lines import PREFILTER, Skips, iter_stream_lines

MIN_SIZE = 8 * 1024 * 1024  # below this the Python prefilter is as fast (no process start)
_BATCH = 4096


class GrepFailed(Exception):
    """grep could not do the prefilter (the caller falls back to Python)."""


def grep_path() -> str | None:
    """GNU grep's absolute path, or None."""
    return shutil.which("grep")


def grep_prefiltered(path: Path, skips: Skips, literals: tuple[bytes, ...] = PREFILTER,
                     ) -> Iterator[list[bytes]]:
    """Batches of the lines of ``path`` that contain one of ``literals`` (ASCII case-insensitive).

    Raises GrepFailed before yielding anything when grep is unusable; once lines flowed, a late
    failure (exit 2) also raises GrepFailed so the caller can redo the file in Python.
    """
    grep = grep_path()
    if grep is None:
        raise GrepFailed("grep not found")
    argv = [grep, "-a", "-i", "-F", *(a for lit in literals for a in ("-e", lit.decode("ascii"))), "--", str(path)]
    # Fixed argv, no shell; LC_ALL=C makes -i fold ASCII only, exactly like bytes.lower().
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,  # noqa: S603
                            stdin=subprocess.DEVNULL, env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"})
    assert proc.stdout is not None  # noqa: S101 (PIPE was requested)
    try:
        batch: list[bytes] = []
        for line in iter_stream_lines(proc.stdout, skips):
            batch.append(line)
            if len(batch) >= _BATCH:
                yield batch
                batch = []
        if batch:
            yield batch
        if proc.wait(timeout=30) > 1:  # 0: matches, 1: no match, 2: trouble
            raise GrepFailed(f"grep exited with {proc.returncode}")
    finally:
        if proc.poll() is None:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        proc.stdout.close()
