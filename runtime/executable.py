"""Executable: the call boundary between numpy arrays and a compiled graph.

    exe = graphc.compile(graph)
    y = exe(x)                      # one returned output -> one array
    y1, y2 = exe(x, mask=m)         # several -> a tuple in graph output order
    outs = exe.run({"x": x})        # dict in, dict (output name -> array) out

Semantics (decided here, documented for users):
- Arguments are the graph's data inputs (role "input"), positional in graph order and/or by
  name. Params and state are not arguments: they live in runtime-owned 64-byte-aligned
  buffers initialised from graph.initializers; read them with `exe.params` (live numpy views)
  and replace them with `exe.set_params({...})` (validated, copied in). Several executables
  can share one store (`Executable(compiled, graph, params=other.param_store)`): a model's
  train step and predict graphs then read and update the same buffers.
- Every argument is checked before native code runs (runtime/arguments.py); non-contiguous or
  misaligned arrays are copied, never rejected. A later call whose arrays have shapes a full
  check accepted (and are dense, aligned and of the exact dtypes) reuses that check: in C
  when the extension is built (runtime/boundary.py, `_native`), else in `_fast_call`.
- Outputs that update a param (graph.aliases) are written in place into that param's buffer
  after the whole graph ran, and are NOT returned; the call returns the other outputs as
  fresh arrays (or writes them into `out=`).
- Thread safety: concurrent calls on one executable are safe and independent: each call
  borrows its own call context (argument table, symbol array, arena, error slot) from a pool.
  Calls that update params in place from several threads race on those params, as any shared
  mutable state would: serialise such calls yourself.
- A runtime failure inside native code (a gather index out of range) raises ExecutionError
  naming the node and its source location; nothing out of bounds is read.
"""
from __future__ import annotations

import ctypes
from functools import partial
from typing import Mapping, Optional

import numpy as np

from ir import ArgumentError, GraphcError
from ir.constraints import dim_constraints
from ir.graph import Graph
from ir.symbolic import evaluate

from . import abi, boundary
from . import profile as profiling
from .arguments import ArgumentChecker, check_out_array
from .compile import CompiledGraph
from .params import ParamStore, aligned_empty, data_address
from .plan import call_signature, describe
from .stack_check import require_stack


_DENSE_AND_ALIGNED = 0x0001 | 0x0100       # NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED
_OUT_FLAGS = _DENSE_AND_ALIGNED | 0x0400    # ... | NPY_ARRAY_WRITEABLE


def _address(arr: np.ndarray) -> int:
    """First byte of an array (`c_char.from_buffer`: ~0.3 us; needs a writeable buffer)."""
    if arr.flags.writeable and arr.nbytes:
        return ctypes.addressof(ctypes.c_char.from_buffer(arr))
    return arr.__array_interface__["data"][0]


class ExecutionError(GraphcError):
    """Native code stopped at a node and reported why (e.g. a gather index out of range)."""


class _CallContext:
    """Everything one in-flight call writes: argument table, symbols, arena, error slot."""

    def __init__(self, table: abi.ArgTable, n_symbols: int, param_addresses):
        self.table = (ctypes.c_void_p * table.size)()
        self.table_address = ctypes.addressof(self.table)
        self.symbols = (ctypes.c_int64 * max(1, n_symbols))()
        self.symbols_address = ctypes.addressof(self.symbols)
        self.errinfo = np.zeros(abi.ERRINFO_WORDS, np.int64)
        self.table[table.errinfo] = data_address(self.errinfo)
        for k, addr in enumerate(param_addresses):
            self.table[table.param(k)] = addr
        self.arena_slot = table.arena
        self.arena = None
        self.binding = None

    def bind(self, env: tuple, arena_bytes: int) -> None:
        if env == self.binding:
            return
        for k, v in enumerate(env):
            self.symbols[k] = v
        if self.arena is None or self.arena.nbytes < arena_bytes:
            self.arena = aligned_empty(arena_bytes)
            self.table[self.arena_slot] = data_address(self.arena)
        self.binding = env


