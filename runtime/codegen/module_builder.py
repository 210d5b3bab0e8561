"""Build the LLVM module of one graph: kernels, constant globals, the entry function.

The module holds one internal kernel function per node that needs code (see plan.py for the
nodes that do not), the constants as read-only 64-byte-aligned globals, and the two exported
functions of the ABI (abi.py): `graphc_entry`, which computes the arena slot addresses from
the symbol values, calls the kernels in graph order (returning node index + 1 as soon as one
reports an error), then performs the plan's final copies; and `graphc_arena_bytes`, which
computes the arena size from the same slot formulas, so Python and C callers size the arena
with exactly the arithmetic the entry uses.
"""
from __future__ import annotations

import llvmlite.ir as ir
import numpy as np

from ir import CompileError, GraphcError
from ir.graph import Graph

from .. import abi, threads
from ..plan import ARENA, ARENA_ALIGN, CONSTANT, INPUT, OUTPUT, PARAM, BufferPlan, Home
from . import helpers as h
from .kernel import KernelBuilder, eval_dim
from .registry import LOWERINGS


class ModuleContext:
    """Module-wide state kernels share: the module, target, symbol order, constant globals."""

    def __init__(self, module: ir.Module, target, symbols: tuple):
        self.module = module
        self.target = target
        self.symbols = tuple(symbols)
        self.updates_params = False     # a training step (outputs written into params)
        self._globals: dict = {}

    def constant_global(self, array: np.ndarray) -> ir.GlobalVariable:
        """A private read-only global holding `array`'s bytes (one per distinct array)."""
        key = id(array)
        if key not in self._globals:
            data = np.ascontiguousarray(array)
            if data.dtype == np.bool_:
                data = data.view(np.uint8)
            raw = bytearray(data.tobytes())
            typ = ir.ArrayType(h.I8, max(len(raw), 1))
            g = ir.GlobalVariable(self.module, typ, name=f"const.{len(self._globals)}")
            g.initializer = ir.Constant(typ, raw or bytearray(1))
            g.global_constant = True
            g.linkage = "private"
            g.unnamed_addr = True
            g.align = ARENA_ALIGN
            self._globals[key] = (array, g)       # keep the array alive: ids stay unique
        return self._globals[key][1]


def emit_arena_layout(b: ir.IRBuilder, plan: BufferPlan, symbol_values: dict):
    """(slot byte offsets, total bytes) as i64 values: each slot's planned offset (the max
    of its Dims) rounded up to the arena alignment; the total is the highest end of any slot.
    Static parts are folded here and maxima are `llvm.umax` calls: LLVM's time on the long
    icmp/select chains this used to be was most of a training step's entry function."""
    def umax(x, y):
        if isinstance(x, int) and isinstance(y, int):
            return max(x, y)
        if isinstance(y, int) and y == 0 or isinstance(x, int) and x == 0:
            return y if isinstance(x, int) else x       # unsigned: max(x, 0) is x
        return h.intrinsic(b, "umax", [_value(x), _value(y)])

    def align_up(x):
        if isinstance(x, int):
            return (x + ARENA_ALIGN - 1) & -ARENA_ALIGN
        return b.and_(b.add(x, h.i64(ARENA_ALIGN - 1)), h.i64(-ARENA_ALIGN))

    known: dict = {}                     # each symbolic Dim is emitted once

    def value_of(d):
        if isinstance(d, int):
            return d
        if d not in known:
            known[d] = eval_dim(b, d, symbol_values)
        return known[d]

    offsets, total = [], 0
    for slot in plan.slots:
        size = None
        for nbytes in slot.sizes:
            v = value_of(nbytes)
            size = v if size is None else umax(v, size)
        offset = None
        for term in slot.offset:                          # the max of the planned terms
            t = value_of(term)
            offset = t if offset is None else umax(t, offset)
        offset = align_up(offset)
        offsets.append(_value(offset))
        end = (align_up(offset + size) if isinstance(offset, int) and isinstance(size, int)
               else align_up(h.add(b, _value(offset), _value(size))))
        total = umax(end, total)
    return offsets, _value(total)


