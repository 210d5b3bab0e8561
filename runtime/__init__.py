"""graphc's runtime: codegen to LLVM IR, JIT compilation, and the Executable call boundary.

`runtime` imports `ir` (never graphc or the front end). Entry points:
    compile_graph(graph, opt_level=2) -> CompiledGraph     (cached native code)
    Executable(compiled, graph)                            (the call boundary)
    host_target()                                          (CPU name, features, vector width)
"""
from .compile import COMPILE_CACHE, CompiledGraph, compile_graph
from .executable import Executable, ExecutionError
from .target import Target, host_target

__all__ = ["COMPILE_CACHE", "CompiledGraph", "compile_graph", "Executable", "ExecutionError",
           "Target", "host_target"]
