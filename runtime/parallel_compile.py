"""LLVM work for one graph split over the CPUs: module parts compiled in forked processes.

llvmlite serialises every call into LLVM behind one process-wide lock, so a module's
optimisation and code generation use one core however many there are. A big graph's module
is therefore built as PARTS (module_builder.build_modules: the entry function and some
kernels in part 0, the other kernels, with external linkage, in the others), and compiled
by this process and by children made with fork() at the same time. The parts are a queue
(a pipe holding their indices, biggest first): each process takes the next part when it is
done with one, so however unequal the parts' LLVM costs are (a gemm worker of 200
instructions can cost more than a fused kernel of 1400), the processes finish close
together. A child sends back the object files of the parts it took through a pipe. All
objects are then loaded into one MCJIT engine, which links the calls between the parts.
A part may be given as an llvmlite.ir module: the process compiling it prints its IR text
(printing is a good part of a compile's Python time).

A child that fails, or is still busy well after this process ran out of parts
(CHILD_PATIENCE), is killed and the parts it took are compiled here instead: splitting can
only change how long a compile takes, never its result. Forking is done only while no other
Python thread runs (its locks would stay held in the child); otherwise, and with
GRAPHC_PARALLEL_COMPILE=0, every module is one part.
"""
from __future__ import annotations

import fcntl
import os
import select
import struct
import termios
import threading
import time

import llvmlite.binding as llvm

from ir import CompileError

from . import threads
from .target import LLVM_LOCK

ENV_VAR = "GRAPHC_PARALLEL_COMPILE"
MIN_KERNELS = 8                  # fewer kernels: one part (a fork is not free)
MAX_PROCESSES = 2                # this process and one child
PARTS_PER_PROCESS = 4            # more parts than processes: the queue evens out the work
KERNELS_PER_PART = 2             # ... but not parts of a single kernel
CHILD_PATIENCE = (5.0, 3.0)      # wait for a child at least 5 s, else 3x our own LLVM time


def processes() -> int:
    return max(1, min(threads.available_cpus(), MAX_PROCESSES))