def _value(x) -> ir.Value:
    return h.i64(x) if isinstance(x, int) else x


PROFILE_GLOBAL = "graphc_profile"


def build_module(graph: Graph, plan: BufferPlan, target, profile: bool = False) -> ir.Module:
    """The module of `graph` in one part (see build_modules)."""
    return build_modules(graph, plan, target, profile, 1)[0]


# llvm_cost's weights, in instructions of a full-speed function
LOOP_COST = 27                 # a loop of a full-speed function
OPTSIZE_COSTS = (0.8, 10)      # an instruction and a loop of an optsize function
FUSED_REDUCTION_COST = 0.32    # an instruction of a fused reduction's kernel


def llvm_cost(functions, fused_reduction: bool = False) -> int:
    """A rough estimate of LLVM's time on `functions`, in instructions: each loop counts as
    LOOP_COST more, since LLVM's loop passes (vectoriser, unroller, strength reduction) do
    most of the work and a short scalar loop can cost more than a long straight run; a
    function with optsize, or the kernel of a fused reduction (`fused_reduction`: its loops
    are short and cheap), has other weights. Least-squares fit of LLVM's O2 time (optimise +
    emit) on the 106 functions of the W1/LeNet training steps, each compiled alone (full
    speed: 0.069 ms per instruction, 1.9 ms per loop; optsize: 0.056 and 0.71 ms; fused
    reduction: 0.022 ms per instruction; r^2 0.97); used to balance the parts of a module
    and to order them."""
    cost = 0.0
    for fn in functions:
        if not fn.blocks:
            continue                                   # a declaration
        inst = loops = 0
        index = {id(block): k for k, block in enumerate(fn.blocks)}
        for k, block in enumerate(fn.blocks):
            inst += len(block.instructions)
            term = block.terminator
            if term is not None:
                loops += sum(1 for op in term.operands
                             if index.get(id(op), k + 1) <= k)   # a back edge
        if fused_reduction:
            cost += FUSED_REDUCTION_COST * inst
        elif "optsize" in fn.attributes:
            cost += OPTSIZE_COSTS[0] * inst + OPTSIZE_COSTS[1] * loops
        else:
            cost += inst + LOOP_COST * loops
    return int(cost)


