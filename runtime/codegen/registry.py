"""The lowering registry: op name -> how to emit native code for one node of that op.

Every op in `ir.all_ops()` must have an entry (a test asserts it), so an op cannot be half
added. A lowering's `emit(kb, node)` fills the body of one internal kernel function built by
a `KernelBuilder`: it reads `kb.inputs[i]` and writes `kb.outputs[j]` (Buffers) and may report
a runtime error through `kb.check`. Two optional facts let the buffer plan skip the kernel:
`view_of` (the output is the same bytes as input k, e.g. reshape) and `constant` (the output is
a compile-time array held in a read-only global). When the plan cannot use them (the value is a
returned graph output) it calls `emit`, which must then materialise the value.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

LOWERINGS: dict = {}


@dataclass(frozen=True)
class Lowering:
    op: str
    emit: Callable            # (KernelBuilder, Node) -> None
    view_of: Optional[int] = None
    constant: bool = False


def lowering(*ops: str, view_of: Optional[int] = None, constant: bool = False):
    """Decorator registering `emit` as the lowering of each op in `ops`."""
    def register(emit):
        for op in ops:
            if op in LOWERINGS:
                raise ValueError(f"op {op!r} has two lowerings")
            LOWERINGS[op] = Lowering(op, emit, view_of, constant)
        return emit
    return register
