"""graphc's thread pool (runtime/pool.py): every item of every region runs exactly once,
whatever the thread count, with concurrent callers (two Python threads calling native code
at once), regions inside regions, and after fork(). Plus the per-kernel profile."""
from __future__ import annotations

import ctypes
import os
import threading

import llvmlite.ir as llir
import numpy as np
import pytest

from ir import Graph, TensorType, emit
from runtime import threads
from runtime.codegen import helpers as h
from runtime.jit import JitModule
from runtime.pool import PARALLEL_SYMBOL
from runtime.target import host_target

_RUN = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32,
                        ctypes.c_int32)


def _module():
    """run(counts, n_items, threads, nested): one region over n_items; each item adds 1 to
    counts[item] (atomically) and, when nested, runs an inner region of 3 items itself."""
    target = host_target()
    m = llir.Module(name="pool_test")
    m.triple, m.data_layout = target.triple, target.data_layout()
    par = llir.Function(m, llir.FunctionType(llir.VoidType(), [h.PTR, h.PTR, h.I32]),
                        PARALLEL_SYMBOL)
    # ctx: [counts ptr, n_items, claim area ptr, nested, threads]
    worker = llir.Function(m, threads.worker_type(), "worker")
    inner = llir.Function(m, threads.worker_type(), "inner")

    def new_claim(b, n_items, n_threads):
        area = b.alloca(llir.ArrayType(h.I64, threads.CLAIM_WORDS))
        area.align = 64
        area.type = h.PTR
        ranges = b.select(b.icmp_signed("<", n_threads, h.i64(threads.MAX_RANGES)), n_threads,
                          h.i64(threads.MAX_RANGES))
        threads.setup_claim(b, area, n_items, ranges)
        return area
    for fn, is_inner in ((worker, False), (inner, True)):
        ctx, participant = fn.args
        b = llir.IRBuilder(fn.append_basic_block("entry"))

        def word(k, b=b, ctx=ctx):
            return b.gep(ctx, [h.i64(k)], source_etype=h.I64)
        counts = b.inttoptr(b.load(word(0), typ=h.I64), h.PTR)
        n_items = b.load(word(1), typ=h.I64)
        claim = b.inttoptr(b.load(word(2), typ=h.I64), h.PTR)
        cursor = threads.new_cursor(b)
        head, body, done = (fn.append_basic_block(x) for x in ("head", "body", "done"))
        b.branch(head)
        b.position_at_end(head)
        item = threads.next_item(b, claim, participant, cursor)
        b.cbranch(b.icmp_signed("<", item, n_items), body, done)
        b.position_at_end(body)
        b.atomic_rmw("add", b.gep(counts, [item], source_etype=h.I64), h.i64(1), "monotonic")
        if not is_inner:
            nested = b.load(word(3), typ=h.I64)
            with b.if_then(b.icmp_signed("!=", nested, h.i64(0))):
                sub = b.alloca(llir.ArrayType(h.I64, 5))
                sub.type = h.PTR
                n_threads = b.load(word(4), typ=h.I64)
                sub_claim = new_claim(b, h.i64(3), n_threads)
                for k, v in enumerate((b.ptrtoint(counts, h.I64), h.i64(3),
                                       b.ptrtoint(sub_claim, h.I64), h.i64(0))):
                    b.store(v, b.gep(sub, [h.i64(k)], source_etype=h.I64))
                b.call(par, [inner, sub, b.trunc(b.load(word(4), typ=h.I64), h.I32)])
        b.branch(head)
        b.position_at_end(done)
        b.ret_void()
    run = llir.Function(m, llir.FunctionType(h.I32, [h.PTR, h.I64, h.I32, h.I32]), "run")
    counts, n_items, n_threads, nested = run.args
    b = llir.IRBuilder(run.append_basic_block("entry"))
    ctx = b.alloca(llir.ArrayType(h.I64, 5))
    ctx.type = h.PTR
    claim = new_claim(b, n_items, b.sext(n_threads, h.I64))
    for k, v in enumerate((b.ptrtoint(counts, h.I64), n_items, b.ptrtoint(claim, h.I64),
                           b.sext(nested, h.I64), b.sext(n_threads, h.I64))):
        b.store(v, b.gep(ctx, [h.i64(k)], source_etype=h.I64))
    b.call(par, [worker, ctx, n_threads])
    b.ret(h.i32(0))
    jit = JitModule(str(m), target, 2)
    return jit, _RUN(jit.address("run"))


@pytest.fixture(scope="module")
def pool_run():
    threads.ensure_pool(2)
    return _module()


@pytest.mark.parametrize("n_threads", [1, 2, 3, 8])
def test_every_item_runs_once(pool_run, n_threads):
    _, run = pool_run
    for n_items in (0, 1, 2, 5, 64, 1000):
        counts = np.zeros(max(n_items, 1), np.int64)
        for _ in range(200):
            run(counts.ctypes.data, n_items, n_threads, 0)
        assert (counts[:n_items] == 200).all(), (n_items, n_threads)


def test_nested_regions_run_serially_inside(pool_run):
    _, run = pool_run
    counts = np.zeros(50, np.int64)
    for _ in range(100):
        run(counts.ctypes.data, 50, 2, 1)
    # each outer item adds 1 to its own slot, and each of them runs items 0..2 once more
    want = np.full(50, 100)
    want[:3] += 100 * 50
    np.testing.assert_array_equal(counts, want)


