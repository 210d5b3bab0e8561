"""graphc's thread pool, generated in LLVM IR: persistent workers that never hold a caller up.

Generated modules run a parallel region with

    void graphc_parallel(void (*fn)(void *, int32_t), void *ctx, int32_t threads)

which runs `fn(ctx, 0)` on the calling thread AND `fn(ctx, k)` on up to `threads - 1` pool
workers (k = 1, 2, ... in the order they join). `fn` hands out work items itself (atomic
counters in `ctx`, runtime/threads.py), so every participant takes items until none are
left. The point of this pool (versus libgomp's) is what the caller waits for: only the
workers that actually JOINED the region. A worker that is asleep, or
descheduled because another process holds its core, simply never joins (the caller and the
others do its share); libgomp's end-of-region barrier waited for it, and a 2 us region took
milliseconds on a busy machine.

Protocol (one 64-bit `state` word, so joining and closing are linearisable):

    state = generation << 32 | CLOSED bit | number of workers inside the region

- caller: try-lock the pool (a busy flag; when another thread holds it, e.g. two Python
  threads calling executables at once or a region inside a region, it just runs `fn(ctx)`
  itself: never waits, never oversubscribes); write fn/ctx/limit; store state = (gen+1) << 32
  (open, nobody inside); bump `seq` and FUTEX_WAKE if a worker sleeps; run `fn(ctx)`; set
  CLOSED (atomic or, which returns how many joined); wait until the count drops to 0
  (spin, then sched_yield); release the lock.
- worker: when it sees a new generation that is open and below the limit, it joins with a
  compare-and-swap (count + 1), runs `fn(ctx)`, and leaves (count - 1). A worker that sees a
  closed region just records its generation. Idle workers spin for SPIN_US (reading the cycle
  counter), then sleep in FUTEX_WAIT on `seq` (counted in `sleepers`, so a caller pays for a
  wake-up syscall only when someone sleeps; seq_cst on both sides rules out a lost wake-up).
- back-off: a joined worker still runs the items it claimed; if it is descheduled inside a
  region (another process took its core) the caller must wait for it. When the caller waited
  more than STALL_US after finishing its own share, the pool invites no workers for the
  next BACKOFF_US[0] (doubling while stalls recur, at most BACKOFF_US[1], halving after clean
  regions): on a busy machine regions then run on the caller alone instead of stalling.
- placement: a worker that joins a region on the CPU the caller opened it on binds itself
  to its other allowed CPUs (`_move_away`): in a VM the scheduler may stack a woken worker
  on its waker's CPU and leave it there, and two threads on one CPU are slower than one. A
  caller opening a region on the CPU a worker last ran on yields once, so that a worker
  waiting there for the CPU gets to join and move.

The pool is ONE per process: compiled once, to one object file (loaded into its own MCJIT
engine and kept in the on-disk cache), its `graphc_parallel` registered with
`llvm.add_symbol` so every generated module (fresh or loaded from the object cache) links
against it. Workers are pthreads created from native code, so they never touch the GIL.
After fork() the child's pool is reset and restarted (the parent's workers do not exist
there).
"""
from __future__ import annotations

import ctypes
import os
import threading
import time

import llvmlite.binding as llvm
import llvmlite.ir as ir

from .target import LLVM_LOCK, host_target, initialise_llvm

PARALLEL_SYMBOL = "graphc_parallel"
SPIN_US = 60              # an idle worker spins this long before it sleeps
STALL_US = 300            # a joined worker this late was descheduled: back off
BACKOFF_US = (2_000, 50_000)   # serial period after a stall: from 2 ms, doubling, at most 50
WAIT_SPINS = 4000         # caller: pause-spins before it starts yielding to the scheduler
_SYS_FUTEX = 202          # x86-64 Linux
_SYS_SCHED_SETAFFINITY, _SYS_SCHED_GETAFFINITY = 203, 204
_CPU_WORDS = 16           # cpu_set_t: 1024 CPUs
_FUTEX_WAIT_PRIVATE, _FUTEX_WAKE_PRIVATE = 128, 129
_CLOSED = 1 << 31
_COUNT_MASK = _CLOSED - 1

