"""Tables, target checks and the issue-6 section of benchmarks/RESULTS.md."""
from __future__ import annotations

import datetime
import os
import platform

from .placement import NEAR_NS

BEGIN, END = "<!-- BEGIN issue-6 benchmarks -->", "<!-- END issue-6 benchmarks -->"
# hand-written analysis inside the section, kept as it is when the tables are rewritten
NOTES_BEGIN, NOTES_END = "<!-- BEGIN issue-6 analysis -->", "<!-- END issue-6 analysis -->"


def _version(name):
    try:
        mod = __import__(name)
        return getattr(mod, "__version__", "?")
    except Exception:
        return "not installed"


def environment(busy: float) -> dict:
    import llvmlite
    import numpy as np
    from runtime.target import host_target
    t = host_target()
    blas = "unknown"
    try:
        from threadpoolctl import threadpool_info
        for info in threadpool_info():
            if info.get("user_api") == "blas":
                blas = (f"{info.get('internal_api')} {info.get('version')} "
                        f"({info.get('architecture')} kernels)")
    except ImportError:
        pass
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{model}, LLVM cpu {t.cpu}, {os.cpu_count()} CPUs, vector width "
                   f"{t.vector_width(4)} x f32",
        "python": platform.python_version(),
        "versions": {"numpy": np.__version__, "llvmlite": llvmlite.__version__,
                     "torch": _version("torch"), "jax": _version("jax"),
                     "onnxruntime": _version("onnxruntime")},
        "blas": blas,
        "openblas_env": {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
                         if k in os.environ},
        "busy": busy,
        "threads": os.environ.get("GRAPHC_NUM_THREADS"),
    }


def environment_text(env: dict) -> str:
    v = ", ".join(f"{k} {x}" for k, x in env["versions"].items())
    return (f"date: {env['date']}\nmachine: {env['machine']}\npython {env['python']}; {v}\n"
            f"numpy BLAS: {env['blas']}"
            + (f" (env {env['openblas_env']})" if env["openblas_env"] else "")
            + f"\nthreads: {env['threads']} everywhere; other processes used "
              f"{env['busy']:.0%} of the CPUs just before the run\n")


def _ns(v):
    return "?" if v is None else f"{v:.0f} ns"


def placement_line(name: str, seen: dict) -> str:
    """One line on where the two CPUs were around a workload block (benchmarks/placement.py)."""
    far = [v for v in (seen["ns"], seen["after"]) if v is not None and v >= NEAR_NS]
    text = (f"{name}: cache-line round trip between the CPUs {_ns(seen['ns'])} before, "
            f"{_ns(seen['after'])} after")
    if seen["waited"] >= 1:
        text += f" (waited {seen['waited']:.0f} s for the near placement)"
    if far:
        text += (f"; **the CPUs were far apart on the host (>= {NEAR_NS} ns) for part of "
                 "this block: every library's two-thread figures in it are slowed**")
    return text


def _time(s):
    return f"{s * 1e3:.3f} ms" if s >= 1e-3 else f"{s * 1e6:.1f} us"


def _rows(title, row, unit="time", base="graphc"):
    lines = [f"\n### {title}\n", "| peer | median | peer / graphc |", "|---|---|---|"]
    g = row.get(base)
    for peer, value in row.items():
        if unit == "time":
            ratio = f"{value / g:.2f}x" if g else "-"
            lines.append(f"| {peer} | {_time(value)} | {ratio} |")
        else:
            ratio = f"{g / value:.2f}x" if g else "-"
            lines.append(f"| {peer} | {value:.1f} {unit} | {ratio} |")
    return "\n".join(lines)


def table_w1(res):
    return _rows("W1: MLP 784-400-100-10 training step, batch 128, Adam", res[0])


def table_w3(res):
    return _rows("W3: LeNet-5 training step, batch 64, Adam", res[0])


def table_w2(res):
    return "\n".join(_rows(f"W2: MLP inference, batch {b}", row) for b, row in res.items())


