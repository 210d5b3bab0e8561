"""Structural equality and hashing of graphs (alpha-equivalence).

Two graphs are structurally equal when they compute the same thing in the same way: same input
types and roles, same nodes (op, operands, attributes, result types) in the same order, same
outputs, output names, aliases and initializers. Values are matched by their position of
definition (inputs first, then node outputs in order), not by name, so renaming values keeps a
graph equal; value names and the graph's name are compared only with `check_names`, locations
only with `check_locs`.

Attributes compare exactly: floats bit for bit (so NaN equals NaN with the same bits and -0.0
differs from 0.0), arrays by dtype, shape and bytes, nested graphs recursively.

`structural_hash` hashes exactly the facts `structural_equal` compares by default (names and
locations excluded), so equal graphs hash equal. Because names are excluded, a cache keyed by
the hash must still map input/output *value names* itself if it exposes them (output names are
part of the hash).
"""
from __future__ import annotations

import hashlib
import struct
import weakref
from typing import Iterator, NamedTuple, Optional

import numpy as np

from .dtypes import DType
from .graph import Graph
from .location import FusedLoc, Loc
from .symbolic import SymDim, format_dim

# What kind of fact an item records: STRUCT facts are always compared and hashed; NAME and LOC
# facts only when asked for, and never hashed.
STRUCT, NAME, LOC = "struct", "name", "loc"


class _Item(NamedTuple):
    kind: str
    where: str      # e.g. "node 3 (%5 = matmul)"
    what: str       # e.g. "attribute 'axes'"
    key: object     # canonical, hashable, repr-stable encoding of the fact
    raw: object     # the original value, for messages


# -- canonical encodings ----------------------------------------------------------------------
def _float_bits(x: float) -> str:
    return struct.pack("<d", float(x)).hex()


def _array_key(arr: np.ndarray) -> tuple:
    arr = np.asarray(arr)
    native = arr.astype(arr.dtype.newbyteorder("="), copy=False)
    return ("tensor", native.dtype.str, tuple(arr.shape), _digest(native))


# Digests of array bytes, remembered per array object: graphs are hashed many times (the
# pass manager hashes before and after every pass) and hashing the weights each time cost
# more than the passes. Only arrays nothing can edit in place are remembered: read-only, and
# every array they view read-only too, down to memory they or an immutable bytes object own
# (attribute tensors, traced and parsed initializers). A writeable array is hashed in full
# every time. An entry is used only while the object is alive and its address, dtype, shape,
# strides and a sample of its bytes are unchanged (a guard against a deliberate
# `setflags(write=True)` edit).
_DIGESTS: dict = {}
SKETCH_BYTES = 4096
_MIN_CACHED = 65536                  # smaller arrays are cheaper to hash than to sketch


def is_immutable_array(arr: np.ndarray) -> bool:
    """Read-only, and so is every array it views, down to memory it owns or a bytes object:
    its contents cannot change without someone making it writeable on purpose."""
    base = arr
    while isinstance(base, np.ndarray):
        if base.flags.writeable:
            return False
        base = base.base
    return base is None or isinstance(base, bytes)


def _digest(native: np.ndarray) -> str:
    data = np.ascontiguousarray(native)
    if data.nbytes < _MIN_CACHED or not is_immutable_array(native):
        return hashlib.sha256(data.tobytes()).hexdigest()
    flat = data.reshape(-1).view(np.uint8)
    step = max(1, flat.size // SKETCH_BYTES)
    sketch = hashlib.sha256(flat[::step].tobytes() + flat[-64:].tobytes()).digest()
    ident = (data.__array_interface__["data"][0], data.dtype.str, data.shape, data.strides,
             sketch)
    found = _DIGESTS.get(id(native))
    if found is not None and found[0]() is native and found[1] == ident:
        return found[2]
    digest = hashlib.sha256(data.tobytes()).hexdigest()
    try:
        ref = weakref.ref(native, lambda _, k=id(native): _DIGESTS.pop(k, None))
    except TypeError:                # not weak-referenceable: no caching
        return digest
    _DIGESTS[id(native)] = (ref, ident, digest)
    return digest


def _loc_key(loc) -> tuple:
    if isinstance(loc, FusedLoc):
        return ("fused",) + tuple(_loc_key(p) for p in loc.parts)
    if loc is None or not loc:
        return ("unknown",)
    return ("loc", loc.file, loc.line if loc.file is not None else None, loc.path or None)


def attr_key(value, check_names: bool = False, check_locs: bool = False):
    """Canonical encoding of an attribute value (type-tagged, floats bit-exact)."""
    if isinstance(value, (bool, np.bool_)):
        return ("b", bool(value))
    if isinstance(value, (int, np.integer)):
        return ("i", int(value))
    if isinstance(value, (float, np.floating)):
        return ("f", _float_bits(value))
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, SymDim):
        return ("d", format_dim(value))
    if isinstance(value, DType):
        return ("t", value.name)
    if isinstance(value, np.ndarray):
        return _array_key(value)
    if isinstance(value, Graph):
        if not check_names and not check_locs:      # the STRUCT facts only (the same keys)
            return ("graph",) + tuple(it.key for it in _struct_keys(value))
        items = _items(value, check_names, check_locs)
        return ("graph",) + tuple(it.key for it in items
                                  if it.kind == STRUCT or (it.kind == NAME and check_names)
                                  or (it.kind == LOC and check_locs))
    if isinstance(value, (tuple, list)):
        return ("seq",) + tuple(attr_key(v, check_names, check_locs) for v in value)
    if value is None:
        return ("none",)
    return ("other", type(value).__name__, repr(value))


