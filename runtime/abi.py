"""The native calling convention of a compiled graph (what a C caller would see).

Each module exports two functions:

    int32_t graphc_entry(void **args, const int64_t *symbols);
    int64_t graphc_arena_bytes(const int64_t *symbols);

`symbols` holds one int64 per symbolic dim, in `plan.symbols` order (first appearance as the
plain size of an axis of a data input). `args` is the argument table, in this fixed order:

    [0, I)            data inputs (role "input"), in graph input order; read only
    [I, I+O)          returned outputs (graph outputs that do not update a parameter), in
                      graph output order; contiguous, element-aligned, caller-allocated
    [I+O, I+O+P)      params and state (roles "param"/"state"), in graph input order; 64-byte
                      aligned; outputs that update them (graph.aliases) are written in place
    I+O+P             the arena: 64-byte aligned, graphc_arena_bytes(symbols) bytes, scratch
    I+O+P+1           error info: int64[4], written only when the entry fails

Every array is dense row-major with the shape its graph type gives under the symbol binding.
The entry returns 0 on success, or k > 0 when node k-1 of the graph failed at run time; then
errinfo holds (kind, value, bound, axis); kind 1 = index out of range (gather), kind 2 =
empty axis (argmax).
"""
from __future__ import annotations

from dataclasses import dataclass

ENTRY_NAME = "graphc_entry"
ARENA_BYTES_NAME = "graphc_arena_bytes"
ERRINFO_WORDS = 4


@dataclass(frozen=True)
class ArgTable:
    """Positions of each group of pointers in the argument table."""
    n_inputs: int
    n_outputs: int
    n_params: int

    def input(self, k: int) -> int:
        return k

    def output(self, k: int) -> int:
        return self.n_inputs + k

    def param(self, k: int) -> int:
        return self.n_inputs + self.n_outputs + k

    @property
    def arena(self) -> int:
        return self.n_inputs + self.n_outputs + self.n_params

    @property
    def errinfo(self) -> int:
        return self.arena + 1

    @property
    def size(self) -> int:
        return self.arena + 2