def build_modules(graph: Graph, plan: BufferPlan, target, profile: bool = False,
                  parts: int = 1) -> list:
    """The module of `graph`, as `parts` modules compiled side by side
    (runtime/parallel_compile.py): part 0 holds the entry and arena functions and some
    kernels; each kernel goes to the part with the fewest instructions so far, and a kernel
    outside part 0 has external linkage (`graphc.k<i>.<op>`) and is declared in part 0. A
    helper that kernels share (SHARED_HELPERS: gemm micro-kernels and workers) is defined
    once, with external linkage, by the first part that needs it, and declared in the
    others, so LLVM optimises and compiles it once (a copy per part cost ~0.1 s of a
    training step's compile).

    `profile`: the entry reads the cycle counter around every kernel call and adds (cycles,
    calls) into the exported i64 array `graphc_profile` (two words per kernel node, in
    `plan.kernel_nodes` order, then two for the final copies); runtime/profile.py turns it
    into a per-node report."""
    modules = []
    for k in range(parts):
        m = ir.Module(name=graph.name if k == 0 else f"{graph.name}.part{k}")
        m.triple = target.triple
        m.data_layout = target.data_layout()
        m.graphc_part = k
        modules.append(m)
    ctxs = [ModuleContext(m, target, plan.symbols) for m in modules]
    for c in ctxs:
        c.updates_params = bool(plan.updates)
    module, ctx = modules[0], ctxs[0]
    shared: set = set()                  # names of the shared helpers defined so far
    table = abi.ArgTable(len(plan.data_inputs), len(plan.returned), len(plan.params))
    layout = _emit_arena_layout_function(module, plan)
    arena_bytes = _emit_arena_bytes_function(module, layout, len(plan.slots))
    sizes = [0] * parts
    # part 0 also holds the entry and arena functions (the entry's ~8 instructions per
    # kernel are an estimate until it is done: it steers the first kernels away from part 0)
    entry_estimate = 8 * len(plan.kernel_nodes)
    sizes[0] = llvm_cost([layout, arena_bytes]) + entry_estimate

    entry = ir.Function(module, ir.FunctionType(h.I32, [h.PTR, h.PTR]), name=abi.ENTRY_NAME)
    args_arg, syms_arg = entry.args
    args_arg.name, syms_arg.name = "args", "symbols"
    for a in entry.args:
        a.add_attribute("noalias")
        a.add_attribute("captures(none)")
    b = ir.IRBuilder(entry.append_basic_block("entry"))

    def table_ptr(k: int, name: str) -> ir.Value:
        slot = b.gep(args_arg, [h.i64(k)], inbounds=True, source_etype=h.PTR)
        return b.load(slot, typ=h.PTR, name=name, align=8)

    symbol_values = {}
    for k, s in enumerate(plan.symbols):
        p = b.gep(syms_arg, [h.i64(k)], inbounds=True, source_etype=h.I64)
        symbol_values[s] = b.load(p, typ=h.I64, name=f"sym.{s}", align=8)
    ptrs = {INPUT: [table_ptr(table.input(k), f"in.{v.name}")
                    for k, v in enumerate(plan.data_inputs)],
            OUTPUT: [table_ptr(table.output(k), f"out.{name}")
                     for k, (name, _) in enumerate(plan.returned)],
            PARAM: [table_ptr(table.param(k), f"param.{v.name}")
                    for k, v in enumerate(plan.params)]}
    arena = table_ptr(table.arena, "arena")
    errinfo = table_ptr(table.errinfo, "errinfo")
    offsets = _slot_offsets(b, layout, syms_arg, len(plan.slots))
    ptrs[ARENA] = [b.gep(arena, [off], inbounds=True, source_etype=h.I8, name=f"slot{k}")
                   for k, off in enumerate(offsets)]

    def pointer(home: Home) -> ir.Value:
        if home.kind == CONSTANT:
            return ctx.constant_global(graph.nodes[home.index].attrs["value"])
        return ptrs[home.kind][home.index]

    def spec(v):
        home = plan.home[v]
        return (v.type.dtype, v.type.shape, plan.alignment(home, v.type.dtype))

    syms_in_order = [symbol_values[s] for s in plan.symbols]
    counters = _profile_counters(module, len(plan.kernel_nodes) + 1) if profile else None
    clock = (h.declare(module, "llvm.readcyclecounter", h.I64, []) if profile else None)

    base = counters
    def account(slot: int, start: ir.Value) -> None:
        """counters[slot] += (now - start) cycles, one more call (non-atomic: a profile)."""
        spent = b.sub(b.call(clock, []), start)
        for word, inc in ((2 * slot, spent), (2 * slot + 1, h.i64(1))):
            p = b.gep(base, [h.i64(word)], inbounds=True, source_etype=h.I64)
            b.store(b.add(b.load(p, typ=h.I64, align=8), inc), p, align=8)

    for slot, i in enumerate(plan.kernel_nodes):
        node = graph.nodes[i]
        part = min(range(parts), key=lambda j: sizes[j])
        kctx = ctxs[part]
        before = len(kctx.module.functions)
        name = f"k{i}.{node.op}" if part == 0 else f"graphc.k{i}.{node.op}"
        kb = KernelBuilder(kctx, name, [spec(v) for v in node.inputs],
                           [spec(v) for v in node.outputs])
        _allow_in_place(kb, [plan.home[v] for v in node.inputs + node.outputs], len(plan.symbols))
        try:
            LOWERINGS[node.op].emit(kb, node)
        except GraphcError as e:
            raise e.with_loc(node.loc) from None
        kb.finish()
        if _optimised_for_size(node):
            _add_optsize(kctx.module.functions[before:])
        sizes[part] += llvm_cost(kctx.module.functions[before:], _is_fused_reduction(node))
        if parts > 1:
            _share_new_helpers(modules, part, shared)
        callee = kb.function
        if part:                                   # defined in another part: declare it here
            callee.linkage = ""
            callee = ir.Function(module, kb.function.function_type, name=kb.function.name)
        call_args = [errinfo] + syms_in_order + [pointer(plan.home[v])
                                                 for v in node.inputs + node.outputs]
        start = b.call(clock, []) if profile else None
        status = b.call(callee, call_args, name=f"status{i}")
        if profile:
            account(slot, start)
        failed = entry.append_basic_block(f"node{i}.failed")
        ok = entry.append_basic_block(f"node{i}.ok")
        b.cbranch(b.icmp_signed("!=", status, h.i32(0)), failed, ok)
        ir.IRBuilder(failed).ret(h.i32(i + 1))
        b.position_at_end(ok)

    def copy(dst: ir.Value, src_home: Home, v_type) -> None:
        nbytes = eval_dim(b, v_type.nbytes, symbol_values)
        h.memcpy(b, dst, pointer(src_home), nbytes)

    start = b.call(clock, []) if profile else None
    for v, k in plan.output_copies:
        copy(ptrs[OUTPUT][k], plan.home[v], v.type)
    for v, slot in plan.snapshots:
        copy(ptrs[ARENA][slot], plan.home[v], v.type)
    for src_home, dtype, shape, p in plan.update_copies:
        copy(ptrs[PARAM][p], src_home, plan.params[p].type)
    if profile:
        account(len(plan.kernel_nodes), start)
    b.ret(h.i32(0))
    sizes[0] += llvm_cost([entry]) - entry_estimate
    if any(threads.NUM_THREADS_GLOBAL in m.globals for m in modules[1:]):
        threads.threads_global(module)     # the other parts only declare it: define it here
    for m, size in zip(modules, sizes):    # parallel_compile.py compiles the costliest first
        m.graphc_cost = size
    return modules


