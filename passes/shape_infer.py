"""shape-infer: re-derive every type from the op rules, unifying symbolic dims where needed.

Every node's output types are recomputed from its operands' types with the op's own rule
(ir.builder), in program order, and the stored types are updated where they differ (a graph
whose inputs were retyped, or edited by hand, has stale types downstream).

Unification: when a rule fails only because two *different symbols* stand where it needs one
dim (inputs %x: f32[N,784] and %y: f32[M,784] meet in an add), the symbols must be equal for
the program to make sense, so the pass records N = M (the representative is the symbol that
comes first in input order) and substitutes it everywhere: input types, node
types, dim attributes. The rule itself is the judge: the pass looks for the smallest set of
symbol merges among the node's symbols that makes the rule succeed. A merge also resolves
dims built from the symbols (784*N vs 784*M). A static dim that differs, or a symbol that
would have to equal a number or an expression of other symbols, is a ShapeError naming the
op, the operand types and the node's location.

Aliased outputs (parameter updates) must have their parameter's type; that rule unifies too.

Stats: nodes_checked, types_refined (values whose type changed), unified_symbols.
"""
from __future__ import annotations

from itertools import combinations
from typing import Callable, Iterable

from ir import Graph, GraphcError, PassError, ShapeError, TensorType
from ir.attrs import check_attrs
from ir.builder import check_arity, infer_types
from ir.opdef import get_op
from ir.symbolic import SymDim, substitute

from .registry import PassContext, function_pass

# Beyond this many distinct symbols at one node the search for merges tries pairs only.
_MAX_SYMBOLS_FOR_FULL_SEARCH = 7


@function_pass("shape-infer", "re-derive every type from the op rules; unify symbolic dims")
def infer_shapes(graph: Graph, ctx: PassContext | None = None):
    """Return (graph with re-derived types, stats). Never mutates `graph`."""
    ctx = ctx if ctx is not None else PassContext("shape-infer")
    g = graph.clone()
    original = {id_: v.type for id_, v in _values_by_position(graph)}
    unifier = _Unifier(_symbol_order(g))
    # Each unification substitutes the whole graph and restarts the walk, so the final walk
    # checks every node against the final types. Every restart removes a symbol: it ends.
    restarts_left = len(unifier.rank) + 1
    while _check_nodes(g, unifier, ctx) or _check_aliases(g, unifier, ctx):
        restarts_left -= 1
        if restarts_left < 0:
            raise PassError("shape-infer: unifying symbols did not converge (a substitution "
                            "left a merged symbol in the graph); this is a bug in shape-infer")
    refined = sum(1 for id_, v in _values_by_position(g) if original.get(id_) != v.type)
    return g, {"nodes_checked": len(g.nodes), "types_refined": refined,
               "unified_symbols": unifier.merges}


# -- the walk ----------------------------------------------------------------------------------

def _check_nodes(g: Graph, unifier: "_Unifier", ctx: PassContext) -> bool:
    """Re-type every node in order. Returns True after a unification (the caller restarts)."""
    for node in g.nodes:
        opdef = get_op(node.op)
        check_arity(opdef, len(node.inputs), node.loc)
        try:
            attrs = check_attrs(node.op, opdef.attrs, node.attrs)
        except GraphcError as e:
            raise e.with_loc(node.loc) from None
        in_types = [v.type for v in node.inputs]

        def rule(env, opdef=opdef, in_types=in_types, attrs=attrs, loc=node.loc):
            return infer_types(opdef, [_subst_type(t, env) for t in in_types],
                               _subst_attrs(opdef, attrs, env), loc)

        try:
            out_types = rule({})
        except ShapeError as e:
            symbols = _symbols_in(in_types) | _attr_symbols(opdef, attrs)
            env = unifier.search(symbols, rule)
            if env is None:
                operands = ", ".join(f"%{v.name}: {v.type}" for v in node.inputs)
                tried = ", even by equating symbolic dims" if len(symbols) > 1 else ""
                raise ShapeError(f"{node.op}({operands}) cannot be typed{tried}: {e.message}",
                                 node.loc) from None
            where = f"{node.op} at {node.loc.describe()}" if node.loc else node.op
            _apply(g, unifier, env, ctx, where)
            return True
        for value, t in zip(node.outputs, out_types):
            value.type = t
        node.attrs = attrs
    return False


def _check_aliases(g: Graph, unifier: "_Unifier", ctx: PassContext) -> bool:
    """An output that updates a parameter must have the parameter's type."""
    for out_name, in_name in g.aliases.items():
        out_t, in_t = g.output(out_name).type, g.input(in_name).type

        def rule(env, out_t=out_t, in_t=in_t, out_name=out_name, in_name=in_name):
            a, b = _subst_type(out_t, env), _subst_type(in_t, env)
            if a != b:
                raise ShapeError(f"output {out_name!r} updates %{in_name} in place, so its type "
                                 f"must be {b}, found {a}")
            return [a]

        try:
            rule({})
        except ShapeError as e:
            env = unifier.search(_symbols_in([out_t, in_t]), rule)
            if env is None:
                raise ShapeError(e.message, g.output(out_name).producer.loc
                                 if g.output(out_name).producer else None) from None
            _apply(g, unifier, env, ctx, f"output {out_name!r} (updates %{in_name})")
            return True
    return False


