"""The machine's FP32 FMA peak, measured: a register-only loop of independent `<W x float>`
FMAs (W from graphc's target), on one thread and on two (two Python threads calling the
native loop through ctypes, which releases the GIL)."""
from __future__ import annotations

import ctypes
import threading
import time

import llvmlite.binding as llvm

from runtime.target import LLVM_LOCK, host_target, initialise_llvm

CHAINS = 16


def _peak_ir(width: int) -> str:
    vt = f"<{width} x float>"
    one = f"<{', '.join(['float 1.0'] * width)}>"
    small = f"<{', '.join(['float 0.0'] * width)}>"
    lines = [f"declare {vt} @llvm.fma.v{width}f32({vt}, {vt}, {vt})",
             "define float @peak(i64 %n) {", "entry:", "  br label %loop", "loop:",
             "  %i = phi i64 [0, %entry], [%i2, %loop]"]
    lines += [f"  %a{k} = phi {vt} [zeroinitializer, %entry], [%b{k}, %loop]"
              for k in range(CHAINS)]
    lines += [f"  %b{k} = call {vt} @llvm.fma.v{width}f32({vt} %a{k}, {vt} {one}, {vt} {small})"
              for k in range(CHAINS)]
    lines += ["  %i2 = add i64 %i, 1", "  %c = icmp slt i64 %i2, %n",
              "  br i1 %c, label %loop, label %done", "done:"]
    acc = "%b0"
    for k in range(1, CHAINS):
        lines.append(f"  %s{k} = fadd {vt} {acc}, %b{k}")
        acc = f"%s{k}"
    lines += [f"  %r = extractelement {vt} {acc}, i32 0", "  ret float %r", "}"]
    return "\n".join(lines)


def measure_peak(seconds: float = 0.3) -> dict:
    """{threads: GFLOP/s} for 1 and 2 threads (best of a few runs)."""
    initialise_llvm()
    target = host_target()
    width = target.vector_width(4)
    with LLVM_LOCK:
        mod = llvm.parse_assembly(_peak_ir(width))
        engine = llvm.create_mcjit_compiler(mod, target.create_target_machine(2))
        engine.finalize_object()
        fn = ctypes.CFUNCTYPE(ctypes.c_float, ctypes.c_int64)(engine.get_function_address("peak"))
    flops_per_iter = CHAINS * width * 2
    n = 1_000_000
    t0 = time.perf_counter()
    fn(n)
    n = max(n, int(n * seconds / max(1e-6, time.perf_counter() - t0)))
    out = {}
    for threads in (1, 2):
        best = 0.0
        for _ in range(3):
            workers = [threading.Thread(target=fn, args=(n,)) for _ in range(threads)]
            t0 = time.perf_counter()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            best = max(best, threads * n * flops_per_iter / (time.perf_counter() - t0) / 1e9)
        out[threads] = best
    out["engine"] = engine                     # keep the code alive while fn may be used
    return out
