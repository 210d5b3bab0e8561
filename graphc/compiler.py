"""`graphc.compile`: the compiler driver (graph -> passes -> native code -> Executable).

    exe = graphc.compile(graph)                  # or a @graphc.function
    exe = graphc.compile(graph, pipeline="shape-infer,dce", opt_level=3)

The pass pipeline runs first (`optimize_graph`, the hook where the default optimisation
pipeline will go once the passes exist), then the runtime compiles the final graph
(runtime.compile_graph, cached by structural hash + target + options) and wraps it in an
Executable, the call boundary that checks every argument.
"""
from __future__ import annotations

from typing import Optional

from ir import CompileError
from ir.graph import Graph
from runtime import Executable, compile_graph

# The pipeline run when the caller does not choose one. Empty for now: the pass engineers add
# "simplify,cse,dce,fuse,plan-memory" here as those passes land.
DEFAULT_PIPELINE = ""


def optimize_graph(graph: Graph, pipeline: Optional[str] = None) -> Graph:
    """Run the textual pass `pipeline` (None -> DEFAULT_PIPELINE) over `graph`."""
    text = DEFAULT_PIPELINE if pipeline is None else pipeline
    if not text.strip():
        return graph
    from passes import run_pipeline   # imported lazily: compiling needs no passes by default
    return run_pipeline(graph, text)


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
            cache: bool = True) -> Executable:
    """Compile `graph` to native code for this machine and return its Executable.

    opt_level: LLVM optimisation level 0-3 (2 by default); pipeline: graph passes to run
    first (textual, e.g. "shape-infer,dce"); cache: reuse code compiled earlier in this
    process for a structurally equal graph."""
    g = optimize_graph(as_graph(graph), pipeline)
    return Executable(compile_graph(g, opt_level=opt_level, cache=cache), g)
