"""KernelBuilder: one internal LLVM function per node (or fused group).

Kernel signature (internal linkage, inlined or not as LLVM sees fit):

    i32 kernel(ptr noalias errinfo, i64 sym_0, ..., i64 sym_{S-1},
               ptr noalias align A in_0, ..., ptr noalias align A out_0, ...)

It returns 0, or a non-zero error kind after writing details to errinfo (i64[4]: kind, value,
bound, axis). Buffer pointers are `noalias` (the buffer plan never gives a kernel an output
that overlaps one of its inputs) and carry their known alignment: 64 for arena, parameter and
constant buffers, the element size for caller-owned arrays. Symbol values arrive as i64
arguments, so every dim expression is ordinary integer arithmetic inside the kernel and one
compiled module serves every batch size.
"""
from __future__ import annotations

from dataclasses import dataclass

import llvmlite.ir as ir

from ir import CompileError
from ir.symbolic import SymDim

from . import helpers as h

# error kinds reported through errinfo[0]
ERR_INDEX_OUT_OF_RANGE = 1
ERR_EMPTY_AXIS = 2


@dataclass(frozen=True)
class Buffer:
    """A tensor in memory as a kernel sees it: base pointer, dtype, (symbolic) shape, alignment."""
    ptr: ir.Value
    dtype: object
    shape: tuple
    align: int

    @property
    def rank(self) -> int:
        return len(self.shape)


class KernelBuilder:
    """Creates the kernel function and offers what lowerings need: dims, loads, stores, checks."""

    def __init__(self, ctx, name: str, in_specs, out_specs):
        """`in_specs`/`out_specs`: (dtype, shape, align) per buffer; `ctx` is the ModuleContext."""
        self.ctx = ctx
        self.module = ctx.module
        self.target = ctx.target
        n_sym = len(ctx.symbols)
        arg_types = [h.PTR] + [h.I64] * n_sym + [h.PTR] * (len(in_specs) + len(out_specs))
        self.function = ir.Function(self.module, ir.FunctionType(h.I32, arg_types), name=name)
        self.function.linkage = "internal"
        self.function.attributes.add("noinline")
        args = self.function.args
        args[0].add_attribute("noalias")
        args[0].name = "errinfo"
        self.errinfo = args[0]
        self.symbol_values = dict(zip(ctx.symbols, args[1:1 + n_sym]))
        for name_, arg in self.symbol_values.items():
            arg.name = f"sym.{name_}"
        buffers = []
        for k, (dtype, shape, align) in enumerate(list(in_specs) + list(out_specs)):
            arg = args[1 + n_sym + k]
            arg.add_attribute("noalias")
            arg.attributes.align = align
            arg.name = f"in{k}" if k < len(in_specs) else f"out{k - len(in_specs)}"
            buffers.append(Buffer(arg, dtype, tuple(shape), align))
        self.inputs = buffers[:len(in_specs)]
        self.outputs = buffers[len(in_specs):]
        # The first block only holds stack slots (`local`) and branches to the body, so
        # allocas never disturb the insertion point of the main builder.
        allocas = self.function.append_basic_block("allocas")
        self._start = self.function.append_basic_block("entry")
        jump = ir.IRBuilder(allocas).branch(self._start)
        self._alloca_builder = ir.IRBuilder(allocas)
        self._alloca_builder.position_before(jump)
        self.b = ir.IRBuilder(self._start)
        self._dims: dict = {}

    # -- dims ----------------------------------------------------------------------------------
    def dim(self, d) -> ir.Value:
        """The runtime i64 value of a dim (int or symbolic polynomial)."""
        if isinstance(d, int):
            return h.i64(d)
        if d in self._dims:
            return self._dims[d]
        value = eval_dim(self.b, d, self.symbol_values)
        # cache only values defined in the entry block (they dominate every later use)
        if self.b.block is self._start:
            self._dims[d] = value
        return value

    def extents(self, shape) -> list:
        return [self.dim(d) for d in shape]

    def numel(self, shape) -> ir.Value:
        return h.product(self.b, self.extents(shape))

    def strides(self, shape) -> list:
        return h.row_major_strides(self.b, self.extents(shape))

    # -- memory --------------------------------------------------------------------------------
    def load(self, buf: Buffer, index: ir.Value, lanes: int = 1) -> ir.Value:
        return h.load_element(self.b, buf.ptr, index, buf.dtype, buf.align, lanes)

    def store(self, buf: Buffer, index: ir.Value, value: ir.Value) -> None:
        h.store_element(self.b, value, buf.ptr, index, buf.dtype, buf.align)

    def local(self, typ: ir.Type, name: str = "acc") -> ir.Value:
        """A stack slot in the entry block (mem2reg turns it into SSA registers): the
        simplest way to carry accumulators across nested loops."""
        return self._alloca_builder.alloca(typ, name=name)

    def get(self, slot: ir.Value, typ: ir.Type) -> ir.Value:
        return self.b.load(slot, typ=typ)

    def put(self, slot: ir.Value, value: ir.Value) -> None:
        self.b.store(value, slot)

    # -- errors --------------------------------------------------------------------------------
    def check(self, ok: ir.Value, kind: int, value: ir.Value, bound: ir.Value, axis: int) -> None:
        """Continue when `ok` (i1) holds; otherwise record (kind, value, bound, axis) and return
        `kind` from the kernel, so the Executable raises an error naming this node."""
        fail = self.function.append_basic_block("check.fail")
        cont = self.function.append_basic_block("check.ok")
        self.b.cbranch(ok, cont, fail, )
        fb = ir.IRBuilder(fail)
        for slot, v in enumerate((h.i64(kind), value, bound, h.i64(axis))):
            fb.store(v, fb.gep(self.errinfo, [h.i64(slot)], inbounds=True, source_etype=h.I64),
                     align=8)
        fb.ret(h.i32(kind))
        self.b.position_at_end(cont)

    def finish(self) -> None:
        self.b.ret(h.i32(0))


def eval_dim(b: ir.IRBuilder, d, symbol_values: dict) -> ir.Value:
    """Emit the i64 value of dim `d` from the symbols' runtime values."""
    if isinstance(d, int):
        return h.i64(d)
    total = None
    for monomial, coeff in d.terms:
        term = h.i64(coeff)
        for s in monomial:
            if s not in symbol_values:
                raise CompileError(f"symbolic dim {s} has no runtime value (it is not the size "
                                   "of an axis of any graph input)")
            term = h.mul(b, term, symbol_values[s])
        total = term if total is None else h.add(b, total, term)
    return total


def is_symbolic(shape) -> bool:
    return any(isinstance(d, SymDim) for d in shape)