def test_concurrent_callers_from_python_threads(pool_run):
    _, run = pool_run
    results = [np.zeros(300, np.int64) for _ in range(4)]
    errors = []

    def caller(counts):
        try:
            for _ in range(300):
                run(counts.ctypes.data, 300, 2, 0)
        except Exception as e:            # pragma: no cover - reported below
            errors.append(e)
    ts = [threading.Thread(target=caller, args=(c,)) for c in results]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    for counts in results:
        assert (counts == 300).all()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_regions_work_after_fork(pool_run):
    _, run = pool_run
    counts = np.zeros(100, np.int64)
    run(counts.ctypes.data, 100, 2, 0)
    pid = os.fork()
    if pid == 0:                                    # child: the pool restarts empty
        code = 1
        try:
            c = np.zeros(100, np.int64)
            for _ in range(50):
                run(c.ctypes.data, 100, 2, 0)
            code = 0 if (c == 50).all() else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_thread_count_is_capped_at_the_cpus(monkeypatch):
    monkeypatch.setenv(threads.ENV_VAR, "64")
    assert threads.num_threads() == threads.available_cpus()
    monkeypatch.setenv(threads.ENV_VAR, "1")
    assert threads.num_threads() == 1
    monkeypatch.setenv(threads.ENV_VAR, "nonsense")
    assert threads.num_threads() == threads.available_cpus()


def test_profile_reports_every_kernel_with_its_location():
    g = Graph("profiled")
    x = g.add_input("x", TensorType(("N", 64), "f32"))
    w = g.add_input("w", TensorType((64, 32), "f32"))
    y = emit(g, "matmul", [x, w], {"transpose_a": False, "transpose_b": False})
    g.add_output(emit(g, "exp", [y]), "y")
    from runtime import Executable, compile_graph
    exe = Executable(compile_graph(g, profile=True, cache=False), g)
    xs = np.ones((5, 64), np.float32)
    ws = np.full((64, 32), 0.01, np.float32)
    for _ in range(7):
        np.testing.assert_allclose(exe(xs, ws), np.exp(xs @ ws), rtol=1e-5)
    rep = exe.profile()
    ops = {r.op: r for r in rep.rows}
    assert ops["matmul"].calls == 7 and ops["exp"].calls == 7
    assert all(r.seconds >= 0 for r in rep.rows) and rep.total_seconds > 0
    assert "matmul" in str(rep) and "7 call(s)" in str(rep)
    exe.reset_profile()
    assert exe.profile().calls == 0
    plain = Executable(compile_graph(g, profile=False, cache=False), g)
    with pytest.raises(RuntimeError, match="without profiling"):
        plain.profile()


def test_profile_names_fused_kernels_by_the_users_line(monkeypatch):
    import graphc as gc
    monkeypatch.setenv("GRAPHC_PROFILE", "1")

    @gc.function(gc.spec(("N", 16)))
    def f(x):
        w = gc.param("w", np.full((16, 8), 0.1, np.float32))
        return gc.relu(x @ w + 1.0)
    exe = gc.compile(f.graph, cache=False)
    exe(np.ones((3, 16), np.float32))
    text = str(exe.profile())
    assert "Loc(" not in text
    assert "test_threads_pool.py:" in text and "fused:" in text


_MOVE_AWAY_SCRIPT = r"""
import os, sys
import numpy as np
import graphc
from ir import Graph, TensorType, emit
from runtime import threads
before = {int(t) for t in os.listdir("/proc/self/task")}
threads.ensure_pool(2)
workers = sorted({int(t) for t in os.listdir("/proc/self/task")} - before)
assert workers, "no pool worker started"
g = Graph("mm")
a = g.add_input("a", TensorType((256, 256), "f32"))
g.add_output(emit(g, "matmul", [a, a], {"transpose_a": False, "transpose_b": False}), "c")
exe = graphc.compile(g)
threads.set_threads(exe, 2)
x = np.ones((256, 256), np.float32)
first = min(os.sched_getaffinity(0))
os.sched_setaffinity(0, {first})             # this (the calling) thread
for tid in workers:
    os.sched_setaffinity(tid, {first})       # a worker crowded onto the caller's CPU
for _ in range(200):
    exe(x)
print(sorted(os.sched_getaffinity(workers[0])), first)
"""


def test_a_worker_on_the_callers_cpu_moves_away():
    """A pool worker that joins a region on the CPU its caller opened it on binds itself
    to its other CPUs (the VM's scheduler stacks woken workers on the waker's CPU)."""
    import subprocess
    import sys
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs")
    env = dict(os.environ, GRAPHC_NUM_THREADS="2", GRAPHC_CACHE="0")
    out = subprocess.run([sys.executable, "-c", _MOVE_AWAY_SCRIPT], capture_output=True,
                         text=True, env=env, cwd=os.path.dirname(os.path.dirname(
                             os.path.dirname(os.path.abspath(__file__)))), timeout=120)
    assert out.returncode == 0, out.stderr
    affinity, first = out.stdout.split("] ")
    cpus = [int(c) for c in affinity.strip("[").split(",")]
    assert int(first) not in cpus and cpus, out.stdout
