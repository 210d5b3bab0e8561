"""Threads inside the generated code: parallel regions on graphc's own pool (runtime/pool.py).

Python side: how many threads (`num_threads()`: GRAPHC_NUM_THREADS, else the CPUs this
process may run on), starting the pool once, and writing the count into each compiled module.

IR side: `emit_parallel(b, worker, block, n_items, work)` runs `void worker(ptr block,
i32 participant)` on the calling thread and the pool's workers (`graphc_parallel`); the
block (`region_block`) holds the claim area and the worker's context words.
Workers claim items dynamically (`next_item`: atomic counters in a claim area, one home
range per thread, then stealing), so a thread that arrives late or is slowed by another
process simply takes fewer items, and the caller waits only for the workers that actually
joined. A region whose estimated single-thread work is below
`MIN_PARALLEL_NS` (or that has one item, or when the thread count is 1) calls the worker
directly: no pool involved. The count is capped at the CPUs available, so regions never
oversubscribe the machine.
"""
from __future__ import annotations

import ctypes
import os

import llvmlite.ir as ir

from . import pool

I32, I64, PTR = ir.IntType(32), ir.IntType(64), ir.PointerType()


def _declare(module: ir.Module, name: str, fnty: ir.FunctionType) -> ir.Function:
    found = module.globals.get(name)
    return found if found is not None else ir.Function(module, fnty, name=name)


NUM_THREADS_GLOBAL = "graphc_num_threads"
MIN_PARALLEL_NS = 20_000          # below ~20 us of single-thread work a region stays serial
ENV_VAR = "GRAPHC_NUM_THREADS"


def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def num_threads() -> int:
    """Threads a parallel region uses: GRAPHC_NUM_THREADS when set (>= 1), else the CPUs
    this process may run on. Never more than those CPUs (no oversubscription)."""
    cpus = available_cpus()
    text = os.environ.get(ENV_VAR, "").strip()
    if text:
        try:
            n = int(text)
        except ValueError:
            n = 0
        if n >= 1:
            return min(n, cpus)
    return cpus


def ensure_pool(threads: int = None) -> int:
    """Start the process's thread pool (once) with enough workers for `threads` threads
    (default `num_threads()`); its `graphc_parallel` then links into every module. Returns
    the number of workers."""
    return pool.POOL.ensure(max(0, (threads or num_threads()) - 1))


def set_module_threads(address: int, count: int = None) -> None:
    """Write the thread count into a loaded module's `graphc_num_threads` global."""
    if address:
        count = min(count or num_threads(), available_cpus())
        ensure_pool(count)
        ctypes.c_int32.from_address(address).value = count


def set_threads(executable, count=None) -> None:
    """Set the threads of one compiled module (an Executable, CompiledGraph or JitModule);
    None: back to `num_threads()`."""
    jit = getattr(executable, "compiled", executable)
    jit = getattr(jit, "jit", jit)
    if hasattr(jit, "set_thread_count"):       # a loaded bundle (runtime/bundle/reader.py)
        jit.set_thread_count(count)
        return
    set_module_threads(getattr(jit, "threads_address", 0), count)


# -- IR side -------------------------------------------------------------------------------------
def threads_global(module: ir.Module) -> ir.GlobalVariable:
    """The module's thread count (i32, set by the runtime after loading; 1 until then). In
    the parts of a module built in parts other than the first (`module.graphc_part` > 0)
    only a declaration: the first part defines it."""
    g = module.globals.get(NUM_THREADS_GLOBAL)
    if g is None:
        g = ir.GlobalVariable(module, I32, name=NUM_THREADS_GLOBAL)
        if not getattr(module, "graphc_part", 0):
            g.initializer = ir.Constant(I32, 1)
        g.align = 4
    return g


MAX_RANGES = 8                    # home ranges of a region (one per participating thread)
CLAIM_WORDS = 8 * (MAX_RANGES + 1)  # [0] ranges, [1] items; range r's counter at 8*(r+1)


def worker_type() -> ir.FunctionType:
    """void worker(ptr ctx, i32 participant): participant 0 is the calling thread, pool
    workers are 1, 2, ... in the order they joined the region."""
    return ir.FunctionType(ir.VoidType(), [PTR, I32])


def region_block(kb, words: int, name: str) -> ir.Value:
    """A region's block in the kernel's frame (64-byte aligned): the claim area
    (CLAIM_WORDS i64) and then `words` i64 of worker context (`context_words`). The block
    is what the workers receive: they find both at fixed offsets, so a joining worker's
    loads of its claim counter and of its context do not wait on each other (each is a
    cache line coming from the calling core: ~180 ns here, one after the other otherwise)."""
    block = kb.local(ir.ArrayType(I64, CLAIM_WORDS + words), name)
    block.align = 64
    block.type = PTR                           # opaque: geps give element pointers
    return block


