"""Keeping the on-disk object cache (objcache.py) under a size cap.

Every distinct graph, and every change of graphc's code generator, adds entries; without a
cap the cache only grows (a development machine reached 885 MB). The cap is
$GRAPHC_CACHE_MAX_MB (default 512; 0 = no cap). Entries are evicted least recently used
first: a load marks its entry used (its mtime), and eviction removes the oldest entries, an
object and its JSON side entries together, until the cache is at most PRUNE_TO of the cap
(so the next prune is not due right away).

Pruning scans the whole cache, so it runs at most once per PRUNE_EVERY_S seconds across all
processes sharing the cache (a stamp file's mtime says when it last ran), from a store, which
follows a compile that cost far more. Every filesystem error is ignored: a cache that cannot
be pruned is still a working cache, and a file another process removed first is simply gone.
"""
from __future__ import annotations

import os
import time

DEFAULT_MAX_MB = 512
PRUNE_TO = 0.8
PRUNE_EVERY_S = 3600
STAMP = "last-prune"


def max_bytes() -> int:
    """The cap in bytes (0: no cap); a malformed setting falls back to the default."""
    raw = os.environ.get("GRAPHC_CACHE_MAX_MB", "").strip()
    try:
        mb = float(raw) if raw else DEFAULT_MAX_MB
    except ValueError:
        mb = DEFAULT_MAX_MB
    return max(0, int(mb * (1 << 20)))


def mark_used(path: str) -> None:
    """Record that the entry at `path` was just used (its mtime: eviction order)."""
    try:
        os.utime(path)
    except OSError:
        pass


def maybe_prune(root: str, now: float = None) -> bool:
    """Prune `root` if a prune is due (none in the last PRUNE_EVERY_S s); True if it ran."""
    cap = max_bytes()
    if cap <= 0:
        return False
    now = time.time() if now is None else now
    stamp = os.path.join(root, STAMP)
    try:
        if now - os.stat(stamp).st_mtime < PRUNE_EVERY_S:
            return False
    except OSError:
        pass                                   # never pruned: due
    try:
        with open(stamp, "w"):
            pass
        os.utime(stamp, (now, now))
    except OSError:
        return False
    prune(root, cap)
    return True


def prune(root: str, cap: int) -> int:
    """Evict least recently used entries until `root` holds at most PRUNE_TO * cap bytes
    (nothing if it is already under `cap`); returns the bytes removed."""
    entries = {}                               # key path stem -> [files, bytes, last use]
    for folder, _, files in os.walk(root):
        for name in files:
            if name == STAMP:
                continue
            path = os.path.join(folder, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            if name.endswith(".tmp") and time.time() - st.st_mtime < PRUNE_EVERY_S:
                continue                       # another process is writing it
            stem = os.path.join(folder, name.split(".", 1)[0])   # key.o, key.plan.json
            entry = entries.setdefault(stem, [[], 0, 0.0])
            entry[0].append(path)
            entry[1] += st.st_size
            entry[2] = max(entry[2], st.st_mtime)
    total = sum(e[1] for e in entries.values())
    if total <= cap:
        return 0
    removed = 0
    for files, size, _ in sorted(entries.values(), key=lambda e: e[2]):
        if total - removed <= PRUNE_TO * cap:
            break
        for path in files:
            try:
                os.unlink(path)
            except OSError:
                pass
        removed += size
    return removed