# Kernels LLVM optimises at full speed; the others get `optsize` (see _optimised_for_size).
SPEED_OPS = ("matmul", "max_pool2d", "avg_pool2d")
SPEED_FUSED_KINDS = ("contraction", "reduction")


def _is_fused_reduction(node) -> bool:
    return node.op == "fused" and node.attrs.get("kind") == "reduction"


def _optimised_for_size(node) -> bool:
    """Whether `node`'s kernel is compiled with `optsize`: LLVM then unrolls (and inlines)
    much less; the kernels' loops are vectorised by codegen already. That cut LLVM's time on
    a training step by 12-17% (optimise + emit, all parts: W1 0.91 -> 0.80 s of CPU, LeNet
    1.80 -> 1.49 s) at equal speed (per-kernel profiles, A/B in one process). Products (their
    epilogue loops: W2 batch 128 lost 1% with them), fused reductions (softmax cross
    entropy +36%) and forward pooling (+5-13%) were measurably slower that way and keep
    full speed; so do the shared gemm/gemv helpers (SHARED_HELPERS), whatever kernel
    builds them."""
    if node.op in SPEED_OPS:
        return False
    return not (node.op == "fused" and node.attrs.get("kind") in SPEED_FUSED_KINDS)


def _add_optsize(functions) -> None:
    for fn in functions:
        if not fn.is_declaration and not fn.name.startswith(SHARED_HELPERS):
            fn.attributes.add("optsize")


# Helpers whose name encodes everything they are built from (gemm.py looks them up by name
# before building them), so one definition serves every part of a module.
SHARED_HELPERS = ("graphc.ukr.", "graphc.gemm.", "graphc.gemv.")


def _share_new_helpers(modules: list, part: int, shared: set) -> None:
    """Give the shared helpers `modules[part]` just defined external linkage and declare them
    in every other part: a later kernel there finds the declaration (gemm.py returns an
    existing function of that name) and calls this definition instead of building a copy."""
    for fn in modules[part].functions:
        if fn.name in shared or fn.is_declaration or not fn.name.startswith(SHARED_HELPERS):
            continue
        shared.add(fn.name)
        fn.linkage = ""
        for k, other in enumerate(modules):
            if k != part and fn.name not in other.globals:
                ir.Function(other, fn.function_type, name=fn.name)


