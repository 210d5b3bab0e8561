"""Codegen: graph nodes -> LLVM IR (llvmlite.ir), one module per compiled graph.

Importing this package registers a lowering for every primitive in LOWERINGS, grouped by
family: elementwise (and element generators), movement, reduce, matmul, conv, pool, random.
The module builder (module_builder.py) is imported by runtime.compile, not here, to keep the
import graph acyclic (the buffer plan reads LOWERINGS).
"""
from . import conv, elementwise, matmul, movement, pool, random, reduce  # noqa: F401  (register)
from . import fused  # noqa: F401,E402  (fused groups: after the kernels it composes)
from .registry import LOWERINGS, Lowering, lowering
from .scalar import SCALAR_EMITTERS

__all__ = ["LOWERINGS", "Lowering", "lowering", "SCALAR_EMITTERS"]
