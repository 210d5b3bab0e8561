"""The on-disk cache of compiled object files.

A compiled module is stored as the ELF object LLVM emits for it, keyed by a SHA-256 over:
the structural hash of the graph (without parameter values), the target (triple, CPU name,
CPU features, llvmlite version), the compile options, and a fingerprint of graphc's code
generator (the source of runtime/ and the threading threshold), so a changed code generator
never reuses stale code. Location: $GRAPHC_CACHE_DIR, else ~/.cache/graphc; GRAPHC_CACHE=0
disables it; $GRAPHC_CACHE_MAX_MB caps its size (cache_prune.py: least recently used entries
go first). Entries are written atomically (temporary file + rename) with a header holding
the payload's checksum; an entry that is truncated, corrupted or unreadable is ignored
(and rebuilt by the caller). Nothing is unpickled: the payload is raw object bytes. A JSON
side entry per key holds the buffer placement (arena offsets as text), so a warm start
skips the placement search too; a malformed one is ignored.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from typing import Optional

from . import cache_prune

MAGIC = b"GRAPHC-OBJ-1\n"


def enabled() -> bool:
    return os.environ.get("GRAPHC_CACHE", "1").strip() not in ("0", "false", "no", "off")


def cache_dir() -> str:
    return os.environ.get("GRAPHC_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "graphc")


@functools.lru_cache(maxsize=1)
def codegen_fingerprint() -> str:
    """Hash of the runtime package's Python sources and of the passes/ analyses codegen
    follows (any codegen change gives new keys)."""
    root = os.path.dirname(os.path.abspath(__file__))
    digest = hashlib.sha256()
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            if name.endswith(".py"):
                with open(os.path.join(folder, name), "rb") as f:
                    digest.update(name.encode() + b"\0" + f.read())
    # analyses of passes/ that codegen follows: the arena layout and the fused-group layouts
    passes_dir = os.path.join(os.path.dirname(root), "passes")
    for name in CODEGEN_ANALYSES:
        with open(os.path.join(passes_dir, name), "rb") as f:
            digest.update(name.encode() + b"\0" + f.read())
    return digest.hexdigest()


CODEGEN_ANALYSES = ("plan_memory.py", "fusion_rules.py")


def codegen_knobs() -> tuple:
    """Module-level switches that change the code generated for a graph (tests turn them)."""
    from . import threads
    from .codegen import conv_direct, elementwise, matmul
    return (threads.MIN_PARALLEL_NS, elementwise.MIN_CHUNK, conv_direct.ENABLED,
            matmul.EPILOGUE_CHUNK)


def entry_key(graph_key: tuple) -> str:
    text = repr((graph_key, codegen_fingerprint(), codegen_knobs()))
    return hashlib.sha256(text.encode()).hexdigest()


def _path(key: str) -> str:
    return os.path.join(cache_dir(), key[:2], key[2:] + ".o")


def load(key: str) -> Optional[bytes]:
    """The cached object bytes for `key`, or None (missing, corrupted or unreadable)."""
    try:
        with open(_path(key), "rb") as f:
            data = f.read()
    except OSError:
        return None
    if not data.startswith(MAGIC):
        return None
    header_end = data.find(b"\n", len(MAGIC))
    if header_end < 0:
        return None
    checksum = data[len(MAGIC):header_end].decode("ascii", "replace")
    payload = data[header_end + 1:]
    if hashlib.sha256(payload).hexdigest() != checksum:
        return None
    cache_prune.mark_used(_path(key))
    return payload


def load_json(key: str, kind: str):
    """A JSON side entry (e.g. the buffer placement, kind "plan") or None (missing,
    unreadable, or not matching its checksum)."""
    try:
        with open(_path(key)[:-2] + f".{kind}.json", encoding="utf-8") as f:
            entry = json.load(f)
        body = json.dumps(entry["value"], sort_keys=True)
        if entry["sha256"] != hashlib.sha256((key + body).encode()).hexdigest():
            return None
        return entry["value"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store_json(key: str, kind: str, value) -> None:
    body = json.dumps(value, sort_keys=True)
    entry = {"value": value, "sha256": hashlib.sha256((key + body).encode()).hexdigest()}
    _store_file(_path(key)[:-2] + f".{kind}.json", json.dumps(entry).encode())


def store(key: str, payload: bytes) -> None:
    """Write an entry atomically; any filesystem problem just leaves the cache as it was."""
    _store_file(_path(key), MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n"
                + payload)
    cache_prune.maybe_prune(cache_dir())      # at most hourly: keeps the cache under its cap


def _store_file(path: str, data: bytes) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except (OSError, UnboundLocalError):
            pass
