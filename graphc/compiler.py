"""`graphc.compile`: the compiler driver (graph -> passes -> native code -> Executable).

    exe = graphc.compile(graph)                  # or a @graphc.function
    exe = graphc.compile(graph, pipeline="shape-infer,dce", opt_level=3)

The pass pipeline runs first (`run_passes` / `optimize_graph`: the default pipeline of the optimisation
level, passes/pipelines.py, or the caller's), then the runtime compiles the final graph
(runtime.compile_graph, cached by structural hash + target + options) and wraps it in an
Executable, the call boundary that checks every argument.
"""
from __future__ import annotations

from typing import Optional

from ir import CompileError
from ir.graph import Graph
from runtime import Executable, compile_graph

def run_passes(graph: Graph, pipeline: Optional[str] = None, opt_level: int = 2,
               fast_math: bool = False):
    """Run `pipeline` (None: the default pipeline of `opt_level`, passes/pipelines.py) over
    `graph`; returns the PassResult (`.graph`, `.records` with every pass's statistics)."""
    from passes import PassManager, pipeline_for
    from passes.manager import PassResult
    text = pipeline_for(opt_level, fast_math) if pipeline is None else pipeline
    if not text.strip():
        return PassResult(graph, [], "")
    return PassManager(text).run(graph)


def optimize_graph(graph: Graph, pipeline: Optional[str] = None, opt_level: int = 2,
                   fast_math: bool = False) -> Graph:
    """The optimised graph: `run_passes(...).graph`."""
    return run_passes(graph, pipeline, opt_level, fast_math).graph


def as_graph(obj) -> Graph:
    """Accept an ir.Graph or anything exposing one as `.graph` (a traced @graphc.function)."""
    if isinstance(obj, Graph):
        return obj
    graph = getattr(obj, "graph", None)
    if isinstance(graph, Graph):
        return graph
    raise CompileError(f"graphc.compile expects an ir.Graph or a @graphc.function, found "
                       f"{type(obj).__name__}")


def compile(graph, opt_level: int = 2, pipeline: Optional[str] = None,
            cache: bool = True, fast_math: bool = False,
            llvm_opt_level: Optional[int] = None) -> Executable:
    """Compile `graph` to native code for this machine and return its Executable.

    opt_level 0-3 (2 by default) picks the graph pass pipeline (-O0 none, -O1 cleanup, -O2
    and -O3 everything: passes/pipelines.py) and LLVM's optimisation level (unless
    `llvm_opt_level` says otherwise); `pipeline` replaces the level's pipeline with explicit
    pass text (e.g. "shape-infer,dce"); `fast_math` enables simplify's fast-math rules;
    cache: reuse code compiled earlier in this process for a structurally equal graph.
    The Executable exposes the optimised graph (`exe.graph`), the pass records
    (`exe.optimization`) and the number of kernels a call runs (`exe.kernel_count`)."""
    if opt_level not in (0, 1, 2, 3):
        raise CompileError(f"opt_level must be 0, 1, 2 or 3, found {opt_level!r}")
    result = run_passes(as_graph(graph), pipeline, opt_level, fast_math)
    g = result.graph
    llvm_level = opt_level if llvm_opt_level is None else llvm_opt_level
    exe = Executable(compile_graph(g, opt_level=llvm_level, cache=cache), g)
    exe.optimization = result
    return exe