def parts_for(n_kernels: int) -> int:
    """How many parts to build a module of `n_kernels` kernels in (1 unless forking is safe
    and worth it)."""
    if os.environ.get(ENV_VAR, "1").strip() in ("0", "false", "no", "off"):
        return 1
    if not hasattr(os, "fork") or n_kernels < MIN_KERNELS or not _only_our_threads():
        return 1
    procs = processes()
    if procs < 2:
        return 1
    return max(procs, min(PARTS_PER_PROCESS * procs, n_kernels // KERNELS_PER_PART))


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


def text_of(part) -> str:
    """The IR text of a part (given as text or as an llvmlite.ir module)."""
    return part if isinstance(part, str) else str(part)


def compile_one(text: str, target, opt_level: int):
    """(optimised module, object bytes) of one part, in this process."""
    with LLVM_LOCK:
        mod = parse(text)
        target.optimise(mod, opt_level)
        return mod, target.emit_object(mod, opt_level)


def _cost(part) -> int:
    """Estimated LLVM time of a part (module_builder.llvm_cost; text: its length)."""
    if isinstance(part, str):
        return len(part)
    return getattr(part, "graphc_cost", 0)


def compile_parts(parts: list, target, opt_level: int, meanwhile=None,
                  meanwhile_cost: int = 0, meanwhile_in_child=None) -> list:
    """[object bytes of every part], compiled by this process and forked children taking
    parts from one queue. `meanwhile()`, if given, is work of ours that needs no part's
    code (building the thread pool). It goes in its place in the queue's costliest-first
    order, as if it were a part of cost `meanwhile_cost` (module_builder.llvm_cost units):
    - with `meanwhile_in_child`, it is an item of the queue any process may take; a child
      that takes it runs `meanwhile_in_child()` (work that makes ours cheap: the pool's
      build stores its object in the on-disk cache), and we run `meanwhile()` once the
      children are done;
    - else only this process may take it, at the latest before the last part
      (_meanwhile_now); with no cost, or parts given as text (no costs), once no part is
      left to take (it then overlaps the children's last parts)."""
    if not meanwhile_cost or meanwhile is None or any(isinstance(p, str) for p in parts):
        meanwhile_cost, meanwhile_in_child = 0, None
    costs = [_cost(p) for p in parts]
    shared = meanwhile_in_child is not None
    if shared:                        # the meanwhile work is item len(parts) of the queue
        costs.append(meanwhile_cost)
    order = sorted(range(len(costs)), key=lambda i: -costs[i])
    queue_r, queue_w = os.pipe()
    os.write(queue_w, bytes(order))
    os.close(queue_w)                 # an empty queue then reads as end of file
    children = []
    try:
        with LLVM_LOCK:               # no other thread of ours is inside LLVM while we fork
            for _ in range(processes() - 1):
                children.append(_spawn(parts, queue_r, target, opt_level, meanwhile_in_child))
        start = time.monotonic()
        objects = {}
        while True:
            if not shared and meanwhile is not None and \
                    _meanwhile_now(queue_r, order, costs, meanwhile_cost):
                meanwhile()
                meanwhile = None
            if (i := _take(queue_r)) is None:
                break
            if i == len(parts):
                meanwhile()
                meanwhile = None
                continue
            objects[i] = compile_one(text_of(parts[i]), target, opt_level)[1]
        busy = time.monotonic() - start
        if meanwhile is not None and not (shared and children):
            meanwhile()               # (else a child took it: after the children)
            meanwhile = None
    except BaseException:
        for pid, fd in children:      # our error, not theirs: do not leave them running
            _collect(pid, fd, 0.0)
        raise
    finally:
        os.close(queue_r)
    # a child still busy long after we ran out of parts is stuck, not busy
    patience = max(CHILD_PATIENCE[0], CHILD_PATIENCE[1] * busy)
    for pid, fd in children:
        objects.update(_collect(pid, fd, patience))
    if meanwhile is not None:
        meanwhile()
    for i in range(len(parts)):       # parts a failed or stuck child took
        if i not in objects:
            objects[i] = compile_one(text_of(parts[i]), target, opt_level)[1]
    return [objects[i] for i in range(len(parts))]


def _meanwhile_now(queue_fd: int, order: list, costs: list, cost: int) -> bool:
    """Whether the meanwhile work (of `cost`) goes before the part the queue hands out next:
    when that part is cheaper (costliest-first order), or is the last one (then a child that
    frees up while we do it takes that part, rather than waiting for us to do both), or the
    queue is empty. With cost 0, only the last. (The queue holds the last parts of `order`,
    as many as it has bytes left.)"""
    left = struct.unpack("i", fcntl.ioctl(queue_fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    if left == 0:
        return True
    return cost > 0 and (left == 1 or costs[order[len(order) - left]] < cost)


def _take(queue_fd: int):
    """The index of the next part nobody has taken yet, or None (one byte per part: reads
    of one byte from a pipe are atomic, so no two processes get the same part)."""
    got = os.read(queue_fd, 1)
    return got[0] if got else None


def _spawn(parts: list, queue_fd: int, target, opt_level: int, meanwhile=None):
    from . import pool
    read_fd, write_fd = os.pipe()
    pool.POOL.forking_compiler = True         # the child must not restart the pool's threads
    try:
        pid = os.fork()
    finally:
        pool.POOL.forking_compiler = False
    if pid == 0:                              # child: compile parts, send the objects, leave
        code = 1
        try:
            os.close(read_fd)
            # kept until the queue is empty: a write could block until the parent reads,
            # which it does only when it runs out of parts itself
            done = []
            while (i := _take(queue_fd)) is not None:
                if i == len(parts):           # the parent's meanwhile work, shared
                    try:
                        meanwhile()
                    except Exception:         # the parent does all of it then
                        pass
                    continue
                done.append((i, compile_one(text_of(parts[i]), target, opt_level)[1]))
            payload = b"".join(struct.pack("<IQ", i, len(obj)) + obj for i, obj in done)
            view = memoryview(struct.pack("<Q", len(payload)) + payload)
            while view:
                view = view[os.write(write_fd, view):]
            code = 0
        finally:
            os._exit(code)                    # no atexit handlers, no buffered output
    os.close(write_fd)
    return pid, read_fd


def _collect(pid: int, fd: int, patience: float) -> dict:
    """{part index: object bytes} the child compiled; empty if it failed or did not finish
    within `patience` seconds (it is then killed)."""
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
        return {}
    (n,) = struct.unpack("<Q", data[:8])
    if len(data) != 8 + n:
        return {}
    out, at = {}, 8
    while at < len(data):
        i, size = struct.unpack("<IQ", data[at:at + 12])
        out[i] = data[at + 12:at + 12 + size]
        at += 12 + size
    return out if at == len(data) else {}


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