def context_words(b: ir.IRBuilder, block: ir.Value) -> ir.Value:
    """Pointer to the context words of a region block (after its claim area)."""
    return b.gep(block, [ir.Constant(I64, CLAIM_WORDS)], inbounds=True, source_etype=I64)


def _word(b, claim, k):
    return b.gep(claim, [ir.Constant(I64, k)], inbounds=True, source_etype=I64)


def emit_parallel(b: ir.IRBuilder, worker: ir.Function, block: ir.Value, n_items: ir.Value,
                  work_ns: ir.Value) -> None:
    """Run `worker(block, participant)` on the team (or just here when the work is small);
    `block` is a `region_block` whose context words the caller has filled.

    Items [0, n_items) are split into one contiguous HOME range per thread (the block's
    claim area, which the workers' `next_item` reads): participant p takes items from range
    p first, then from the others. Each thread thus tends to get the same items call after
    call (their data stays in its own caches: a batch-1 layer's weights stay in each core's
    L2), claims touch a counter no other thread is using until it steals, and a participant
    that arrives late or never simply has its range taken by the others."""
    module = b.module
    threads = b.load(threads_global(module), typ=I32, align=4)
    wide = b.and_(b.icmp_signed(">", threads, ir.Constant(I32, 1)),
                  b.and_(b.icmp_signed(">", n_items, ir.Constant(I64, 1)),
                         b.icmp_signed(">=", work_ns, ir.Constant(I64, MIN_PARALLEL_NS))))
    t64 = b.sext(threads, I64)
    used = b.select(b.icmp_signed("<", n_items, t64), n_items, t64)
    used = b.select(b.icmp_signed("<", used, ir.Constant(I64, MAX_RANGES)), used,
                    ir.Constant(I64, MAX_RANGES))
    ranges = b.select(wide, used, ir.Constant(I64, 1))
    setup_claim(b, block, n_items, ranges)
    with b.if_else(wide) as (team, alone):
        with team:
            run = _declare(module, pool.PARALLEL_SYMBOL,
                           ir.FunctionType(ir.VoidType(), [PTR, PTR, I32]))
            b.call(run, [worker, block, b.trunc(ranges, I32)])
        with alone:
            b.call(worker, [block, ir.Constant(I32, 0)])


def setup_claim(b: ir.IRBuilder, claim: ir.Value, n_items: ir.Value, ranges: ir.Value) -> None:
    """Split [0, n_items) into `ranges` (1..MAX_RANGES, an i64) home ranges in `claim`."""
    b.store(ranges, _word(b, claim, 0), align=8)
    b.store(n_items, _word(b, claim, 1), align=8)
    for r in range(MAX_RANGES):
        # range r starts at r*n/ranges (words of ranges past `ranges` are never read)
        start = b.sdiv(b.mul(ir.Constant(I64, r), n_items), ranges)
        b.store(start, _word(b, claim, 8 * (r + 1)), align=8)


def new_cursor(b: ir.IRBuilder, alloca_builder: ir.IRBuilder = None) -> ir.Value:
    """A worker's claim cursor (how many ranges past its home it has moved), at 0."""
    slot = (alloca_builder or b).alloca(I64, name="claim.cursor")
    b.store(ir.Constant(I64, 0), slot, align=8)
    return slot


def next_item(b: ir.IRBuilder, claim: ir.Value, participant: ir.Value,
              cursor: ir.Value) -> ir.Value:
    """The next item for `participant` (an i64 in [0, n_items)), or n_items when every
    range is exhausted: an atomic fetch-and-add on the counter of range (p + cursor) mod
    ranges, moving the cursor on while that range is used up."""
    fn = b.function
    ranges = b.load(_word(b, claim, 0), typ=I64, align=8)
    n = b.load(_word(b, claim, 1), typ=I64, align=8)
    p = b.zext(participant, I64)
    head = fn.append_basic_block("claim")
    try_r = fn.append_basic_block("claim.try")
    moved = fn.append_basic_block("claim.next")
    done = fn.append_basic_block("claim.done")
    b.branch(head)
    b.position_at_end(head)
    j = b.load(cursor, typ=I64, align=8)
    b.cbranch(b.icmp_signed("<", j, ranges), try_r, done)
    b.position_at_end(try_r)
    r = b.urem(b.add(p, j), ranges)
    end = b.sdiv(b.mul(b.add(r, ir.Constant(I64, 1)), n), ranges)
    counter = b.gep(claim, [b.mul(b.add(r, ir.Constant(I64, 1)), ir.Constant(I64, 8))],
                    inbounds=True, source_etype=I64)
    item = b.atomic_rmw("add", counter, ir.Constant(I64, 1), "monotonic")
    got = b.icmp_signed("<", item, end)
    b.cbranch(got, done, moved)
    b.position_at_end(moved)
    b.store(b.add(j, ir.Constant(I64, 1)), cursor, align=8)
    b.branch(head)
    b.position_at_end(done)
    result = b.phi(I64, name="item")
    result.add_incoming(n, head)
    result.add_incoming(item, try_r)
    return result