def _type_key(t) -> tuple:
    return (t.dtype.name,) + tuple(format_dim(d) for d in t.shape)


# -- the list of facts a graph is made of -----------------------------------------------------
def _items(g: Graph, check_names: bool, check_locs: bool) -> list:
    return list(_iter_items(g, check_names, check_locs))


def _iter_items(g: Graph, check_names: bool, check_locs: bool,
                hashing: bool = False) -> Iterator[_Item]:
    """The facts of `g`. `hashing`: only STRUCT facts, without the words and raw values
    messages need (structural_hash runs this many times; building them was most of it)."""
    if hashing:
        yield from _struct_keys(g)
        return
    position = {}
    for v in g.values():
        position.setdefault(id(v), len(position))
    input_pos = {v.name: i for i, v in enumerate(g.inputs)}

    def ref(v):
        p = position.get(id(v))
        return ("v", p) if p is not None else ("undefined", getattr(v, "name", repr(v)))

    yield _Item(NAME, "graph", "name", g.name, g.name)
    yield _Item(STRUCT, "graph", "number of inputs", len(g.inputs), len(g.inputs))
    yield _Item(STRUCT, "graph", "number of nodes", len(g.nodes), len(g.nodes))
    yield _Item(STRUCT, "graph", "number of outputs", len(g.outputs), len(g.outputs))
    for i, v in enumerate(g.inputs):
        where = f"input {i} (%{v.name})"
        yield _Item(STRUCT, where, "type", _type_key(v.type), v.type)
        yield _Item(STRUCT, where, "role", v.role or "input", v.role or "input")
        yield _Item(NAME, where, "name", v.name, v.name)
    for n, node in enumerate(g.nodes):
        outs = ", ".join(f"%{o.name}" for o in node.outputs)
        where = f"node {n} ({outs} = {node.op})"
        yield _Item(STRUCT, where, "op", node.op, node.op)
        yield _Item(STRUCT, where, "operands", tuple(ref(v) for v in node.inputs),
                    ", ".join(f"%{v.name}" for v in node.inputs))
        yield _Item(STRUCT, where, "attribute names", tuple(sorted(node.attrs)),
                    sorted(node.attrs))
        for name in sorted(node.attrs):
            value = node.attrs[name]
            key = attr_key(value, check_names, check_locs)
            yield _Item(STRUCT, where, f"attribute {name!r}", key, value)
        yield _Item(STRUCT, where, "result types", tuple(_type_key(o.type) for o in node.outputs),
                    ", ".join(str(o.type) for o in node.outputs))
        yield _Item(NAME, where, "result names", tuple(o.name for o in node.outputs),
                    ", ".join(o.name for o in node.outputs))
        yield _Item(LOC, where, "location", _loc_key(node.loc), node.loc)
    for i, (v, name) in enumerate(zip(g.outputs, g.output_names)):
        where = f"output {i} ({name!r})"
        yield _Item(STRUCT, where, "value", ref(v), f"%{v.name}")
        yield _Item(STRUCT, where, "name", name, name)
    aliases = tuple(sorted((out, ("input", input_pos[inp]) if inp in input_pos
                            else ("missing", inp)) for out, inp in g.aliases.items()))
    yield _Item(STRUCT, "graph", "aliases", aliases, dict(g.aliases))
    inits = []
    for name, arr in g.initializers.items():
        target = ("input", input_pos[name]) if name in input_pos else ("missing", name)
        inits.append((target, _array_key(arr)))
    yield _Item(STRUCT, "graph", "initializers", tuple(sorted(inits)),
                _LazyArrays(g.initializers))


