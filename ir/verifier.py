"""The IR verifier: named invariants that every graph must keep, checked after every pass.

`check(graph)` returns every violation (a list of VerifyError); `verify(graph)` raises the
first. Each error names its invariant (`err.invariant`), the node (op and result names, its
position) and carries the node's location, so a pass that breaks a graph is easy to find.

Invariants:
  defined-before-use   every operand is a graph input or the result of an earlier node
  single-definition    every Value is defined once, by the producer it records (SSA)
  unique-names         value names are unique, and so are output names
  known-op             every node's op is registered
  arity                operand and result counts agree with the op
  attrs-valid          attributes match the op's schema exactly (all present, right kinds)
  type-matches-rule    result types equal what the op's shape/dtype rule infers
  no-cycles            the node dependency graph is acyclic
  outputs-defined      every graph output is a value of the graph, one name per output
  input-roles          graph inputs have a known role and no producer
  aliases-valid        `updates` maps an output to a param/state input of the same type
  initializers-valid   initializers belong to param/state inputs and match their types
Nested graphs (graph-kind attributes, e.g. fused groups) are verified recursively.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from . import dtypes as _dt
from .attrs import check_attrs
from .equality import attr_key
from .errors import GraphcError, VerifyError
from .graph import INPUT_ROLES, Graph
from .location import UNKNOWN
from .opdef import get_op, has_op
from .symbolic import SymDim
from .types import TensorType

INVARIANTS = ("defined-before-use", "single-definition", "unique-names", "known-op", "arity",
              "attrs-valid", "type-matches-rule", "no-cycles", "outputs-defined", "input-roles",
              "aliases-valid", "initializers-valid")


def verify(graph: Graph) -> None:
    """Raise the first VerifyError found in `graph` (nothing if it is valid)."""
    errors = check(graph)
    if errors:
        raise errors[0]


def check(graph: Graph) -> list:
    """Every invariant violation in `graph` and its nested graphs, in graph order."""
    return _Checker(graph, "").run()


def _node_desc(index: int, node) -> str:
    outs = ", ".join(f"%{getattr(v, 'name', '?')}" for v in node.outputs) or "(no results)"
    return f"node {index} ({outs} = {node.op})"


class _Checker:
    def __init__(self, graph: Graph, context: str):
        self.g = graph
        self.context = context     # "in nested graph @f of node 3 (...) of graph @main: "
        self.errors: list = []

    def fail(self, invariant: str, message: str, loc=UNKNOWN) -> None:
        where = f"graph @{self.g.name}: "
        self.errors.append(VerifyError(invariant, f"{self.context}{where}{message}", loc))

    def run(self) -> list:
        self.check_inputs()
        defined = self.check_definitions()
        self.check_nodes(defined)
        self.check_cycles()
        self.check_outputs(defined)
        self.check_aliases()
        self.check_initializers()
        return self.errors

    # -- inputs and definitions ---------------------------------------------------------------
    def check_inputs(self) -> None:
        for i, v in enumerate(self.g.inputs):
            if v.role not in INPUT_ROLES:
                self.fail("input-roles", f"input {i} %{v.name} has role {v.role!r}; expected "
                          f"one of {', '.join(INPUT_ROLES)}")
            if v.producer is not None:
                self.fail("input-roles", f"input {i} %{v.name} records a producer node "
                          f"({v.producer.op}); a graph input has none")
            if not isinstance(v.type, TensorType):
                self.fail("type-matches-rule", f"input {i} %{v.name} has type {v.type!r}, "
                          f"not a TensorType")

    def check_definitions(self) -> dict:
        """Map id(Value) -> definition position (-1 for inputs); report SSA and name clashes."""
        defined: dict = {}
        names: dict = {}

        def define(v, position, where, loc):
            if id(v) in defined:
                self.fail("single-definition", f"{where} defines %{v.name}, which is already "
                          f"defined (SSA values are defined once)", loc)
            else:
                defined[id(v)] = position
            if v.name in names and names[v.name] is not v:
                self.fail("unique-names", f"{where} defines a second value named %{v.name}",
                          loc)
            names.setdefault(v.name, v)

        for v in self.g.inputs:
            define(v, -1, f"input %{v.name}", UNKNOWN)
        for n, node in enumerate(self.g.nodes):
            where = _node_desc(n, node)
            for k, out in enumerate(node.outputs):
                define(out, n, where, node.loc)
                if out.producer is not node or out.index != k:
                    self.fail("single-definition", f"{where}: result {k} %{out.name} records "
                              f"producer {getattr(out.producer, 'op', None)} index {out.index}, "
                              f"not this node and index {k}", node.loc)
        return defined

    # -- nodes --------------------------------------------------------------------------------
    def check_nodes(self, defined: dict) -> None:
        for n, node in enumerate(self.g.nodes):
            where = _node_desc(n, node)
            operands_ok = self.check_operands(n, node, where, defined)
            if not has_op(node.op):
                try:
                    get_op(node.op)
                except GraphcError as e:
                    self.fail("known-op", f"{where}: {e.message}", node.loc)
                continue
            opdef = get_op(node.op)
            arity_ok = self.check_arity(opdef, node, where)
            attrs_ok = self.check_attrs(opdef, node, where)
            if operands_ok and arity_ok and attrs_ok:
                self.check_types(opdef, node, where)
            self.check_nested(n, node)

    def check_operands(self, n: int, node, where: str, defined: dict) -> bool:
        ok = True
        for k, v in enumerate(node.inputs):
            position = defined.get(id(v))
            if position is None:
                self.fail("defined-before-use", f"{where}: operand {k} %{getattr(v, 'name', v)}"
                          f" is not defined in this graph", node.loc)
                ok = False
            elif position >= n:
                self.fail("defined-before-use", f"{where}: operand {k} %{v.name} is defined by "
                          f"node {position}, which comes later", node.loc)
                ok = False
        return ok

    def check_arity(self, opdef, node, where: str) -> bool:
        ok = True
        if not opdef.arity_ok(len(node.inputs)):
            self.fail("arity", f"{where}: {opdef.name} takes {opdef.arity_text()} operand(s), "
                      f"found {len(node.inputs)}", node.loc)
            ok = False
        want = opdef.result_count(node.attrs)
        if len(node.outputs) != want:
            self.fail("arity", f"{where}: {opdef.name} has {want} result(s), "
                      f"found {len(node.outputs)}", node.loc)
            ok = False
        return ok

    def check_attrs(self, opdef, node, where: str) -> bool:
        try:
            normal = check_attrs(opdef.name, opdef.attrs, node.attrs)
        except GraphcError as e:
            self.fail("attrs-valid", f"{where}: {e.message}", node.loc)
            return False
        missing = sorted(set(opdef.attrs) - set(node.attrs))
        if missing:
            self.fail("attrs-valid", f"{where}: attribute(s) {', '.join(missing)} are missing "
                      f"(the builder fills defaults; every attribute must be stored)", node.loc)
            return False
        for name, value in node.attrs.items():
            if not _canonical(value, normal[name]):
                self.fail("attrs-valid", f"{where}: attribute {name!r} = {value!r} is not in "
                          f"canonical form ({normal[name]!r}, as the builder stores it)",
                          node.loc)
                return False
            if isinstance(value, np.ndarray) and value.flags.writeable:
                self.fail("attrs-valid", f"{where}: tensor attribute {name!r} is a writeable "
                          f"array; attribute arrays are shared between graph copies and must "
                          f"be read-only (the builder makes them so)", node.loc)
                return False
        return True

    def check_types(self, opdef, node, where: str) -> None:
        in_types = [v.type for v in node.inputs]
        try:
            inferred = opdef.infer(list(in_types), node.attrs)
        except GraphcError as e:
            self.fail("type-matches-rule", f"{where}: the op's rule rejects its operands: "
                      f"{e.message}", node.loc)
            return
        for k, (out, want) in enumerate(zip(node.outputs, inferred)):
            if out.type != want:
                self.fail("type-matches-rule", f"{where}: result {k} %{out.name} is stored as "
                          f"{out.type}, but {opdef.name} infers {want}", node.loc)

    def check_nested(self, n: int, node) -> None:
        for name, value in node.attrs.items():
            if isinstance(value, Graph):
                context = (f"{self.context}in nested graph @{value.name} (attribute {name!r} of "
                           f"{_node_desc(n, node)} of graph @{self.g.name}): ")
                self.errors.extend(_Checker(value, context).run())

    def check_cycles(self) -> None:
        """Depth-first search over node dependencies (independent of the list order)."""
        producer_index = {}
        for n, node in enumerate(self.g.nodes):
            for out in node.outputs:
                producer_index.setdefault(id(out), n)
        deps = [sorted({producer_index[id(v)] for v in node.inputs if id(v) in producer_index})
                for node in self.g.nodes]
        state = [0] * len(deps)       # 0 unvisited, 1 on the stack, 2 done
        for root in range(len(deps)):
            if state[root]:
                continue
            stack = [(root, iter(deps[root]))]
            state[root] = 1
            while stack:
                n, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    state[n] = 2
                    stack.pop()
                elif state[nxt] == 1:
                    cycle = [m for m, _ in stack][[m for m, _ in stack].index(nxt):]
                    nodes = " -> ".join(_node_desc(m, self.g.nodes[m]) for m in cycle)
                    self.fail("no-cycles", f"nodes depend on each other in a cycle: {nodes}",
                              self.g.nodes[nxt].loc)
                    return
                elif state[nxt] == 0:
                    state[nxt] = 1
                    stack.append((nxt, iter(deps[nxt])))

    # -- outputs, aliases, initializers -------------------------------------------------------
    def check_outputs(self, defined: dict) -> None:
        if len(self.g.outputs) != len(self.g.output_names):
            self.fail("outputs-defined", f"{len(self.g.outputs)} output value(s) but "
                      f"{len(self.g.output_names)} output name(s)")
        seen = set()
        for i, name in enumerate(self.g.output_names):
            if name in seen:
                self.fail("unique-names", f"output name {name!r} is used twice")
            seen.add(name)
        for i, (v, name) in enumerate(zip(self.g.outputs, self.g.output_names)):
            if id(v) not in defined:
                self.fail("outputs-defined", f"output {i} {name!r} is %"
                          f"{getattr(v, 'name', v)}, which is not defined in this graph")

    def check_aliases(self) -> None:
        inputs = {v.name: v for v in self.g.inputs}
        targets: dict = {}
        for out_name, in_name in self.g.aliases.items():
            where = f"output {out_name!r} updates %{in_name}"
            if out_name not in self.g.output_names:
                self.fail("aliases-valid", f"{where}, but there is no output named {out_name!r}")
                continue
            target = inputs.get(in_name)
            if target is None:
                self.fail("aliases-valid", f"{where}, but the graph has no input %{in_name}")
                continue
            if target.role not in ("param", "state"):
                self.fail("aliases-valid", f"{where}, but %{in_name} has role "
                          f"{target.role!r}; only param and state inputs can be updated in place")
            out = self.g.outputs[self.g.output_names.index(out_name)]
            if out.type != target.type:
                self.fail("aliases-valid", f"{where}, but the output is {out.type} and the "
                          f"input is {target.type}", getattr(out.producer, "loc", UNKNOWN))
            if in_name in targets:
                self.fail("aliases-valid", f"{where}, but output {targets[in_name]!r} already "
                          f"updates it")
            targets.setdefault(in_name, out_name)

    def check_initializers(self) -> None:
        inputs = {v.name: v for v in self.g.inputs}
        for name, arr in self.g.initializers.items():
            target = inputs.get(name)
            if target is None:
                self.fail("initializers-valid", f"initializer %{name} names no graph input")
                continue
            if target.role not in ("param", "state"):
                self.fail("initializers-valid", f"initializer %{name} is for an input with "
                          f"role {target.role!r}; only param and state inputs have "
                          f"initial values")
            problem = _initializer_mismatch(np.asarray(arr), target.type)
            if problem:
                self.fail("initializers-valid", f"initializer %{name}: {problem}")


def _canonical(value, normal) -> bool:
    """Same value in the same form: tuples stay tuples (hashable), ints stay ints..."""
    if type(value) is not type(normal):
        return False
    if isinstance(value, tuple):
        return len(value) == len(normal) and all(map(_canonical, value, normal))
    return attr_key(value) == attr_key(normal)


def _initializer_mismatch(arr: np.ndarray, t: TensorType) -> Optional[str]:
    try:
        found = _dt.dtype(arr.dtype)
    except GraphcError:
        return f"dtype {arr.dtype} has no graphc equivalent (input is {t})"
    if found is not t.dtype:
        return f"dtype {found} does not match the input type {t}"
    if arr.ndim != t.rank:
        return f"shape {arr.shape} does not match the input type {t}"
    for axis, (d, n) in enumerate(zip(t.shape, arr.shape)):
        if not isinstance(d, SymDim) and d != n:
            return f"shape {arr.shape} does not match the input type {t} (axis {axis})"
    return None
