"""Work done once per unchanged input, shared by every thread that needs it.

Parsing and checking a certificate or key file costs far more than probing with it (a PKCS#12
opens in ~35 ms of CPU, during which cryptography holds the interpreter lock), and the
certificate and mtls probes of one target start at the same moment on the same files. So:

- :func:`file_signature` names the version of a set of files (path, inode, size, mtime);
- :func:`once` keeps one value per *slot* in a probe cache (``ProbeContext.cache``), rebuilt when
  the signature changes (a daemon running for months keeps one copy per configured file, never
  one per version), and builds it in ONE thread while concurrent callers of the same slot wait
  for that result instead of repeating the work;
- :data:`PARSED` is the process-wide cache for parses keyed by content (the PKCS#12 both probes
  open), bounded so a long-running process does not grow with every version it saw.

Failures are not cached: the next call tries again (and raises the same one-line error).
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Hashable, MutableMapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_LOCKS_GUARD = threading.Lock()  # guards the creation of the per-slot locks


def file_signature(*paths: Path | None) -> tuple[Any, ...]:
    """A value that changes when any of ``paths`` changes (path, inode, size, mtime); None paths count as absent."""
    out: list[Any] = []
    for path in paths:
        if path is None:
            out.append(None)
            continue
        try:
            st = path.stat()
        except OSError:
            out.append((str(path), None))
            continue
        out.append((str(path), st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


def _slot_lock(cache: MutableMapping[Any, Any], slot: Hashable) -> threading.Lock:
    # One lock per (cache, slot), created under a global guard; kept in the cache itself so it
    # goes away with the cache (a scheduler reload clears it).
    key = ("memo-lock", slot)
    lock: threading.Lock | None = cache.get(key)
    if lock is None:
        with _LOCKS_GUARD:
            lock = cache.get(key)
            if lock is None:
                lock = cache[key] = threading.Lock()
    return lock


def once(cache: MutableMapping[Any, Any] | None, slot: Hashable, signature: Hashable, build: Callable[[], T]) -> T:
    """The value of ``slot`` for ``signature``: cached, else built once while concurrent callers wait."""
    if cache is None:
        return build()
    hit = cache.get(slot)
    if hit is not None and hit[0] == signature:
        value: T = hit[1]
        return value
    with _slot_lock(cache, slot):
        hit = cache.get(slot)  # built by the thread we waited for
        if hit is not None and hit[0] == signature:
            value = hit[1]
            return value
        value = build()
        cache[slot] = (signature, value)
        return value


class BoundedCache(collections.OrderedDict[Any, Any]):
    """A thread-safe LRU mapping for :func:`once` (at most ``size`` entries, locks included)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self._lock = threading.RLock()

    def get(self, key: Any, default: Any = None) -> Any:
        """The value (now most recently used), or ``default``."""
        with self._lock:
            if key not in self:
                return default
            self.move_to_end(key)
            return self[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        with self._lock:
            super().__setitem__(key, value)
            self.move_to_end(key)
            while len(self) > self.size:
                self.popitem(last=False)


PARSED = BoundedCache(512)