def _struct_keys(g: Graph) -> Iterator[_Item]:
    """The STRUCT items of `_iter_items`, same order and keys, with empty words."""
    position = {}
    for v in g.values():
        position.setdefault(id(v), len(position))
    input_pos = {v.name: i for i, v in enumerate(g.inputs)}

    def ref(v):
        p = position.get(id(v))
        return ("v", p) if p is not None else ("undefined", getattr(v, "name", repr(v)))

    def item(what, key):
        return _Item(STRUCT, "", what, key, None)
    yield item("number of inputs", len(g.inputs))
    yield item("number of nodes", len(g.nodes))
    yield item("number of outputs", len(g.outputs))
    for v in g.inputs:
        yield item("type", _type_key(v.type))
        yield item("role", v.role or "input")
    for node in g.nodes:
        yield item("op", node.op)
        yield item("operands", tuple(ref(v) for v in node.inputs))
        names = tuple(sorted(node.attrs))
        yield item("attribute names", names)
        for name in names:
            yield item(f"attribute {name!r}", attr_key(node.attrs[name], False, False))
        yield item("result types", tuple(_type_key(o.type) for o in node.outputs))
    for v, name in zip(g.outputs, g.output_names):
        yield item("value", ref(v))
        yield item("name", name)
    yield item("aliases", tuple(sorted((out, ("input", input_pos[inp]) if inp in input_pos
                                        else ("missing", inp))
                                       for out, inp in g.aliases.items())))
    inits = []
    for name, arr in g.initializers.items():
        target = ("input", input_pos[name]) if name in input_pos else ("missing", name)
        inits.append((target, _array_key(arr)))
    yield item("initializers", tuple(sorted(inits)))


class _LazyArrays:
    """{name: description} of initializers, described only if a message needs it."""

    def __init__(self, arrays: dict):
        self.arrays = dict(arrays)

    def __repr__(self) -> str:
        return repr({k: _describe_array(a) for k, a in self.arrays.items()})

    __str__ = __repr__


# -- public API -------------------------------------------------------------------------------
def structural_diff(a: Graph, b: Graph, check_names: bool = False,
                    check_locs: bool = False) -> Optional[str]:
    """The first difference between `a` and `b` in words, or None when they are equal."""
    wanted = {STRUCT} | ({NAME} if check_names else set()) | ({LOC} if check_locs else set())
    items_a = [it for it in _items(a, check_names, check_locs) if it.kind in wanted]
    items_b = [it for it in _items(b, check_names, check_locs) if it.kind in wanted]
    for ia, ib in zip(items_a, items_b):
        if ia.key != ib.key:
            return _describe_difference(ia, ib, check_names, check_locs)
    if len(items_a) != len(items_b):   # only reachable if counts were equal but items not
        return f"graphs differ in length of description ({len(items_a)} vs {len(items_b)} facts)"
    return None


def structural_equal(a: Graph, b: Graph, check_names: bool = False,
                     check_locs: bool = False) -> bool:
    """True when `a` and `b` are the same graph up to value names (and locations)."""
    return structural_diff(a, b, check_names, check_locs) is None


def structural_hash(g: Graph) -> str:
    """Hex sha256 of the facts `structural_equal(check_names=False, check_locs=False)` compares."""
    facts = [(it.what, it.key) for it in _struct_keys(g)]
    return hashlib.sha256(repr(facts).encode()).hexdigest()     # one repr: ~2x faster


# -- messages ---------------------------------------------------------------------------------
def _describe_array(arr) -> str:
    arr = np.asarray(arr)
    return f"{arr.dtype}{list(arr.shape)} sha256:{_array_key(arr)[3][:12]}"


def _show(raw) -> str:
    if isinstance(raw, np.ndarray):
        return _describe_array(raw)
    if isinstance(raw, float):
        return f"{raw!r} (bits {_float_bits(raw)})"
    if isinstance(raw, (Loc, FusedLoc)):
        return raw.describe()
    if isinstance(raw, Graph):
        return f"graph @{raw.name}"
    if isinstance(raw, (tuple, list)) and any(isinstance(x, float) for x in raw):
        return "(" + ", ".join(_show(x) for x in raw) + ")"
    return str(raw)


def _describe_difference(ia: _Item, ib: _Item, check_names: bool, check_locs: bool) -> str:
    where = ia.where if ia.where == ib.where else f"{ia.where} vs {ib.where}"
    if isinstance(ia.raw, Graph) and isinstance(ib.raw, Graph):
        inner = structural_diff(ia.raw, ib.raw, check_names, check_locs)
        return f"{where}: {ia.what} differs: in the nested graph, {inner}"
    return f"{where}: {ia.what} differs: {_show(ia.raw)} vs {_show(ib.raw)}"
