"""LLVM work for one graph split over the CPUs: module parts compiled in forked processes.

llvmlite serialises every call into LLVM behind one process-wide lock, so a module's
optimisation and code generation use one core however many there are. A big graph's module
is therefore built as PARTS (module_builder.build_modules: the entry function and some
kernels in part 0, the other kernels, with external linkage, in the others); part 0 is
compiled here while each other part is compiled in a child made with fork(), which sends
back its object file through a pipe. All objects are then loaded into one MCJIT engine,
which links the entry's calls to the kernels of the other parts.

A child that fails, or is still busy well after part 0 is done (CHILD_PATIENCE), is killed
and its part compiled here instead: splitting can only change how long a compile takes,
never its result. Forking is done only while no other Python thread runs (its locks would
stay held in the child); otherwise, and with GRAPHC_PARALLEL_COMPILE=0, every module is one
part.
"""
from __future__ import annotations

import os
import select
import struct
import threading
import time

import llvmlite.binding as llvm

from ir import CompileError

from . import threads
from .target import LLVM_LOCK

ENV_VAR = "GRAPHC_PARALLEL_COMPILE"
MIN_KERNELS = 8                  # fewer kernels: one part (a fork is not free)
CHILD_PATIENCE = (5.0, 3.0)      # wait for a child at least 5 s, else 3x this part's time


def parts_for(n_kernels: int) -> int:
    """How many parts to build a module of `n_kernels` kernels in (1 unless forking is safe
    and worth it)."""
    if os.environ.get(ENV_VAR, "1").strip() in ("0", "false", "no", "off"):
        return 1
    if not hasattr(os, "fork") or n_kernels < MIN_KERNELS or not _only_our_threads():
        return 1
    return max(1, min(threads.available_cpus(), 2))


def _only_our_threads() -> bool:
    """No Python thread but the caller: a fork copies only the calling thread, and a lock
    another Python thread held at that moment would never be released in the child. (Native
    library threads, e.g. BLAS or OpenMP pools, are normally parked; the child only runs
    LLVM, and a child that hangs anyway is abandoned after a bounded wait: `_collect`.)"""
    return threading.active_count() == 1


def parse(text: str):
    try:
        mod = llvm.parse_assembly(text)
        mod.verify()
    except RuntimeError as e:
        raise CompileError(f"generated LLVM IR is invalid (a codegen bug): {e}") from None
    return mod


def compile_one(text: str, target, opt_level: int):
    """(optimised module, object bytes) of one part, in this process."""
    with LLVM_LOCK:
        mod = parse(text)
        target.optimise(mod, opt_level)
        return mod, target.emit_object(mod, opt_level)


def compile_parts(texts: list, target, opt_level: int) -> tuple:
    """(optimised module of part 0, [object bytes of every part]): part 0 here, the others in
    forked children at the same time."""
    children = []
    with LLVM_LOCK:            # no other thread of ours is inside LLVM while we fork
        for text in texts[1:]:
            children.append(_spawn(text, target, opt_level))
    start = time.monotonic()
    mod0, obj0 = compile_one(texts[0], target, opt_level)
    # the parts are balanced: a child far slower than this part is stuck, not busy
    patience = max(CHILD_PATIENCE[0], CHILD_PATIENCE[1] * (time.monotonic() - start))
    objects = [obj0]
    for (pid, fd), text in zip(children, texts[1:]):
        data = _collect(pid, fd, patience)
        objects.append(data if data is not None else compile_one(text, target, opt_level)[1])
    return mod0, objects


def _spawn(text: str, target, opt_level: int):
    from . import pool
    read_fd, write_fd = os.pipe()
    pool.POOL.forking_compiler = True         # the child must not restart the pool's threads
    try:
        pid = os.fork()
    finally:
        pool.POOL.forking_compiler = False
    if pid == 0:                              # child: compile, send the object, leave
        code = 1
        try:
            os.close(read_fd)
            _, obj = compile_one(text, target, opt_level)
            payload = struct.pack("<Q", len(obj)) + obj
            view = memoryview(payload)
            while view:
                view = view[os.write(write_fd, view):]
            code = 0
        finally:
            os._exit(code)                    # no atexit handlers, no buffered output
    os.close(write_fd)
    return pid, read_fd


def _collect(pid: int, fd: int, patience: float):
    """The child's object bytes, or None if it failed or did not finish within `patience`
    seconds (it is then killed)."""
    chunks, deadline = [], time.monotonic() + patience
    ok = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                break
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                ok = True
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    if not ok:
        try:
            os.kill(pid, 9)
        except OSError:
            pass
    _, status = os.waitpid(pid, 0)
    data = b"".join(chunks)
    if not ok or not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0 or len(data) < 8:
        return None
    (n,) = struct.unpack("<Q", data[:8])
    return data[8:] if len(data) == 8 + n else None


def pack_objects(objects: list) -> bytes:
    """Several object files as one cache payload (count, lengths, bytes)."""
    head = struct.pack("<I", len(objects)) + b"".join(struct.pack("<Q", len(o)) for o in objects)
    return head + b"".join(objects)


def unpack_objects(payload: bytes) -> list:
    (count,) = struct.unpack("<I", payload[:4])
    lengths = struct.unpack(f"<{count}Q", payload[4:4 + 8 * count])
    out, at = [], 4 + 8 * count
    for n in lengths:
        out.append(payload[at:at + n])
        at += n
    if at != len(payload):
        raise ValueError("object cache payload has a wrong length")
    return out