def _status_error(graph: Graph, status: int, kind: int, value: int, bound: int,
                  axis: int) -> GraphcError:
    """The ExecutionError for a non-zero status of the entry (node status-1 failed) and its
    error words (also called by the C boundary: it must not hold the Executable)."""
    node = graph.nodes[status - 1]
    if kind == 1:
        msg = (f"{node.op}: index {value} is out of range [0, {bound}) on axis {axis} "
               f"(node %{node.outputs[0].name})")
    elif kind == 2:
        msg = (f"{node.op}: axis {axis} is empty; there is no maximum to index "
               f"(node %{node.outputs[0].name})")
    else:
        msg = (f"{node.op}: native code reported error kind {kind} "
               f"(node %{node.outputs[0].name})")
    return ExecutionError(msg, node.loc)


class Executable:
    def __init__(self, compiled: CompiledGraph, graph: Graph,
                 params: Optional[ParamStore] = None):
        self.compiled = compiled
        self.graph = graph
        sig = call_signature(graph)
        self.symbols = sig.symbols
        self.input_names = [v.name for v in sig.data_inputs]
        self.output_names = [name for name, _ in sig.returned]
        self.updated_params = {name: sig.params[p].name for name, _, p in sig.updates}
        self._checker = ArgumentChecker(graph.name, sig.data_inputs, sig.params, sig.symbols,
                                        dim_constraints(graph))
        self._outputs = [(name, v.type.dtype.np_dtype, tuple(v.type.shape))
                         for name, v in sig.returned]
        # `params`: share another executable's store (e.g. train step and predict of one
        # model); every param of this graph must be in it with the same dtype and shape.
        if params is None:
            self._params = ParamStore(sig.params, graph.initializers)
            self._param_addresses = self._params.addresses
        else:
            self._params = params
            self._param_addresses = params.addresses_for(sig.params, graph.name)
        self._entry = compiled.entry
        self._table = compiled.table
        self._bindings: dict = {}             # symbol values -> (output shapes, arena bytes)
        self._accepted: dict = {}             # argument shapes a full check accepted
        self._input_dtypes = [np.dtype(v.type.dtype.np_dtype) for v in sig.data_inputs]
        self._pool: list = []                 # idle call contexts (when _native is None)
        # the common call in C (runtime/boundary.py); None: every call takes the Python path
        self._native = boundary.native_state(
            compiled, self._input_dtypes, [v.type.rank for v in sig.data_inputs],
            [dt for _, dt, _ in self._outputs], [len(shape) for _, _, shape in self._outputs],
            self.output_names, len(self.symbols), self._params,
            partial(_status_error, graph))
        self._native_call = None if self._native is None else self._native.call
        self.optimization = None      # the PassResult of graphc.compile's pipeline, if any

    # -- calling -------------------------------------------------------------------------------
    def _python_call(self, *args, out=None, **named):
        """`exe(*arrays, out=None, **named)` in Python: the whole call without the C
        dispatcher, and its fallback (named inputs, no C state, arguments it refused)."""
        if not named:
            native = self._native_call
            if native is not None:
                result = native(args, out)      # None: not the common case, check fully
                if result is not None:
                    return result
                results = self._call(args, {}, out)
            else:
                results = self._fast_call(args, out)
        else:
            results = self._call(args, named, out)
        if len(results) == 1:
            return results[0]
        return tuple(results)

    # the C dispatcher when the extension is built: `exe._native` runs without this frame
    __call__ = boundary.dispatcher("_python_call") or _python_call

    def _fast_call(self, args, out=None):
        """The common call (positional arrays; fresh outputs or `out=`) with the checks of an
        earlier call reused: when every argument is an ndarray of the expected dtype, dense
        and aligned, with exactly the shapes a full check already accepted, the symbol
        binding, output shapes and arena size are that check's. `out=` arrays must match
        exactly (dtype, shape, dense, aligned, writeable) and not overlap an input or the
        parameters (address ranges). Anything else takes `_call` (full checks, clear
        errors). The C extension's `call` (runtime/_boundary.c) does the same natively
        and replaces this when it is built; this stays the fallback and the reference."""
        dtypes = self._input_dtypes
        if len(args) != len(dtypes):
            return self._call(args, {}, out)
        shapes = []
        for arr, want in zip(args, dtypes):
            if type(arr) is not np.ndarray or arr.dtype is not want or \
                    arr.flags.num & _DENSE_AND_ALIGNED != _DENSE_AND_ALIGNED:
                return self._call(args, {}, out)
            shapes.append(arr.shape)
        known = self._accepted.get(tuple(shapes))
        if known is None or self._params.unset:
            return self._call(args, {}, out)
        env, out_specs, arena_bytes = known
        addresses = [_address(arr) for arr in args]
        if out is None:
            outputs = [np.empty(shape, dtype) for shape, dtype in out_specs]
            addresses += [_address(arr) for arr in outputs]
        else:
            outputs = self._fast_out(out, out_specs, args, addresses)
            if outputs is None:
                return self._call(args, {}, out)
        ctx = self._acquire()
        try:
            if ctx.binding != env:
                ctx.bind(env, arena_bytes)
            table = ctx.table
            for k, address in enumerate(addresses):
                table[k] = address
            status = self._entry(ctx.table_address, ctx.symbols_address)
            if status:
                raise self._runtime_error(status, ctx.errinfo)
        finally:
            self._release(ctx)
        return outputs

    def run(self, inputs: Mapping, out: Optional[Mapping] = None) -> dict:
        """Run with a dict of inputs by name; returns a dict output name -> array."""
        if not isinstance(inputs, Mapping):
            raise ArgumentError(f"run() takes a dict of inputs by name, found "
                                f"{type(inputs).__name__}")
        return dict(zip(self.output_names, self._call((), inputs, out)))

    def _fast_out(self, out, out_specs, args, addresses):
        """The `out=` arrays in output order if each is exactly right and separate from the
        inputs, the parameters and the other outputs (their addresses are appended to
        `addresses`, which holds the inputs'); None to take the full checks."""
        if type(out) is np.ndarray:
            arrays = [out]
        elif type(out) is dict and len(out) == len(out_specs):
            try:
                arrays = [out[name] for name in self.output_names]
            except KeyError:
                return None
        else:
            return None
        if len(arrays) != len(out_specs):
            return None
        spans = [(a, a + arr.nbytes) for a, arr in zip(addresses, args)]
        spans.append(self._params.span)
        for arr, (shape, dtype) in zip(arrays, out_specs):
            if type(arr) is not np.ndarray or arr.dtype is not dtype or arr.shape != shape \
                    or arr.flags.num & _OUT_FLAGS != _OUT_FLAGS:
                return None
            lo = _address(arr)
            hi = lo + arr.nbytes
            for olo, ohi in spans:
                if lo < ohi and olo < hi:
                    return None                  # overlap: let the full check report it
            spans.append((lo, hi))
            addresses.append(lo)
        return arrays

    def _call(self, args, named, out):
        arrays = self._checker.collect(args, named)
        env = self._checker.check(arrays)
        if self._params.unset:
            self._params.check_all_set()
        shapes, arena_bytes = self._binding(env)
        key = tuple(a.shape for a in arrays)
        if len(self._accepted) < 64 and key not in self._accepted:   # for the fast paths
            self._accepted[key] = (env, [(shape, dt) for shape, (_, dt, _) in
                                         zip(shapes, self._outputs)], arena_bytes)
            if self._native is not None:
                self._native.accept(key, env, tuple(shapes), arena_bytes)
        outputs = self._make_outputs(shapes, out, arrays)
        ctx = self._acquire()
        try:
            ctx.bind(env, arena_bytes)
            table = ctx.table
            for k, arr in enumerate(arrays):
                table[k] = data_address(arr)
            base = self._table.n_inputs
            for k, arr in enumerate(outputs):
                table[base + k] = data_address(arr)
            status = self._entry(ctx.table_address, ctx.symbols_address)
            if status:
                raise self._runtime_error(status, ctx.errinfo)
        finally:
            self._release(ctx)
        return outputs

    def _binding(self, env: tuple):
        found = self._bindings.get(env)
        if found is None:
            binding = dict(zip(self.symbols, env))
            shapes = [tuple(evaluate(d, binding) for d in shape) for _, _, shape in self._outputs]
            found = (shapes, self.compiled.arena_bytes(env))
            if len(self._bindings) > 64:          # bound the cache for callers that vary N a lot
                self._bindings.clear()
            self._bindings[env] = found
        return found

    def _make_outputs(self, shapes, out, arrays):
        if out is None:
            return [np.empty(shape, np_dtype)
                    for (_, np_dtype, _), shape in zip(self._outputs, shapes)]
        names = [name for name, _, _ in self._outputs]
        if isinstance(out, np.ndarray):
            out = (out,)
        if isinstance(out, Mapping):
            unknown = sorted(set(out) - set(names))
            if unknown or len(out) != len(names):
                raise ArgumentError(f"out= must give exactly the outputs {names}, found "
                                    f"{sorted(out)}")
            out = [out[n] for n in names]
        out = list(out)
        if len(out) != len(names):
            raise ArgumentError(f"out= must hold {len(names)} array(s) for outputs {names}, "
                                f"found {len(out)}")
        others = list(arrays) + list(self._params.views.values())
        checked = []
        for (name, np_dtype, _), shape, arr in zip(self._outputs, shapes, out):
            checked.append(check_out_array(name, arr, np_dtype, shape, others + checked))
        return checked

    def _acquire(self) -> _CallContext:
        """An idle call context (the C state's free list when there is one: the native
        and Python paths share the contexts), or a new one. Refuses a thread whose stack
        is too small for compiled code (runtime/stack_check.py)."""
        require_stack(self.graph.name)
        if self._native is not None:
            ctx = self._native.pop_context()
            if ctx is not None:
                return ctx
        else:
            try:
                return self._pool.pop()             # list.pop/append are atomic under the GIL
            except IndexError:
                pass
        return _CallContext(self._table, len(self.symbols), self._param_addresses)

    def _release(self, ctx: _CallContext) -> None:
        if self._native is not None:
            self._native.push_context(ctx)
        else:
            self._pool.append(ctx)

    def _runtime_error(self, status: int, errinfo: np.ndarray) -> GraphcError:
        return _status_error(self.graph, status, *(int(x) for x in errinfo))

    # -- parameters ----------------------------------------------------------------------------
    @property
    def params(self) -> dict:
        """Live views of the param/state buffers by name (writing them changes the model)."""
        return dict(self._params.views)

    @property
    def param_store(self) -> ParamStore:
        """The store holding this executable's params (pass it as `params=` to share it)."""
        return self._params

    def set_params(self, values: Mapping) -> None:
        """Copy new values into params/state (validated: names, dtypes, shapes)."""
        self._params.set(values)

    # -- study ---------------------------------------------------------------------------------
    def profile(self):
        """Time per kernel node over the calls so far (runtime/profile.py); the graph must
        have been compiled with profiling (GRAPHC_PROFILE=1)."""
        return profiling.report(self.compiled)

    def reset_profile(self) -> None:
        profiling.reset(self.compiled)

    @property
    def llvm_ir(self) -> str:
        """Optimised LLVM IR of the module."""
        return self.compiled.llvm_ir

    @property
    def llvm_ir_unoptimized(self) -> str:
        return self.compiled.llvm_ir_unoptimized

    @property
    def asm(self) -> str:
        return self.compiled.asm

    @property
    def kernel_count(self) -> int:
        """Native kernels one call runs (a fused group is one; views and constants none)."""
        return len(self.compiled.plan.kernel_nodes)

    @property
    def graph_optimized(self):
        """The graph the code was compiled from (after graphc.compile's pass pipeline)."""
        return self.graph

    @property
    def plan_text(self) -> str:
        """Where every value lives (names from the graph the cached code was compiled from)."""
        return describe(self.compiled.plan, self.compiled.graph)

    def arena_bytes(self, **symbols) -> int:
        """Arena size for a symbol binding, e.g. exe.arena_bytes(N=32)."""
        missing = [s for s in self.symbols if s not in symbols]
        if missing:
            raise ArgumentError(f"arena_bytes needs a value for {', '.join(missing)}")
        return self.compiled.arena_bytes([int(symbols[s]) for s in self.symbols])

    def __repr__(self) -> str:
        return (f"<Executable {self.graph.name!r}: inputs {self.input_names}, outputs "
                f"{self.output_names}, symbols {list(self.symbols)}>")