def _apply(g: Graph, unifier: "_Unifier", env: dict, ctx: PassContext, where: str) -> None:
    for sym_name, rep in env.items():
        unifier.union(sym_name, rep)
        ctx.remark(f"unified {sym_name} with {rep}: required by {where}")
    _substitute_graph(g, env)


# -- merging symbols, and the search for merges ---------------------------------------------------

class _Unifier:
    """Symbol classes. The graph is substituted as soon as two symbols merge, so a merged
    symbol vanishes from it and every symbol still present represents its class: that makes
    a union-find's `find` the identity here, and only the canonical order needs keeping."""

    def __init__(self, order: list):
        self.rank = {s: i for i, s in enumerate(order)}
        self.merges = 0

    def _rank(self, s: str) -> int:
        return self.rank.setdefault(s, len(self.rank))

    def union(self, merged: str, rep: str) -> None:
        assert self._rank(rep) < self._rank(merged)
        self.merges += 1

    def search(self, symbols: set, rule: Callable) -> dict | None:
        """The smallest substitution {symbol: representative} under which `rule` succeeds."""
        ordered = sorted(symbols, key=self._rank)
        if len(ordered) < 2:
            return None
        if len(ordered) <= _MAX_SYMBOLS_FOR_FULL_SEARCH:
            candidates = _partitions_by_merges(ordered)
        else:
            candidates = ([[a, b]] + [[s] for s in ordered if s not in (a, b)]
                          for a, b in combinations(ordered, 2))
        for blocks in candidates:
            # blocks keep the symbol order, so block[0] is the earliest: the representative
            env = {s: block[0] for block in blocks for s in block[1:]}
            if not env:
                continue
            try:
                rule({k: _as_sym(v) for k, v in env.items()})
            except ShapeError:
                continue
            return env
        return None


def _partitions(items: list) -> Iterable[list]:
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in _partitions(rest):
        yield [[first]] + part
        for i in range(len(part)):
            yield part[:i] + [[first] + part[i]] + part[i + 1:]


def _partitions_by_merges(items: list) -> list:
    """Every set partition of `items`, fewest merges first (stable within a level)."""
    parts = [sorted((sorted(b, key=items.index) for b in p), key=lambda b: items.index(b[0]))
             for p in _partitions(items)]
    return sorted(parts, key=lambda p: len(items) - len(p))


# -- substitution ------------------------------------------------------------------------------

def _as_sym(name: str) -> SymDim:
    return SymDim({(name,): 1})


def _subst_type(t: TensorType, env: dict) -> TensorType:
    if not env:
        return t
    return TensorType(tuple(substitute(d, env) for d in t.shape), t.dtype)


def _subst_attrs(opdef, attrs: dict, env: dict) -> dict:
    if not env:
        return attrs
    out = dict(attrs)
    for name, value in attrs.items():
        kind = opdef.attrs[name].kind
        if kind == "dim":
            out[name] = substitute(value, env)
        elif kind == "dims":
            out[name] = tuple(substitute(d, env) for d in value)
        elif kind == "graph":
            nested = value.clone()
            _substitute_graph(nested, env)
            out[name] = nested
    return out


def _substitute_graph(g: Graph, env: dict) -> None:
    """Replace symbols (name -> representative name, or -> SymDim) throughout `g`, in place."""
    env = {k: _as_sym(v) if isinstance(v, str) else v for k, v in env.items()}
    for v in g.values():
        v.type = _subst_type(v.type, env)
    for node in g.nodes:
        node.attrs = _subst_attrs(get_op(node.op), node.attrs, env)


def _symbols_in(types: Iterable[TensorType]) -> set:
    out: set = set()
    for t in types:
        out |= t.symbols()
    return out


def _attr_symbols(opdef, attrs: dict) -> set:
    out: set = set()
    for name, value in attrs.items():
        kind = opdef.attrs[name].kind
        dims = (value,) if kind == "dim" else value if kind == "dims" else ()
        for d in dims:
            if isinstance(d, SymDim):
                out |= d.symbols()
    return out


def _symbol_order(g: Graph) -> list:
    """Symbols in order of first appearance: graph inputs first, then node types and attrs."""
    order: list = []

    def note(dims):
        for d in dims:
            if isinstance(d, SymDim):
                for s in sorted(d.symbols()):
                    if s not in order:
                        order.append(s)

    for v in g.inputs:
        note(v.type.shape)
    for node in g.nodes:
        opdef = get_op(node.op)
        for name, value in node.attrs.items():
            kind = opdef.attrs[name].kind if name in opdef.attrs else None
            note((value,) if kind == "dim" else value if kind == "dims" else ())
        for v in node.outputs:
            note(v.type.shape)
    return order


def _values_by_position(g: Graph):
    """(position key, Value) pairs that match between a graph and its clone."""
    for i, v in enumerate(g.inputs):
        yield ("in", i), v
    for n, node in enumerate(g.nodes):
        for j, v in enumerate(node.outputs):
            yield ("node", n, j), v

