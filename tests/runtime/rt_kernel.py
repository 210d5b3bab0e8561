"""Compile kernels on their own, for tests of codegen pieces that no op uses alone yet (a
fused elementwise group, explicit-vector loops).

`compile_kernels([(emit, in_types, out_types), ...])` builds ONE module holding, for each
spec, a kernel (made by `emit(kb)` on a KernelBuilder) and an exported wrapper
`i32 run<k>(ptr args, ptr symbols)` whose table is [inputs..., outputs..., errinfo]. It
returns Python functions `f(*arrays, **symbols) -> list of output arrays` and the
unoptimised IR text. `compile_kernel` is the one-kernel shorthand.
"""
from __future__ import annotations

import ctypes

import llvmlite.ir as llir
import numpy as np

from ir.symbolic import evaluate
from runtime.codegen import helpers as h
from runtime.codegen.kernel import KernelBuilder
from runtime.codegen.module_builder import ModuleContext
from runtime.jit import JitModule
from runtime.target import host_target

_ENTRY = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p)


def _specs(types):
    return [(t.dtype, t.shape, t.dtype.itemsize) for t in types]


def compile_kernels(specs, symbols=("N",), opt_level=2):
    target = host_target()
    module = llir.Module(name="kernel_test")
    module.triple = target.triple
    module.data_layout = target.data_layout()
    ctx = ModuleContext(module, target, symbols)
    for k, (emit, in_types, out_types) in enumerate(specs):
        kb = KernelBuilder(ctx, f"kernel{k}", _specs(in_types), _specs(out_types))
        emit(kb)
        kb.finish()
        run = llir.Function(module, llir.FunctionType(h.I32, [h.PTR, h.PTR]), name=f"run{k}")
        b = llir.IRBuilder(run.append_basic_block("entry"))
        table, syms = run.args
        n = len(in_types) + len(out_types)
        ptrs = [b.load(b.gep(table, [h.i64(j)], source_etype=h.PTR), typ=h.PTR)
                for j in range(n + 1)]
        sym_vals = [b.load(b.gep(syms, [h.i64(j)], source_etype=h.I64), typ=h.I64)
                    for j in range(len(symbols))]
        b.ret(b.call(kb.function, [ptrs[n]] + sym_vals + ptrs[:n]))
    text = str(module)
    jit = JitModule(text, target, opt_level)
    return [_caller(jit, f"run{k}", out_types, symbols)
            for k, (_, _, out_types) in enumerate(specs)], text


def _caller(jit, name, out_types, symbols):
    entry = _ENTRY(jit.address(name))

    def call(*arrays, **symbol_values):
        env = {s: int(symbol_values[s]) for s in symbols}
        outs = [np.empty(tuple(evaluate(d, env) for d in t.shape), t.dtype.np_dtype)
                for t in out_types]
        errinfo = np.zeros(4, np.int64)
        keep = [np.ascontiguousarray(a) for a in arrays] + outs + [errinfo]
        tab = (ctypes.c_void_p * len(keep))(*[a.ctypes.data for a in keep])
        sym_arr = (ctypes.c_int64 * max(1, len(symbols)))(*[env[s] for s in symbols])
        status = entry(ctypes.addressof(tab), ctypes.addressof(sym_arr))
        assert status == 0, f"kernel returned {status}, errinfo {errinfo}"
        return outs

    call.jit = jit                         # the engine must outlive the function pointer
    return call


def compile_kernel(emit, in_types, out_types, symbols=("N",), opt_level=2):
    (fn,), text = compile_kernels([(emit, in_types, out_types)], symbols, opt_level)
    return fn, text
