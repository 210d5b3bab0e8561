"""The object cache's size cap (runtime/cache_prune.py): least recently used entries go
first, with their side files; loads mark entries used; pruning runs at most once per
interval; a cap of 0 disables it; files being written by another process are kept."""
from __future__ import annotations

import os
import time

import pytest

from runtime import cache_prune, objcache


def _entry(root, key, size, age_s, side=True):
    folder = os.path.join(root, key[:2])
    os.makedirs(folder, exist_ok=True)
    paths = [os.path.join(folder, key[2:] + ".o")]
    if side:
        paths.append(os.path.join(folder, key[2:] + ".plan.json"))
    when = time.time() - age_s
    for p in paths:
        with open(p, "wb") as f:
            f.write(b"x" * (size // len(paths)))
        os.utime(p, (when, when))
    return paths


def test_prune_evicts_least_recently_used_entries_with_their_side_files(tmp_path):
    root = str(tmp_path)
    old = _entry(root, "aa" + "1" * 62, 400_000, age_s=300)
    mid = _entry(root, "bb" + "2" * 62, 400_000, age_s=200)
    new = _entry(root, "aa" + "3" * 62, 400_000, age_s=100)
    removed = cache_prune.prune(root, cap=1_000_000)       # 1.2 MB > cap: down to 0.8 MB
    assert removed == 400_000
    assert not any(os.path.exists(p) for p in old)
    assert all(os.path.exists(p) for p in mid + new)


def test_prune_under_the_cap_removes_nothing(tmp_path):
    root = str(tmp_path)
    paths = _entry(root, "cc" + "4" * 62, 100_000, age_s=1000)
    assert cache_prune.prune(root, cap=1_000_000) == 0
    assert all(os.path.exists(p) for p in paths)


def test_a_file_being_written_is_kept(tmp_path):
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "dd"))
    tmp = os.path.join(root, "dd", "tmpabc.tmp")
    with open(tmp, "wb") as f:
        f.write(b"x" * 500_000)
    _entry(root, "dd" + "5" * 62, 800_000, age_s=50)
    cache_prune.prune(root, cap=100_000)
    assert os.path.exists(tmp)


def test_maybe_prune_runs_at_most_once_per_interval_and_not_without_a_cap(tmp_path,
                                                                          monkeypatch):
    root = str(tmp_path)
    monkeypatch.setenv("GRAPHC_CACHE_MAX_MB", "1")
    paths = _entry(root, "ee" + "6" * 62, 2 << 20, age_s=10)
    now = time.time()
    assert cache_prune.maybe_prune(root, now=now)                # never pruned: due
    assert not any(os.path.exists(p) for p in paths)
    paths = _entry(root, "ee" + "7" * 62, 2 << 20, age_s=10)
    assert not cache_prune.maybe_prune(root, now=now + 60)       # ran a minute ago
    assert all(os.path.exists(p) for p in paths)
    assert cache_prune.maybe_prune(root, now=now + cache_prune.PRUNE_EVERY_S + 1)
    assert not any(os.path.exists(p) for p in paths)
    monkeypatch.setenv("GRAPHC_CACHE_MAX_MB", "0")
    assert not cache_prune.maybe_prune(root, now=now + 10 * cache_prune.PRUNE_EVERY_S)


@pytest.mark.parametrize("raw, want", [("", 512 << 20), ("64", 64 << 20), ("0", 0),
                                       ("lots", 512 << 20), ("0.5", 1 << 19)])
def test_cap_setting(monkeypatch, raw, want):
    monkeypatch.setenv("GRAPHC_CACHE_MAX_MB", raw)
    assert cache_prune.max_bytes() == want


def test_a_load_marks_its_entry_used(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    key = "ff" + "8" * 62
    objcache.store(key, b"object bytes")
    path = os.path.join(str(tmp_path), key[:2], key[2:] + ".o")
    long_ago = time.time() - 10_000
    os.utime(path, (long_ago, long_ago))
    assert objcache.load(key) == b"object bytes"
    assert time.time() - os.stat(path).st_mtime < 100