I1, I32, I64, PTR = ir.IntType(1), ir.IntType(32), ir.IntType(64), ir.PointerType()
VOID = ir.VoidType()


def _c(typ, v):
    return ir.Constant(typ, v)


class _CalleePointer(ir.PointerType):
    """An opaque `ptr` that remembers its function type: llvmlite needs one to emit an
    indirect call, and typed pointers would print as `void (ptr)*`, which LLVM rejects."""

    def __init__(self, fnty: ir.FunctionType):
        super().__init__()
        self.pointee = fnty


class _PoolIR:
    """The pool module's IR (globals + functions), built with llvmlite.ir."""

    def __init__(self, triple: str, data_layout: str):
        m = self.module = ir.Module(name="graphc_pool")
        m.triple, m.data_layout = triple, data_layout
        self.x86 = triple.startswith(("x86_64", "i386", "i686"))

        def glob(name, typ, value=0):
            g = ir.GlobalVariable(m, typ, name=f"graphc_pool.{name}")
            g.initializer = _c(typ, value)
            g.align = 64 if typ is I64 else 4
            return g
        # What a joining worker reads, in ONE cache line: the state word, then the region's
        # function, context and helper limit, and the CPU the caller opened it on (see
        # _move_away). In lines of their own they cost the caller and a joining worker more
        # transfers between cores: ~180 ns each on this machine.
        region_t = ir.LiteralStructType([I64, I64, I64, I32, I32])
        region = ir.GlobalVariable(m, region_t, name="graphc_pool.region")
        region.initializer = ir.Constant(region_t, [_c(I64, _CLOSED), _c(I64, 0), _c(I64, 0),
                                                    _c(I32, 0), _c(I32, -1)])
        region.align = 64
        self.state, self.fn, self.ctx, self.limit, self.caller_cpu = (
            region.gep([_c(I32, 0), _c(I32, k)]) for k in range(5))
        self.seq = glob("seq", I32)
        self.sleepers = glob("sleepers", I32)
        self.busy = glob("busy", I32)
        self.spin_cycles = glob("spin_cycles", I64, 200_000)
        self.stall_cycles = glob("stall_cycles", I64, 1_000_000)
        self.backoff_until = glob("backoff_until", I64)
        self.backoff = glob("backoff", I64)
        self.min_backoff = glob("min_backoff", I64, 5_000_000)
        self.max_backoff = glob("max_backoff", I64, 100_000_000)
        self.workers = glob("workers", I32)
        self.worker_cpu = glob("worker_cpu", I32, -1)   # where a worker last ran (see below)
        self.syscall = ir.Function(m, ir.FunctionType(I64, [I64], var_arg=True), "syscall")
        self.sched_yield = ir.Function(m, ir.FunctionType(I32, []), "sched_yield")
        self.getcpu = ir.Function(m, ir.FunctionType(I32, []), "sched_getcpu")
        self.rdcycle = ir.Function(m, ir.FunctionType(I64, []), "llvm.readcyclecounter")
        self.task_type = ir.FunctionType(VOID, [PTR, I32])   # (ctx, participant)
        self._worker_main()
        self._parallel()
        self._cycles()
        self._start()
        self._reset()

    # helpers ----------------------------------------------------------------------------------
    def pause(self, b):
        if self.x86:
            b.asm(ir.FunctionType(VOID, []), "pause", "~{memory}", [], True)

    def futex(self, b, op, value):
        b.call(self.syscall, [_c(I64, _SYS_FUTEX), self.seq, _c(I32, op), value,
                              _c(PTR, None), _c(PTR, None), _c(I32, 0)])

    def load(self, b, g, typ, order="seq_cst"):
        return b.load_atomic(g, order, 8 if typ is I64 else 4, typ=typ)

    # void *worker_main(void *) ------------------------------------------------------------------
    def _worker_main(self):
        fn = ir.Function(self.module, ir.FunctionType(PTR, [PTR]), "graphc_pool_worker")
        blocks = {n: fn.append_basic_block(n) for n in
                  ("entry", "poll", "fresh", "tryjoin", "joined", "skip", "idle", "sleep")}
        b = ir.IRBuilder(blocks["entry"])
        seen = b.alloca(I64, name="seen")               # last generation handled
        spin_start = b.alloca(I64, name="spin.start")
        allowed = b.alloca(ir.ArrayType(I64, _CPU_WORDS), name="allowed")   # cpu_set_t
        allowed.type = PTR
        away = b.alloca(ir.ArrayType(I64, _CPU_WORDS), name="away")
        away.type = PTR
        got = b.call(self.syscall, [_c(I64, _SYS_SCHED_GETAFFINITY), _c(I64, 0),
                                    _c(I64, _CPU_WORDS * 8), allowed])
        can_move = b.icmp_signed(">", got, _c(I64, 0))
        b.store(b.lshr(self.load(b, self.state, I64), _c(I64, 32)), seen)
        b.store(b.call(self.rdcycle, []), spin_start)
        b.branch(blocks["poll"])

        b.position_at_end(blocks["poll"])
        s = self.load(b, self.state, I64, "acquire")
        gen = b.lshr(s, _c(I64, 32))
        b.cbranch(b.icmp_unsigned("!=", gen, b.load(seen, typ=I64)), blocks["fresh"],
                  blocks["idle"])

        b.position_at_end(blocks["fresh"])                 # a region we have not handled
        count = b.trunc(b.and_(s, _c(I64, _COUNT_MASK)), I32)
        closed = b.icmp_unsigned("!=", b.and_(s, _c(I64, _CLOSED)), _c(I64, 0))
        full = b.icmp_unsigned(">=", count, self.load(b, self.limit, I32, "acquire"))
        b.cbranch(b.or_(closed, full), blocks["skip"], blocks["tryjoin"])

        b.position_at_end(blocks["tryjoin"])
        pair = b.cmpxchg(self.state, s, b.add(s, _c(I64, 1)), "acq_rel", "acquire")
        b.cbranch(b.extract_value(pair, 1), blocks["joined"], blocks["poll"])

        b.position_at_end(blocks["joined"])
        b.store(gen, seen)
        task = b.inttoptr(self.load(b, self.fn, I64, "monotonic"), _CalleePointer(self.task_type))
        ctx = b.inttoptr(self.load(b, self.ctx, I64, "monotonic"), PTR)
        theirs = self.load(b, self.caller_cpu, I32, "monotonic")
        crowded = b.and_(can_move, b.icmp_signed("==", b.call(self.getcpu, []), theirs))
        with b.if_then(crowded, likely=False):
            self._move_away(b, allowed, away, theirs)
        self._note_cpu(b)
        b.call(task, [ctx, b.add(count, _c(I32, 1))])      # participants 1, 2, ...
        b.atomic_rmw("sub", self.state, _c(I64, 1), "release")
        b.store(b.call(self.rdcycle, []), spin_start)
        b.branch(blocks["poll"])

        b.position_at_end(blocks["skip"])                  # closed or full: not ours
        b.store(gen, seen)
        b.branch(blocks["poll"])

        b.position_at_end(blocks["idle"])
        waited = b.sub(b.call(self.rdcycle, []), b.load(spin_start, typ=I64))
        spin_more = b.icmp_unsigned("<", waited, self.load(b, self.spin_cycles, I64, "monotonic"))
        spin = fn.append_basic_block("spin")
        b.cbranch(spin_more, spin, blocks["sleep"])
        b.position_at_end(spin)
        self.pause(b)
        b.branch(blocks["poll"])

        b.position_at_end(blocks["sleep"])
        b.atomic_rmw("add", self.sleepers, _c(I32, 1), "seq_cst")
        seq = self.load(b, self.seq, I32)
        s2 = self.load(b, self.state, I64)
        fresh = b.icmp_unsigned("!=", b.lshr(s2, _c(I64, 32)), b.load(seen, typ=I64))
        nap = fn.append_basic_block("nap")
        woke = fn.append_basic_block("woke")
        b.cbranch(fresh, woke, nap)
        b.position_at_end(nap)
        self.futex(b, _FUTEX_WAIT_PRIVATE, seq)
        b.branch(woke)
        b.position_at_end(woke)
        b.atomic_rmw("sub", self.sleepers, _c(I32, 1), "seq_cst")
        self._note_cpu(b)
        b.store(b.call(self.rdcycle, []), spin_start)
        b.branch(blocks["poll"])
        self.worker_main = fn

    def _note_cpu(self, b):
        """Publish the CPU this worker runs on (written only when it changed, so the line
        stays in the caller's cache): a caller that opens a region on that CPU yields once,
        since a worker stuck behind it there could not run to join and move away."""
        mine = b.call(self.getcpu, [])
        with b.if_then(b.icmp_signed("!=", mine, self.load(b, self.worker_cpu, I32,
                                                              "monotonic"))):
            b.store_atomic(mine, self.worker_cpu, "monotonic", 4)

    def _move_away(self, b, allowed, mask, cpu):
        """Bind the calling worker to its allowed CPUs but `cpu` (the region's caller's),
        when any is left. Why: in this machine's VM a woken thread lands on its waker's CPU
        (an idle vCPU looks preempted to the guest's scheduler, which then skips it), so a
        worker could share the caller's CPU for whole seconds and every two-thread region ran
        at one-thread speed or slower (W2 batch 1 19.6 us instead of 9.5 after another
        library had run in the process). The kernel moves the thread before the syscall
        returns; a later collision moves it again, from its original set (`allowed`, read
        when the worker started; `mask` is scratch)."""
        inside = b.and_(b.icmp_signed(">=", cpu, _c(I32, 0)),
                        b.icmp_signed("<", cpu, _c(I32, _CPU_WORDS * 64)))
        c64 = b.zext(b.select(inside, cpu, _c(I32, 0)), I64)
        word_of_cpu = b.lshr(c64, _c(I64, 6))
        clear = b.select(inside, b.not_(b.shl(_c(I64, 1), b.and_(c64, _c(I64, 63)))),
                         _c(I64, -1))
        left = _c(I64, 0)
        for w in range(_CPU_WORDS):
            word = b.load(b.gep(allowed, [_c(I64, w)], source_etype=I64), typ=I64)
            word = b.and_(word, b.select(b.icmp_unsigned("==", word_of_cpu, _c(I64, w)),
                                         clear, _c(I64, -1)))
            b.store(word, b.gep(mask, [_c(I64, w)], source_etype=I64))
            left = b.or_(left, word)
        with b.if_then(b.icmp_unsigned("!=", left, _c(I64, 0))):
            b.call(self.syscall, [_c(I64, _SYS_SCHED_SETAFFINITY), _c(I64, 0),
                                  _c(I64, _CPU_WORDS * 8), mask])

    # void graphc_parallel(fn, ctx, threads) -----------------------------------------------------
    def _parallel(self):
        fn = ir.Function(self.module, ir.FunctionType(
            VOID, [_CalleePointer(self.task_type), PTR, I32]), PARALLEL_SYMBOL)
        task, ctx, threads = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        alone = fn.append_basic_block("alone")
        team = fn.append_basic_block("team")
        helpers = b.sub(threads, _c(I32, 1))
        workers = self.load(b, self.workers, I32, "monotonic")
        helpers = b.select(b.icmp_signed("<", helpers, workers), helpers, workers)
        want = b.icmp_signed(">", helpers, _c(I32, 0))
        now = b.call(self.rdcycle, [])
        calm = b.icmp_unsigned(">=", now, self.load(b, self.backoff_until, I64, "monotonic"))
        lock = fn.append_basic_block("lock")
        b.cbranch(b.and_(want, calm), lock, alone)
        b.position_at_end(lock)
        got = b.extract_value(b.cmpxchg(self.busy, _c(I32, 0), _c(I32, 1), "acquire",
                                        "monotonic"), 1)
        b.cbranch(got, team, alone)

        b.position_at_end(alone)
        b.call(task, [ctx, _c(I32, 0)])
        b.ret_void()

        b.position_at_end(team)
        b.store_atomic(b.ptrtoint(task, I64), self.fn, "monotonic", 8)
        b.store_atomic(b.ptrtoint(ctx, I64), self.ctx, "monotonic", 8)
        b.store_atomic(helpers, self.limit, "monotonic", 4)
        here = b.call(self.getcpu, [])
        b.store_atomic(here, self.caller_cpu, "monotonic", 4)
        old = self.load(b, self.state, I64, "monotonic")
        gen = b.add(b.lshr(old, _c(I64, 32)), _c(I64, 1))
        b.store_atomic(b.shl(gen, _c(I64, 32)), self.state, "seq_cst", 8)   # open, 0 inside
        b.atomic_rmw("add", self.seq, _c(I32, 1), "seq_cst")
        sleeping = self.load(b, self.sleepers, I32)
        wake = fn.append_basic_block("wake")
        work = fn.append_basic_block("work")
        b.cbranch(b.icmp_signed(">", sleeping, _c(I32, 0)), wake, work)
        b.position_at_end(wake)
        self.futex(b, _FUTEX_WAKE_PRIVATE, helpers)
        b.branch(work)

        b.position_at_end(work)
        # a worker last seen on this CPU may be waiting for it: let it run, join and move
        with b.if_then(b.icmp_signed("==", here, self.load(b, self.worker_cpu, I32,
                                                             "monotonic")), likely=False):
            b.call(self.sched_yield, [])
        b.call(task, [ctx, _c(I32, 0)])                             # the caller is 0
        b.atomic_rmw("or", self.state, _c(I64, _CLOSED), "seq_cst")      # nobody joins now
        own_done = b.call(self.rdcycle, [])
        spins = b.alloca(I32, name="spins")
        b.store(_c(I32, 0), spins)
        poll = fn.append_basic_block("drain")
        done = fn.append_basic_block("done")
        b.branch(poll)
        b.position_at_end(poll)
        inside = b.and_(self.load(b, self.state, I64, "acquire"), _c(I64, _COUNT_MASK))
        waitb = fn.append_basic_block("drain.wait")
        b.cbranch(b.icmp_unsigned("==", inside, _c(I64, 0)), done, waitb)
        b.position_at_end(waitb)
        n = b.load(spins, typ=I32)
        b.store(b.add(n, _c(I32, 1)), spins)
        yield_ = fn.append_basic_block("drain.yield")
        pause = fn.append_basic_block("drain.pause")
        b.cbranch(b.icmp_signed(">", n, _c(I32, WAIT_SPINS)), yield_, pause)
        b.position_at_end(yield_)
        b.call(self.sched_yield, [])
        b.branch(poll)
        b.position_at_end(pause)
        self.pause(b)
        b.branch(poll)

        b.position_at_end(done)
        # a worker that finished long after us was descheduled inside the region (another
        # process holds its core): invite no workers for a while (doubling while it recurs)
        drained = b.call(self.rdcycle, [])
        stalled = b.icmp_unsigned(">", b.sub(drained, own_done),
                                  self.load(b, self.stall_cycles, I64, "monotonic"))
        penalty = self.load(b, self.backoff, I64, "monotonic")
        longer = b.shl(penalty, _c(I64, 1))
        lo = self.load(b, self.min_backoff, I64, "monotonic")
        hi = self.load(b, self.max_backoff, I64, "monotonic")
        longer = b.select(b.icmp_unsigned("<", longer, lo), lo, longer)
        longer = b.select(b.icmp_unsigned(">", longer, hi), hi, longer)
        penalty = b.select(stalled, longer, b.lshr(penalty, _c(I64, 1)))
        b.store_atomic(penalty, self.backoff, "monotonic", 8)
        until = b.select(stalled, b.add(drained, penalty),
                         self.load(b, self.backoff_until, I64, "monotonic"))
        b.store_atomic(until, self.backoff_until, "monotonic", 8)
        b.store_atomic(_c(I32, 0), self.busy, "release", 4)
        b.ret_void()

    def _cycles(self):
        fn = ir.Function(self.module, ir.FunctionType(I64, []), "graphc_pool_cycles")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        b.ret(b.call(self.rdcycle, []))

    # i32 graphc_pool_start(i32 workers): start workers up to that many; returns how many run --
    def _start(self):
        create = ir.Function(self.module, ir.FunctionType(I32, [PTR, PTR, PTR, PTR]),
                             "pthread_create")
        detach = ir.Function(self.module, ir.FunctionType(I32, [I64]), "pthread_detach")
        fn = ir.Function(self.module, ir.FunctionType(I32, [I32]), "graphc_pool_start")
        (want,) = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        tid = b.alloca(I64, name="tid")
        head = fn.append_basic_block("head")
        body = fn.append_basic_block("body")
        ok = fn.append_basic_block("ok")
        out = fn.append_basic_block("out")
        b.branch(head)
        b.position_at_end(head)
        have = self.load(b, self.workers, I32)
        b.cbranch(b.icmp_signed("<", have, want), body, out)
        b.position_at_end(body)
        rc = b.call(create, [tid, _c(PTR, None), self.worker_main, _c(PTR, None)])
        b.cbranch(b.icmp_signed("==", rc, _c(I32, 0)), ok, out)
        b.position_at_end(ok)
        b.call(detach, [b.load(tid, typ=I64)])
        b.atomic_rmw("add", self.workers, _c(I32, 1), "seq_cst")
        b.branch(head)
        b.position_at_end(out)
        b.ret(self.load(b, self.workers, I32))

    # void graphc_pool_reset(i64 spin, i64 stall, i64 min_backoff, i64 max_backoff): a fresh,
    # empty pool (at load; after fork); times in cycle-counter ticks
    def _reset(self):
        fn = ir.Function(self.module, ir.FunctionType(VOID, [I64] * 4), "graphc_pool_reset")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        for g, typ, v in ((self.state, I64, _CLOSED), (self.seq, I32, 0),
                          (self.sleepers, I32, 0), (self.busy, I32, 0), (self.workers, I32, 0),
                          (self.backoff, I64, 0), (self.backoff_until, I64, 0),
                          (self.worker_cpu, I32, -1)):
            b.store_atomic(_c(typ, v), g, "seq_cst", 8 if typ is I64 else 4)
        b.store_atomic(fn.args[0], self.spin_cycles, "seq_cst", 8)
        b.store_atomic(fn.args[1], self.stall_cycles, "seq_cst", 8)
        b.store_atomic(fn.args[2], self.min_backoff, "seq_cst", 8)
        b.store_atomic(fn.args[3], self.max_backoff, "seq_cst", 8)
        b.ret_void()


