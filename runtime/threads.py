"""Threads inside the generated code: parallel regions on graphc's own pool (runtime/pool.py).

Python side: how many threads (`num_threads()`: GRAPHC_NUM_THREADS, else the CPUs this
process may run on), starting the pool once, and writing the count into each compiled module.

IR side: `emit_parallel(b, worker, ctx, n_items, work)` runs `void worker(ptr ctx)` on the
calling thread and the pool's workers (`graphc_parallel`). Workers hand out items
dynamically (`next_item`: an atomic counter in the context), so a thread that arrives late
or is slowed by another process simply takes fewer items, and the caller waits only for the
workers that actually joined. A region whose estimated single-thread work is below
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
    set_module_threads(getattr(jit, "threads_address", 0), count)


# -- IR side -------------------------------------------------------------------------------------
def threads_global(module: ir.Module) -> ir.GlobalVariable:
    """The module's thread count (i32, set by the runtime after loading; 1 until then)."""
    g = module.globals.get(NUM_THREADS_GLOBAL)
    if g is None:
        g = ir.GlobalVariable(module, I32, name=NUM_THREADS_GLOBAL)
        g.initializer = ir.Constant(I32, 1)
        g.align = 4
    return g


def worker_type() -> ir.FunctionType:
    return ir.FunctionType(ir.VoidType(), [PTR])


def emit_parallel(b: ir.IRBuilder, worker: ir.Function, ctx: ir.Value, n_items: ir.Value,
                  work_ns: ir.Value, counter: ir.Value) -> None:
    """Run `worker(ctx)` on the team (or just here when the work is small); `counter` (an i64
    slot the workers' `next_item` reads) is reset to 0 first."""
    module = b.module
    b.store(ir.Constant(I64, 0), counter, align=8)
    threads = b.load(threads_global(module), typ=I32, align=4)
    wide = b.and_(b.icmp_signed(">", threads, ir.Constant(I32, 1)),
                  b.and_(b.icmp_signed(">", n_items, ir.Constant(I64, 1)),
                         b.icmp_signed(">=", work_ns, ir.Constant(I64, MIN_PARALLEL_NS))))
    with b.if_else(wide) as (team, alone):
        with team:
            run = _declare(module, pool.PARALLEL_SYMBOL,
                           ir.FunctionType(ir.VoidType(), [PTR, PTR, I32]))
            used = b.select(b.icmp_signed("<", n_items, b.sext(threads, I64)),
                            b.trunc(n_items, I32), threads)
            b.call(run, [worker, ctx, used])
        with alone:
            b.call(worker, [ctx])


def next_item(b: ir.IRBuilder, counter: ir.Value) -> ir.Value:
    """Claim the next work item (an atomic fetch-and-add on the shared counter)."""
    return b.atomic_rmw("add", counter, ir.Constant(I64, 1), "monotonic")