def table_w4(res, peak):
    lines = ["\n### W4: square sgemm (GFLOP/s; fraction of the measured FMA peak)\n",
             "| size | threads | graphc | % of peak | numpy | PyTorch | JAX jit |",
             "|---|---|---|---|---|---|---|"]
    for (s, t), row in res.items():
        g = row["graphc"]
        cells = [f"{row[p]:.0f}" if p in row else "-" for p in ("numpy", "PyTorch", "JAX jit")]
        lines.append(f"| {s} | {t} | {g:.0f} | {g / peak[t]:.0%} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table_w5(res):
    lines = ["\n### W5: definition to first training-step result (fresh process)\n",
             "| workload | graphc cold | graphc warm cache | JAX jit |", "|---|---|---|---|"]
    for name, row in res.items():
        cells = [f"{row[k]:.3f} s" if k in row else "-"
                 for k in ("graphc cold", "graphc warm cache", "JAX jit")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _peer(row, prefix):
    for k, v in row.items():
        if k.startswith(prefix):
            return v
    return None


def targets(results) -> str:
    lines = ["\n### Targets (issue 6)\n", "| target | measured | met |", "|---|---|---|"]

    def add(name, measured, ok):
        lines.append(f"| {name} | {measured} | {'yes' if ok else 'NO'} |")

    if "W1" in results:
        row = results["W1"][0]
        g = row["graphc"]
        jx, pt = _peer(row, "JAX"), _peer(row, "PyTorch")
        if jx:
            add("W1 >= 1.7x faster than JAX jit", f"{jx / g:.2f}x", jx / g >= 1.7)
        if pt:
            add("W1 >= 2.5x faster than PyTorch eager", f"{pt / g:.2f}x", pt / g >= 2.5)
    if "W3" in results:
        row = results["W3"][0]
        pt = _peer(row, "PyTorch")
        if pt:
            r = pt / row["graphc"]
            add("W3 >= 3x faster than PyTorch eager", f"{r:.2f}x", r >= 3)
    if "W2" in results:
        for batch, need in ((1, 2.0), (128, 1.0)):
            row = results["W2"].get(batch, {})
            if "onnxruntime" in row:
                r = row["onnxruntime"] / row["graphc"]
                add(f"W2 batch {batch} >= {need:g}x onnxruntime", f"{r:.2f}x", r >= need)
    if "W4" in results:
        peak = results["peak"]
        for (s, t), row in results["W4"].items():
            if t == 1 and s >= 256:
                frac = row["graphc"] / peak[1]
                add(f"W4 {s} 1 thread >= 85% of peak", f"{frac:.0%}", frac >= 0.85)
            if t == 2:
                best = max((v for k, v in row.items() if k != "graphc"), default=0)
                add(f"W4 {s} 2 threads >= fastest peer", f"{row['graphc']:.0f} vs {best:.0f}",
                    row["graphc"] >= best)
    if "W5" in results:
        row = results["W5"].get("W1 MLP", {})
        if "JAX jit" in row:
            add("W5 W1 cold compile <= JAX first result",
                f"{row['graphc cold']:.2f} s vs {row['JAX jit']:.2f} s",
                row["graphc cold"] <= row["JAX jit"])
        if "graphc warm cache" in row:
            add("W5 W1 warm cache < 0.15 s", f"{row['graphc warm cache']:.3f} s",
                row["graphc warm cache"] < 0.15)
    return "\n".join(lines)


def write_results(env, results, target_text, command) -> str:
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")
    parts = [BEGIN, "## Issue 6: native code against the peers", "",
             f"Command: `{command}` (from the repository root)", "", "```",
             environment_text(env).rstrip(), "```"]
    if env["busy"] > 0.10:
        parts.append(f"\n**Warning: other processes used {env['busy']:.0%} of the CPUs when this "
                     "run started (the harness waited two minutes for quiet). Every figure below, "
                     "the peak included, is depressed and noisy; it is not a measurement of "
                     "graphc or its peers on an idle machine.**")
    peak = results["peak"]
    parts.append(f"\nFP32 FMA peak measured on this machine: {peak[1]:.0f} GFLOP/s on one "
                 f"thread, {peak[2]:.0f} on two.")
    if "W1" in results:
        parts.append(table_w1(results["W1"]))
    if "W2" in results:
        parts.append(table_w2(results["W2"]))
    if "W3" in results:
        parts.append(table_w3(results["W3"]))
    if "W4" in results:
        parts.append(table_w4(results["W4"], peak))
    if "W5" in results:
        parts.append(table_w5(results["W5"]))
    seen = results.get("placement", {})
    if seen:
        parts.append("\n### Where the two CPUs were (benchmarks/placement.py)\n")
        parts.append("\n".join(f"- {placement_line(w, v)}" for w, v in seen.items()))
    parts.append(target_text)
    old = ""
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
    if NOTES_BEGIN in old and NOTES_END in old:
        notes = old.split(NOTES_BEGIN, 1)[1].split(NOTES_END, 1)[0]
        parts.append("\n" + NOTES_BEGIN + notes + NOTES_END)
    parts.append(END)
    section = "\n".join(parts) + "\n"
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        new = head + section.rstrip("\n") + tail
    else:
        new = (old.rstrip("\n") + "\n\n" if old else "# graphc benchmark results\n\n") + section
    with open(path, "w") as f:
        f.write(new)
    return path