class _Pool:
    def __init__(self):
        self.lock = threading.Lock()
        self.engine = None
        self.start_fn = self.reset_fn = None
        self.parallel_address = 0
        self.workers = 0
        self.forking_compiler = False

    def ensure(self, workers: int) -> int:
        """Compile the pool (once) and make sure `workers` workers run; returns how many do."""
        with self.lock:
            if self.engine is None:
                self._build()
            if workers > self.workers:
                self.workers = int(self.start_fn(int(workers)))
            return self.workers

    def _build(self) -> None:
        initialise_llvm()
        target = host_target()
        with LLVM_LOCK:
            engine = _load_cached(target)
            if engine is None:
                # one code generation: the object file both runs here and goes to the
                # on-disk cache (an engine made from the module would generate it again)
                mod = llvm.parse_assembly(str(_PoolIR(target.triple,
                                                      target.data_layout()).module))
                mod.verify()
                obj = target.emit_object(mod, 2)
                engine = _engine_of(obj, target)
                if engine is None:
                    raise RuntimeError("the thread pool's object file does not load")
                _store_cached(target, obj)
            for name in ("syscall", "sched_yield", "sched_getcpu", "pthread_create",
                         "pthread_detach"):
                if not llvm.address_of_symbol(name):
                    raise RuntimeError(f"the thread pool needs {name} from libc")
            self.parallel_address = engine.get_function_address(PARALLEL_SYMBOL)
            start = engine.get_function_address("graphc_pool_start")
            reset = engine.get_function_address("graphc_pool_reset")
            llvm.add_symbol(PARALLEL_SYMBOL, self.parallel_address)
        self.engine = engine
        self.start_fn = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_int32)(start)
        self.reset_fn = ctypes.CFUNCTYPE(None, *[ctypes.c_int64] * 4)(reset)
        self._reset()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)

    def _reset(self) -> None:
        rate = ticks_per_us()
        self.reset_fn(int(rate * SPIN_US), int(rate * STALL_US), int(rate * BACKOFF_US[0]),
                      int(rate * BACKOFF_US[1]))

    def _after_fork(self) -> None:
        # the parent's workers do not exist here: start from an empty pool (refilled now,
        # except in a compiler child of parallel_compile.py, which only runs LLVM and exits)
        self.lock = threading.Lock()
        wanted, self.workers = self.workers, 0
        self._reset()
        if wanted and not self.forking_compiler:
            self.workers = int(self.start_fn(wanted))


