"""Parallel loops inside a kernel: `parallel_for` outlines a loop body into a pool worker.

    def body(wkb, item, args):          # wkb: a KernelBuilder for the worker function
        ...emit the work of `item` with wkb.b, wkb.inputs / wkb.outputs, wkb.dim(...)...
    parallel_for(kb, n_items, work_ns, body, args=[chunk, count])

The kernel's arguments (errinfo, symbol values, buffer pointers) and the extra i64 values
`args` are written into a context array on the kernel's stack (the context words of a
`threads.region_block`, after the region's claim area); the worker function reads
them back, so inside it `wkb.inputs[k]` / `wkb.outputs[k]` are the same buffers as the
kernel's (same dtype, shape, alignment; `wkb.remap(buf)` maps any of the kernel's Buffers to
the worker's), `wkb.dim(d)` evaluates dims from the same symbol values, and `args` arrive as
i64 values. Items are claimed dynamically (home ranges, then stealing: runtime/threads.py),
on the caller and on the pool's workers; below `threads.MIN_PARALLEL_NS` of estimated work
(`work_ns`, an i64 value) the caller runs every item itself, with no pool involved.

While `body` runs, the PARENT kernel builder is redirected into the worker too (its builder,
dims, buffers and symbol values are the worker's): code written against the parent, such as
a fused epilogue closure (epilogue.py) built before the loop was outlined, then emits into
the worker unchanged. This works because the worker names its copies of the kernel's
arguments exactly as the kernel does (`in0`, `sym.N`, ...), so a reference to a kernel
argument resolves, in the IR text, to the worker's copy; any other value of the kernel
function that leaks into the worker is caught when the worker is finished (CompileError,
never wrong code).

A worker cannot report errors (it returns nothing): `wkb.check` raises a CompileError, so
ops that check at run time (gather) keep their loops serial.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Sequence

import llvmlite.ir as ir

from ir import CompileError

from .. import threads
from . import helpers as h
from .kernel import Buffer, KernelBuilder

CTX_ITEMS, CTX_ERRINFO = 0, 1              # context words (after the block's claim area)


class WorkerKernel(KernelBuilder):
    """A KernelBuilder for a pool worker `void fn(ptr ctx)` mirroring a parent kernel."""

    def __init__(self, parent: KernelBuilder, name: str, n_args: int):
        self.ctx = parent.ctx
        self.module = parent.module
        self.target = parent.target
        self.parent = parent
        fn = ir.Function(self.module, threads.worker_type(), name=self.module.get_unique_name(name))
        fn.linkage = "internal"
        self.function = fn
        self.context, self.participant = fn.args
        self.context.add_attribute("noalias")
        allocas = fn.append_basic_block("allocas")
        self._start = fn.append_basic_block("entry")
        jump = ir.IRBuilder(allocas).branch(self._start)
        self._alloca_builder = ir.IRBuilder(allocas)
        self._alloca_builder.position_before(jump)
        self.b = b = ir.IRBuilder(self._start)
        self._dims = {}
        layout = _layout(parent)
        # copies of the kernel's arguments under the SAME names (see the module docstring)
        self.errinfo = self.word(CTX_ERRINFO, h.PTR, parent.errinfo.name)
        self.symbol_values = {s: self.word(k, h.I64, parent.symbol_values[s].name)
                              for s, k in layout["symbols"].items()}
        self.inputs = [Buffer(self.word(k, h.PTR, buf.ptr.name), buf.dtype, buf.shape, buf.align)
                       for buf, k in zip(parent.inputs, layout["inputs"])]
        self.outputs = [Buffer(self.word(k, h.PTR, buf.ptr.name), buf.dtype, buf.shape,
                               buf.align)
                        for buf, k in zip(parent.outputs, layout["outputs"])]
        self._arg_names = {a.name for a in parent.function.args}
        self._remap = {id(o.ptr): i for o, i in zip(parent.inputs + parent.outputs,
                                                    self.inputs + self.outputs)}
        self.args = [self.word(layout["args"] + k, h.I64) for k in range(n_args)]
        self.n_items = self.word(CTX_ITEMS, h.I64)
        self.claim = self.context                 # the region block starts with it
        self.cursor = threads.new_cursor(b, self._alloca_builder)

    def word(self, k: int, typ, name: str = "") -> ir.Value:
        p = self.b.gep(self.context, [h.i64(threads.CLAIM_WORDS + k)], inbounds=True,
                       source_etype=h.I64)
        if typ is h.PTR:
            return self.b.inttoptr(self.b.load(p, typ=h.I64, align=8), h.PTR, name=name)
        return self.b.load(p, typ=h.I64, align=8, name=name)

    def remap(self, buf: Buffer) -> Buffer:
        """The worker's view of one of the parent kernel's buffers."""
        found = self._remap.get(id(buf.ptr))
        if found is None:
            raise CompileError("parallel loop body uses a buffer that is not an argument of "
                               "its kernel")
        return found

    def check(self, ok, kind, value, bound, axis) -> None:
        raise CompileError("run-time checks cannot be made inside a parallel loop body (a "
                           "pool worker cannot return an error); keep this loop serial")

    def finish(self) -> None:
        self.b.ret_void()
        self._check_no_leaks()

    def _check_no_leaks(self) -> None:
        """Every value the worker uses is its own, a constant or global, or a kernel argument
        it has a same-named copy of."""
        fn = self.function
        for block in fn.blocks:
            for instr in block.instructions:
                ops = list(instr.operands)
                if isinstance(instr, ir.PhiInstr):
                    ops += [v for v, _ in instr.incomings]
                for op in ops:
                    if isinstance(op, ir.Argument) and op.parent is not fn:
                        if op.parent is not self.parent.function or op.name not in self._arg_names:
                            raise CompileError(f"parallel loop body uses argument %{op.name} "
                                               "of another function (a codegen bug)")
                    elif isinstance(op, ir.Instruction) and op.function is not fn:
                        raise CompileError(f"parallel loop body uses %{op.name} computed in "
                                           f"{op.function.name} (a codegen bug: compute it "
                                           "inside the body or pass it in `args`)")

    @contextmanager
    def redirect(self, kb: KernelBuilder):
        """Point `kb` (the parent) into this worker for the duration (module docstring)."""
        fields = ("b", "function", "_start", "_alloca_builder", "_dims", "symbol_values",
                  "errinfo", "inputs", "outputs")
        saved = {f: getattr(kb, f) for f in fields}
        for f in fields:
            setattr(kb, f, getattr(self, f) if f != "_dims" else self._dims)
        kb.check = self.check
        try:
            yield
        finally:
            for f, v in saved.items():
                setattr(kb, f, v)
            del kb.check


def _layout(kb: KernelBuilder) -> dict:
    """Word index of each kernel argument in the context array."""
    k = CTX_ERRINFO + 1
    symbols = {}
    for s in kb.symbol_values:
        symbols[s] = k
        k += 1
    inputs = list(range(k, k + len(kb.inputs)))
    k += len(kb.inputs)
    outputs = list(range(k, k + len(kb.outputs)))
    k += len(kb.outputs)
    return {"symbols": symbols, "inputs": inputs, "outputs": outputs, "args": k}


def parallel_for(kb: KernelBuilder, n_items: ir.Value, work_ns: ir.Value,
                 body: Callable, args: Sequence[ir.Value] = (), name: str = "par") -> None:
    """Run `body(wkb, item, wkb.args)` for every item in [0, n_items), in parallel when the
    estimated single-thread work `work_ns` is large enough (see the module docstring)."""
    b = kb.b
    layout = _layout(kb)
    words = layout["args"] + len(args)
    block = threads.region_block(kb, words, f"{name}.ctx")
    ctx = threads.context_words(b, block)

    def put(k, value):
        if value.type == h.PTR:
            value = b.ptrtoint(value, h.I64)
        b.store(value, b.gep(ctx, [h.i64(k)], inbounds=True, source_etype=h.I64), align=8)

    put(CTX_ITEMS, n_items)
    put(CTX_ERRINFO, kb.errinfo)
    for s, k in layout["symbols"].items():
        put(k, kb.symbol_values[s])
    for buf, k in zip(kb.inputs, layout["inputs"]):
        put(k, buf.ptr)
    for buf, k in zip(kb.outputs, layout["outputs"]):
        put(k, buf.ptr)
    for j, value in enumerate(args):
        put(layout["args"] + j, value)

    wkb = WorkerKernel(kb, f"{kb.function.name}.{name}", len(args))
    wb = wkb.b
    head = wkb.function.append_basic_block("item")
    work = wkb.function.append_basic_block("item.body")
    done = wkb.function.append_basic_block("done")
    wb.branch(head)
    wb.position_at_end(head)
    item = threads.next_item(wb, wkb.claim, wkb.participant, wkb.cursor)
    wb.cbranch(wb.icmp_signed("<", item, wkb.n_items), work, done)
    wb.position_at_end(work)
    with wkb.redirect(kb):
        body(wkb, item, wkb.args)
    wb.branch(head)
    wb.position_at_end(done)
    wkb.finish()

    threads.emit_parallel(b, wkb.function, block, n_items, work_ns)


def chunking(b: ir.IRBuilder, count: ir.Value, min_chunk: int, align: int,
             max_items: int = 64):
    """(chunk, items) splitting [0, count) into at most `max_items` runs of at least
    `min_chunk` elements, each a multiple of `align` (the vector width) but the last."""
    least = h.i64(max(1, min_chunk)) if isinstance(min_chunk, int) else \
        b.select(b.icmp_signed("<", min_chunk, h.i64(1)), h.i64(1), min_chunk)
    per = b.sdiv(b.add(count, h.i64(max_items - 1)), h.i64(max_items))
    per = b.select(b.icmp_signed("<", per, least), least, per)
    chunk = b.mul(b.sdiv(b.add(per, h.i64(align - 1)), h.i64(align)), h.i64(align))
    items = b.sdiv(b.add(count, b.sub(chunk, h.i64(1))), chunk)
    return chunk, items