def _profile_counters(module: ir.Module, slots: int) -> ir.GlobalVariable:
    typ = ir.ArrayType(h.I64, 2 * slots)
    g = ir.GlobalVariable(module, typ, name=PROFILE_GLOBAL)
    g.initializer = ir.Constant(typ, [h.i64(0)] * (2 * slots))
    g.align = 64
    g.type = h.PTR                             # opaque: geps give element pointers
    return g


def _allow_in_place(kb: KernelBuilder, homes: list, n_symbols: int) -> None:
    """A buffer passed twice to one kernel is an in-place update (an arena slot planned by
    passes/plan_memory.py, or a parameter written directly by its update: plan.py): those
    arguments may alias, so they lose `noalias`."""
    for k, home in enumerate(homes):
        if home.kind in (ARENA, PARAM) and homes.count(home) > 1:
            kb.function.args[1 + n_symbols + k].attributes.discard("noalias")


LAYOUT_NAME = "graphc.arena_layout"


def _emit_arena_layout_function(module: ir.Module, plan: BufferPlan) -> ir.Function:
    """`i64 graphc.arena_layout(ptr symbols, ptr offsets)`: writes each slot's byte offset
    into offsets[k] and returns the arena's size. The entry and graphc_arena_bytes both
    call it (noinline), so the layout's code is optimised and compiled once (a copy in
    each was ~0.03 s of LLVM time in a training step's compile)."""
    fn = ir.Function(module, ir.FunctionType(h.I64, [h.PTR, h.PTR]), name=LAYOUT_NAME)
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    fn.attributes.add("noimplicitfloat")      # integer code: the SLP vectoriser may skip it
    syms, out = fn.args
    syms.name, out.name = "symbols", "offsets"
    for a in fn.args:
        a.add_attribute("noalias")
        a.add_attribute("captures(none)")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    symbol_values = {}
    for k, s in enumerate(plan.symbols):
        p = b.gep(syms, [h.i64(k)], inbounds=True, source_etype=h.I64)
        symbol_values[s] = b.load(p, typ=h.I64, align=8)
    offsets, total = emit_arena_layout(b, plan, symbol_values)
    for k, off in enumerate(offsets):
        b.store(off, b.gep(out, [h.i64(k)], inbounds=True, source_etype=h.I64), align=8)
    b.ret(total)
    return fn


def _slot_offsets(b: ir.IRBuilder, layout: ir.Function, symbols: ir.Value, n_slots: int):
    """The slot offsets as i64 values, from a call of the layout function (in b's block:
    the entry block, where the scratch array's alloca belongs)."""
    if not n_slots:
        return []
    scratch = b.alloca(ir.ArrayType(h.I64, n_slots), name="slot.offsets")
    scratch.align = 8
    b.call(layout, [symbols, scratch])
    return [b.load(b.gep(scratch, [h.i64(k)], inbounds=True, source_etype=h.I64),
                   typ=h.I64, name=f"slot{k}.offset", align=8) for k in range(n_slots)]


def _emit_arena_bytes_function(module: ir.Module, layout: ir.Function,
                               n_slots: int) -> ir.Function:
    fn = ir.Function(module, ir.FunctionType(h.I64, [h.PTR]), name=abi.ARENA_BYTES_NAME)
    syms = fn.args[0]
    syms.name = "symbols"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    scratch = b.alloca(ir.ArrayType(h.I64, max(n_slots, 1)), name="slot.offsets")
    scratch.align = 8
    b.ret(b.call(layout, [syms, scratch]))
    return fn


def check_lowerings(graph: Graph) -> None:
    missing = sorted({n.op for n in graph.nodes if n.op not in LOWERINGS})
    if missing:
        raise CompileError(f"graph {graph.name!r} uses op(s) with no native lowering: "
                           f"{', '.join(missing)}")