def _cache_key(target):
    """The pool's entry in the on-disk cache: its IR is a function of this module's code
    (in objcache's fingerprint of the runtime's sources) and of the target, so a load needs
    no IR (building and printing it takes ~5 ms). None without the cache, or without the
    sources to fingerprint."""
    import hashlib
    from . import objcache
    if not objcache.enabled():
        return None
    try:
        fingerprint = objcache.codegen_fingerprint()
    except OSError:
        return None
    return hashlib.sha256(repr(("graphc thread pool", fingerprint,
                                target.key)).encode()).hexdigest()


def _load_cached(target):
    """An engine holding the pool's code from the on-disk object cache (objcache.py), or
    None (the pool is then compiled: 25-45 ms of every process start otherwise)."""
    from . import objcache
    key = _cache_key(target)
    obj = objcache.load(key) if key is not None else None
    return None if obj is None else _engine_of(obj, target)


def _engine_of(obj: bytes, target):
    """An MCJIT engine holding the pool's object file, or None if LLVM cannot load it."""
    try:
        empty = llvm.parse_assembly(f'target triple = "{target.triple}"')
        engine = llvm.create_mcjit_compiler(empty, target.create_target_machine(2))
        engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        engine.finalize_object()
        if not engine.get_function_address(PARALLEL_SYMBOL):
            return None
        return engine
    except RuntimeError:
        return None


