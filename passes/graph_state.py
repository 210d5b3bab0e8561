"""A graph as a pipeline saw it at one moment, with its structural hash computed only on request.

The PassManager checks that no pass mutated its input and records, per pass, the structural
hashes before and after and whether the graph changed. Hashing a training step's graph costs
~2 ms (its nested fused graphs and weight digests included), and a compile asks for none of
these hashes: they matter to instruments, reports and tests that read them. So a GraphState
keeps, instead of a hash, the FACTS of its graph: a flat list of the objects the graph is
made of (values, nodes, op names, attribute values, types, arrays), in order, with private
markers between the parts. Taking them costs a fraction of a hash, and

- `holds()`: the graph still has the same facts (compared by object identity), so its
  structural hash is unchanged (the leaves are immutable: str, int, float, types, dims,
  tuples of those, read-only arrays over read-only memory; see `_leaf`);
- `hash`: the structural hash of the graph as it was, computed on first request: from the
  graph itself while its facts hold, else from a graph rebuilt from the facts (the leaves
  are the original objects, so the rebuilt graph has the same structural facts).

A graph with a leaf that could change in place unseen (a writeable array, an attribute of
an unknown type) has no facts: its hash is computed at once, as without this module. A
read-only array made writeable, edited and made read-only again between two looks is not
seen (no pass does this by accident: writing to a read-only array raises).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ir import Graph
from ir.dtypes import DType
from ir.equality import is_immutable_array, structural_hash
from ir.graph import Node, Value
from ir.symbolic import SymDim
from ir.types import TensorType


class _Marker:
    """A separator in a list of facts, found by identity: one object per kind, also after
    copy.deepcopy or pickling (both resolve it by its module-level name)."""
    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"

    def __reduce__(self) -> str:
        return self.name


_GRAPH, _NODES, _NODE, _ATTRS, _OUTS = (_Marker(n) for n in ("_GRAPH", "_NODES", "_NODE",
                                                           "_ATTRS", "_OUTS"))
_RESULTS, _NAMES, _ALIASES, _INITS, _END = (_Marker(n) for n in ("_RESULTS", "_NAMES",
                                                               "_ALIASES", "_INITS", "_END"))
_TUPLE, _LIST, _ARRAY = _Marker("_TUPLE"), _Marker("_LIST"), _Marker("_ARRAY")

# leaves that cannot change in place (numpy scalars are checked separately)
_ATOMS = frozenset({int, float, bool, str, type(None), SymDim, DType, TensorType})


class _Inexact(Exception):
    """The graph holds a leaf that could change in place unseen."""


class GraphState:
    """`graph` as it is now; `hash` is its structural hash (computed at first request, or
    given when already known)."""

    __slots__ = ("graph", "_facts", "_hash")

    def __init__(self, graph: Graph, hash: Optional[str] = None):
        self.graph = graph
        self._hash = hash
        self._facts = facts_of(graph)
        if self._facts is None and hash is None:
            self._hash = structural_hash(graph)

    def holds(self) -> bool:
        """Whether the graph still is in this state (False also when it cannot be told)."""
        if self._facts is None:
            return False
        now = facts_of(self.graph)
        return now is not None and len(now) == len(self._facts) and \
            list(map(id, now)) == list(map(id, self._facts))

    @property
    def hash(self) -> str:
        if self._hash is None:
            graph = self.graph if self.holds() else rebuild(self._facts)
            self._hash = structural_hash(graph)
        return self._hash


def facts_of(graph: Graph) -> Optional[list]:
    """The objects `graph` is made of, in order (None if one of them could change unseen)."""
    out: list = []
    try:
        _graph(graph, out)
    except _Inexact:
        return None
    return out


def _graph(g: Graph, out: list) -> None:
    add, extend = out.append, out.extend
    add(_GRAPH)
    for v in g.inputs:
        extend((v, v.name, v.type, v.role))   # names: aliases and initializers refer to them
    add(_NODES)
    for node in g.nodes:
        extend((_NODE, node, node.op))
        extend(node.inputs)
        add(_ATTRS)
        for key, value in node.attrs.items():
            add(key)
            if type(value) in _ATOMS:
                add(value)
            else:
                _leaf(value, out)
        add(_OUTS)
        for o in node.outputs:
            extend((o, o.type))
    add(_RESULTS)
    extend(g.outputs)
    add(_NAMES)
    extend(g.output_names)
    add(_ALIASES)
    for item in g.aliases.items():
        extend(item)
    add(_INITS)
    for name, arr in g.initializers.items():
        add(name)
        _leaf(arr, out)
    add(_END)


def _leaf(value, out: list) -> None:
    t = type(value)
    if t in _ATOMS or isinstance(value, np.generic):
        out.append(value)
    elif t is tuple:
        if all(type(x) in _ATOMS for x in value):
            out.append(value)
        else:
            out.append(_TUPLE)
            for x in value:
                _leaf(x, out)
            out.append(_END)
    elif t is list:
        out.append(_LIST)
        for x in value:
            _leaf(x, out)
        out.append(_END)
    elif isinstance(value, np.ndarray):
        if not is_immutable_array(value):
            raise _Inexact
        out.extend((_ARRAY, value))
    elif isinstance(value, Graph):
        _graph(value, out)
    else:
        raise _Inexact


# -- the graph back from its facts ----------------------------------------------------------------
def rebuild(facts: list) -> Graph:
    """A graph structurally equal to the one `facts` were taken from, as it was then."""
    graph, end = _rebuild_graph(facts, 0)
    assert end == len(facts)
    return graph


def _rebuild_graph(f: list, i: int):
    assert f[i] is _GRAPH
    i += 1
    g = Graph("rebuilt")
    values: dict = {}

    def value(v):
        # a value the graph does not define (an invalid graph) is hashed by its name
        return values.get(id(v), v)

    while f[i] is not _NODES:
        v, name, typ, role = f[i:i + 4]
        i += 4
        nv = values.get(id(v))
        if nv is None:
            nv = values[id(v)] = Value(name, typ, None, len(g.inputs), role)
        g.inputs.append(nv)
    i += 1
    while f[i] is _NODE:
        op = f[i + 2]
        i += 3
        inputs = []
        while f[i] is not _ATTRS:
            inputs.append(f[i])
            i += 1
        i += 1
        attrs = {}
        while f[i] is not _OUTS:
            key = f[i]
            attrs[key], i = _rebuild_leaf(f, i + 1)
        i += 1
        outs = []
        while f[i] is not _NODE and f[i] is not _RESULTS:
            o, typ = f[i], f[i + 1]
            i += 2
            no = values.get(id(o))
            if no is None:
                no = values[id(o)] = Value(str(len(values)), typ, None, len(outs))
            outs.append(no)
        node = Node(op, [value(v) for v in inputs], attrs, outs)
        for o in outs:
            o.producer = node
        g.nodes.append(node)
    assert f[i] is _RESULTS
    i += 1
    while f[i] is not _NAMES:
        g.outputs.append(value(f[i]))
        i += 1
    i += 1
    while f[i] is not _ALIASES:
        g.output_names.append(f[i])
        i += 1
    i += 1
    while f[i] is not _INITS:
        g.aliases[f[i]] = f[i + 1]
        i += 2
    i += 1
    while f[i] is not _END:
        name = f[i]
        g.initializers[name], i = _rebuild_leaf(f, i + 1)
    return g, i + 1


def _rebuild_leaf(f: list, i: int):
    x = f[i]
    if x is _GRAPH:
        return _rebuild_graph(f, i)
    if x is _ARRAY:
        return f[i + 1], i + 2
    if x is _TUPLE or x is _LIST:
        items = []
        i += 1
        while f[i] is not _END:
            item, i = _rebuild_leaf(f, i)
            items.append(item)
        return (tuple(items) if x is _TUPLE else items), i + 1
    return x, i + 1
