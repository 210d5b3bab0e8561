"""The SSA graph: Values, Nodes and Graphs.

A `Graph` is a function: typed inputs (each with a role: data `input`, trainable `param`, or
non-trainable `state`), a topologically ordered list of `Node`s, and named outputs. Every
`Value` is defined exactly once, by a graph input or by one node output. An output may be
marked as the new value of an input (`aliases`: output name -> input name): that is how a
training step returns updated parameters that the runtime writes back in place.

Passes never mutate their input graph: they `clone()` it (cheap; constant arrays are shared,
being immutable by convention) and edit the clone.
"""
from __future__ import annotations

from typing import Iterable, Optional

import numpy as np

from .errors import GraphcError
from .location import UNKNOWN
from .types import TensorType

INPUT_ROLES = ("input", "param", "state")


class Value:
    """An SSA value. `producer` is the defining Node (None for graph inputs)."""

    __slots__ = ("name", "type", "producer", "index", "role")

    def __init__(self, name: str, type: TensorType, producer=None, index: int = 0,
                 role: Optional[str] = None):
        self.name = name
        self.type = type
        self.producer = producer
        self.index = index
        self.role = role

    @property
    def shape(self):
        return self.type.shape

    @property
    def dtype(self):
        return self.type.dtype

    @property
    def is_graph_input(self) -> bool:
        return self.producer is None

    def __repr__(self):
        return f"%{self.name}: {self.type}"


class Node:
    """One op application: `outputs = op(inputs) {attrs}` at `loc`."""

    __slots__ = ("op", "inputs", "attrs", "outputs", "loc")

    def __init__(self, op: str, inputs: list, attrs: dict, outputs: list, loc=UNKNOWN):
        self.op = op
        self.inputs = list(inputs)
        self.attrs = dict(attrs)
        self.outputs = list(outputs)
        self.loc = loc

    @property
    def output(self) -> Value:
        """The single output of a one-output node."""
        if len(self.outputs) != 1:
            raise GraphcError(f"node {self.op} has {len(self.outputs)} outputs, not one")
        return self.outputs[0]

    def __repr__(self):
        outs = ", ".join(f"%{v.name}" for v in self.outputs)
        ins = ", ".join(f"%{v.name}" for v in self.inputs)
        return f"<Node {outs} = {self.op}({ins})>"


class Graph:
    def __init__(self, name: str = "main"):
        self.name = name
        self.inputs: list[Value] = []
        self.nodes: list[Node] = []
        self.outputs: list[Value] = []
        self.output_names: list[str] = []
        self.aliases: dict[str, str] = {}           # output name -> input name it updates
        self.initializers: dict[str, np.ndarray] = {}  # initial values of param/state inputs
        self._next_id = 0

    # -- construction -------------------------------------------------------------------------
    def fresh_name(self, hint: Optional[str] = None) -> str:
        """A value name not used in this graph: `hint` if given and free, else a new number.

        Numbered names come from a counter that stays above every numeric name in the graph
        (`reserve_names` re-syncs it after values were named by hand, e.g. by the parser)."""
        if hint:
            used = self._used_names()
            if hint not in used:
                return hint
            n = 1
            while f"{hint}.{n}" in used:
                n += 1
            return f"{hint}.{n}"
        name = str(self._next_id)
        self._next_id += 1
        return name

    def reserve_names(self) -> None:
        """Move the numbering counter past every numeric value name already in the graph."""
        numeric = [int(n) for n in self._used_names() if n.isdigit()]
        self._next_id = max([self._next_id] + [n + 1 for n in numeric])

    def _used_names(self) -> set:
        names = {v.name for v in self.inputs}
        for node in self.nodes:
            names.update(v.name for v in node.outputs)
        return names

    def add_input(self, name: str, type: TensorType, role: str = "input",
                  initializer: Optional[np.ndarray] = None) -> Value:
        if role not in INPUT_ROLES:
            raise GraphcError(f"input role must be one of {INPUT_ROLES}, found {role!r}")
        if name in self._used_names():
            raise GraphcError(f"graph {self.name!r} already has a value named %{name}")
        v = Value(name, type, None, len(self.inputs), role)
        self.inputs.append(v)
        if initializer is not None:
            self.initializers[name] = initializer
        return v

    def add_output(self, value: Value, name: Optional[str] = None, updates: Optional[str] = None):
        name = name or f"out{len(self.outputs)}"
        if name in self.output_names:
            raise GraphcError(f"graph {self.name!r} already has an output named {name!r}")
        self.outputs.append(value)
        self.output_names.append(name)
        if updates is not None:
            self.aliases[name] = updates

    # -- queries ------------------------------------------------------------------------------
    def input(self, name: str) -> Value:
        for v in self.inputs:
            if v.name == name:
                return v
        raise GraphcError(f"graph {self.name!r} has no input named {name!r}; inputs are "
                          f"{[v.name for v in self.inputs]}")

    def inputs_with_role(self, role: str) -> list[Value]:
        return [v for v in self.inputs if v.role == role]

    def output(self, name: str) -> Value:
        try:
            return self.outputs[self.output_names.index(name)]
        except ValueError:
            raise GraphcError(f"graph {self.name!r} has no output named {name!r}; outputs are "
                              f"{self.output_names}") from None

    def values(self) -> Iterable[Value]:
        yield from self.inputs
        for node in self.nodes:
            yield from node.outputs

    def users(self) -> dict:
        """Map Value -> list of Nodes that use it (in node order, repeats kept once)."""
        out: dict = {v: [] for v in self.values()}
        for node in self.nodes:
            seen = set()
            for v in node.inputs:
                if id(v) not in seen:
                    out.setdefault(v, []).append(node)
                    seen.add(id(v))
        return out

    def symbols(self) -> set[str]:
        """Names of the symbolic dims the graph's inputs use."""
        out: set[str] = set()
        for v in self.inputs:
            out |= v.type.symbols()
        return out

    # -- copying ------------------------------------------------------------------------------
    def clone(self) -> "Graph":
        """A copy with new Value/Node objects (same names); attr arrays are shared."""
        g = Graph(self.name)
        vmap = {}
        for v in self.inputs:
            nv = Value(v.name, v.type, None, v.index, v.role)
            g.inputs.append(nv)
            vmap[v] = nv
        for node in self.nodes:
            outs = [Value(o.name, o.type, None, o.index) for o in node.outputs]
            nn = Node(node.op, [vmap[i] for i in node.inputs], node.attrs, outs, node.loc)
            for o_old, o_new in zip(node.outputs, outs):
                o_new.producer = nn
                vmap[o_old] = o_new
            g.nodes.append(nn)
        g.outputs = [vmap[v] for v in self.outputs]
        g.output_names = list(self.output_names)
        g.aliases = dict(self.aliases)
        g.initializers = dict(self.initializers)
        g._next_id = self._next_id
        return g

    def replace_all_uses(self, old: Value, new: Value) -> None:
        """Point every use of `old` (node inputs and graph outputs) at `new`."""
        for node in self.nodes:
            if any(v is old for v in node.inputs):
                node.inputs = [new if v is old else v for v in node.inputs]
        self.outputs = [new if v is old else v for v in self.outputs]

    def __str__(self) -> str:
        from .printer import print_graph   # printer imports graph; import lazily
        return print_graph(self)

    def __repr__(self) -> str:
        return (f"<Graph {self.name!r}: {len(self.inputs)} inputs, {len(self.nodes)} nodes, "
                f"{len(self.outputs)} outputs>")