def _store_cached(target, obj: bytes) -> None:
    from . import objcache
    key = _cache_key(target)
    if key is not None:
        objcache.store(key, obj)


def ticks_per_us() -> float:
    """The rate of the cycle counter (`llvm.readcyclecounter`: the TSC on x86), measured
    once against perf_counter."""
    global _TICKS_PER_US
    if _TICKS_PER_US is None:
        fn = _rdtsc()
        best = None
        for _ in range(2):
            c0, t0 = fn(), time.perf_counter()
            time.sleep(0.0005)
            c1, t1 = fn(), time.perf_counter()
            rate = (c1 - c0) / ((t1 - t0) * 1e6)
            best = rate if best is None else max(best, rate)
        _TICKS_PER_US = best if best and best > 0 else 3000.0
    return _TICKS_PER_US


_TICKS_PER_US = None
_RDTSC = None


def _rdtsc():
    """A ctypes function reading the cycle counter (the pool module's `graphc_pool_cycles`;
    the pool is built first if needed: its timing constants are set only at reset)."""
    global _RDTSC
    if _RDTSC is None:
        if POOL.engine is None:
            POOL.ensure(0)
        addr = POOL.engine.get_function_address("graphc_pool_cycles")
        _RDTSC = ctypes.CFUNCTYPE(ctypes.c_int64)(addr)
    return _RDTSC


POOL = _Pool()
