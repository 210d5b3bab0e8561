"""The buffer plan: where every value of a graph lives during one native call.

Homes:
- `input`    a caller-owned array (a data input of the graph), read only;
- `output`   a fresh array returned to the caller (or the caller's `out=` array);
- `param`    the runtime-owned, 64-byte-aligned buffer of a param/state input;
- `arena`    a slot of the executable's arena (intermediates), 64-byte aligned;
- `constant` a read-only global of the module (a `constant` node).

A node whose lowering declares `view_of` (reshape) gets no kernel: its output shares the home
of that input. A `constant` node gets no kernel either. Both are materialised by their kernel
only when their value is returned to the caller (it needs its own output array).

Arena offsets come from the memory-planning analysis (passes/plan_memory.py): live
intervals over the node order, in-place reuse where an elementwise kernel's input dies at
that node (the pair shares a slot; the kernel's arguments then lose `noalias`), and best-fit
static offsets that are polynomials in the symbols, valid for every binding and evaluated at
run time from the symbol values, so one plan serves every batch size. Each slot is one
placement unit: an offset and the sizes of the values in it.

In-place updates (`graph.aliases`): an output that updates a param is kept live to the end
and copied into the param's buffer after every node has run, so no node reads a half-updated
parameter. Returned outputs are copied first (they see the old parameter values, as in the
interpreter), then updates whose source is itself a parameter being overwritten are
snapshotted into the arena before any update is written.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ir import CompileError
from ir.graph import Graph, Value
from ir.symbolic import SymDim, dim_add, dim_mul, format_dim, sym, symbols_of
from passes.plan_memory import MemoryPlan, graph_buffers, padded, place_buffers

from .codegen.registry import LOWERINGS

INPUT, OUTPUT, PARAM, ARENA, CONSTANT = "input", "output", "param", "arena", "constant"
ARENA_ALIGN = 64
PARAM_ALIGN = 64


@dataclass(frozen=True)
class Home:
    kind: str
    index: int     # data input / returned output / param / arena slot / constant node index


@dataclass
class ArenaSlot:
    sizes: list = field(default_factory=list)    # byte sizes (Dims); the slot holds the max
    offset: tuple = (0,)                         # byte offset: the max of these Dims, rounded
    #                                              up to 64 (passes/plan_memory.py)


@dataclass
class BufferPlan:
    symbols: tuple                    # symbol names, in the order of the entry's symbol array
    data_inputs: list                 # Values with role "input"
    params: list                      # Values with role "param" / "state"
    returned: list                    # (output name, Value) returned to the caller
    updates: list                     # (output name, Value, param index) written in place
    home: dict                        # Value -> Home
    kernel_nodes: list                # indices of nodes that need a kernel
    slots: list                       # ArenaSlot
    output_copies: list               # (Value, returned output index) after all nodes
    snapshots: list                   # (Value, arena slot) copied before any update
    update_copies: list               # (source Home, dtype, shape, param index)
    memory: object = None             # passes.plan_memory.MemoryPlan (arena report)

    def alignment(self, home: Home, dtype) -> int:
        if home.kind in (INPUT, OUTPUT):
            return dtype.itemsize
        return ARENA_ALIGN


def _bare_symbol(d):
    if isinstance(d, SymDim) and len(d.terms) == 1:
        monomial, coeff = d.terms[0]
        if coeff == 1 and len(monomial) == 1:
            return monomial[0]
    return None


def order_symbols(graph: Graph) -> tuple:
    """Symbols in the order they first appear as a bare dim of a data input.

    Every symbol anywhere in the graph must be bindable that way, since the call boundary
    reads symbol values off the argument shapes."""
    order = []
    for v in graph.inputs:
        for d in v.type.shape:
            s = _bare_symbol(d)
            if s is not None and s not in order:
                if v.role != "input":
                    continue
                order.append(s)
    used = set()
    for v in graph.values():
        used |= symbols_of(v.type.shape)
    for node in graph.nodes:
        for value in node.attrs.values():
            if isinstance(value, SymDim):
                used |= value.symbols()
            elif isinstance(value, tuple):
                used |= symbols_of(x for x in value if isinstance(x, SymDim))
    unbound = sorted(used - set(order))
    if unbound:
        raise CompileError(f"graph {graph.name!r}: symbolic dim(s) {', '.join(unbound)} are not "
                           "the plain size of any axis of a data input, so a call cannot bind "
                           "them; give some input an axis of exactly that size")
    return tuple(order)


@dataclass(frozen=True)
class Signature:
    """The positional calling convention of a graph (see abi.py)."""
    symbols: tuple
    data_inputs: list
    params: list
    returned: list                    # (output name, Value)
    updates: list                     # (output name, Value, param index)


def call_signature(graph: Graph) -> Signature:
    """Order the graph's inputs, params and outputs for the argument table; check aliases."""
    for v in graph.inputs:
        if v.role in ("param", "state") and not v.type.is_static:
            raise CompileError(f"{v.role} %{v.name} has symbolic type {v.type}: parameters and "
                               "state live in buffers allocated once, so their shapes must be "
                               "static")
    symbols = order_symbols(graph)
    data_inputs = [v for v in graph.inputs if v.role == "input"]
    params = [v for v in graph.inputs if v.role in ("param", "state")]
    param_index = {v.name: k for k, v in enumerate(params)}
    returned, updates = [], []
    for name, v in zip(graph.output_names, graph.outputs):
        target = graph.aliases.get(name)
        if target is None:
            returned.append((name, v))
            continue
        if target not in param_index:
            raise CompileError(f"output {name!r} updates {target!r}, which is not a param or "
                               "state input of the graph")
        p = params[param_index[target]]
        if p.type != v.type:
            raise CompileError(f"output {name!r} ({v.type}) updates %{target} ({p.type}): "
                               "the types must match")
        updates.append((name, v, param_index[target]))
    return Signature(symbols, data_inputs, params, returned, updates)


def plan_buffers(graph: Graph, placement: Optional[list] = None) -> BufferPlan:
    """The buffer plan of `graph`. `placement`: the arena offsets of an earlier plan of a
    structurally equal graph (`placement_of(plan)`, e.g. from the on-disk cache), which
    skips the placement search (the slowest part of planning); ignored if it does not fit."""
    sig = call_signature(graph)
    symbols, data_inputs, params = sig.symbols, sig.data_inputs, sig.params
    returned, updates = sig.returned, sig.updates
    home: dict = {}
    for k, v in enumerate(data_inputs):
        home[v] = Home(INPUT, k)
    for k, v in enumerate(params):
        home[v] = Home(PARAM, k)

    returned_values = {id(v) for _, v in returned}
    root: dict = {}          # view Value -> Value whose storage it shares
    kernel_nodes = []
    for i, node in enumerate(graph.nodes):
        low = LOWERINGS.get(node.op)
        if low is None:
            raise CompileError(f"op {node.op} has no lowering", node.loc)
        out = node.outputs[0]
        if id(out) not in returned_values:
            if low.view_of is not None:
                src = node.inputs[low.view_of]
                root[out] = root.get(src, src)
                continue
            if low.constant:
                home[out] = Home(CONSTANT, i)
                continue
        kernel_nodes.append(i)

    # first returned occurrence of a node-computed value is written straight into its output
    output_copies = []
    for k, (name, v) in enumerate(returned):
        if v not in home and v not in root and v.producer is not None:
            home[v] = Home(OUTPUT, k)
        else:
            output_copies.append((v, k))

    slots, memory = _assign_arena(graph, home, root, kernel_nodes, updates, placement)
    snapshots = []
    for view, src in root.items():
        home[view] = home[src]

    for v, p in _direct_updates(graph, home, root, params, returned, updates):
        home[v] = Home(PARAM, p)                  # written in place: no copy at the end
    targets = {p for _, _, p in updates}
    update_copies = []
    for name, v, p in updates:
        h = home[v]
        if h == Home(PARAM, p):
            continue                              # "w updates w": nothing to write
        if h.kind == PARAM and h.index in targets:
            slot = _new_slot(slots, v)
            snapshots.append((v, slot))
            h = Home(ARENA, slot)
        update_copies.append((h, v.type.dtype, v.type.shape, p))
    return BufferPlan(symbols, data_inputs, params, returned, updates, home, kernel_nodes,
                      slots, output_copies, snapshots, update_copies, memory)


CAN_FAIL = frozenset({"gather", "argmax"})       # kernels that may return an error


def _can_fail(node) -> bool:
    if node.op in CAN_FAIL:
        return True
    body = node.attrs.get("body") if node.op == "fused" else None
    return body is not None and any(_can_fail(n) for n in body.nodes)


def _elementwise_reader(node, value) -> bool:
    """`node` is one elementwise loop that reads `value` (if at all) only at the element it
    writes: a plain elementwise op, or a fused elementwise group whose body never
    broadcasts that operand."""
    from ir.opdef import get_op
    if node.op != "fused":
        return get_op(node.op).fusion == "elementwise" and node.op not in ("iota",)
    if node.attrs["kind"] != "elementwise":
        return False
    body = node.attrs["body"]
    inner = {id(b): o for o, b in zip(node.inputs, body.inputs)}
    for n in body.nodes:
        if n.op == "broadcast" and any(inner.get(id(x)) is value for x in n.inputs):
            return False
    return True


def _direct_updates(graph, home, root, params, returned, updates) -> list:
    """(new value, param index) pairs whose producing kernel can write the param's buffer
    directly instead of the end-of-call copy (which streamed every parameter, and the
    optimizer state, once more per training step). Safe when: the producer is one
    elementwise loop that reads the old parameter (if at all) only at the element it is
    writing; no later node reads the old parameter; neither value is returned; and no later
    kernel can fail (a failed call then leaves the parameters untouched, as before)."""
    order = {id(n): i for i, n in enumerate(graph.nodes)}
    last_read: dict = {}
    for i, n in enumerate(graph.nodes):
        for x in n.inputs:
            last_read[id(root.get(x, x))] = i          # a view reads its source's bytes
    fails_from = len(graph.nodes)
    for i in range(len(graph.nodes) - 1, -1, -1):
        if _can_fail(graph.nodes[i]):
            fails_from = i
            break
    shown = {id(v) for _, v in returned}
    out = []
    for _, v, p in updates:
        old = params[p]
        node = v.producer
        if node is None or id(node) not in order or home.get(v) is None:
            continue
        i = order[id(node)]
        if (home[v].kind != ARENA or id(v) in shown or id(old) in shown
                or last_read.get(id(old), -1) > i or fails_from > i
                and fails_from < len(graph.nodes)):
            continue
        if not _elementwise_reader(node, old) or any(
                x is not old and root.get(x, x) is old for x in node.inputs):
            continue
        out.append((v, p))
    return out


def _nbytes(v: Value):
    return v.type.nbytes


def _new_slot(slots: list, v: Value) -> int:
    """A slot above every other (for the rare update snapshots): valid for every binding."""
    offset = 0
    for slot in slots:
        for term in slot.offset:
            offset = dim_add(offset, dim_add(term, padded(max_dim(slot.sizes))))
    slots.append(ArenaSlot([_nbytes(v)], (offset,)))
    return len(slots) - 1


def _encode_dim(d) -> list:
    """A Dim as JSON-able [[coefficient, [symbol, ...]], ...] (decoded without parsing)."""
    if isinstance(d, int):
        return [[d, []]]
    return [[c, list(m)] for m, c in d.terms]


def _decode_dim(terms):
    out = 0
    for coeff, monomial in terms:
        if not isinstance(coeff, int) or not all(isinstance(s, str) for s in monomial):
            raise ValueError("bad dim term")
        term = coeff
        for s in monomial:
            term = dim_mul(term, sym(s))
        out = dim_add(out, term)
    return out


def placement_of(plan: BufferPlan) -> list:
    """The arena offsets of `plan` as JSON-able data (per buffer, in the order graph_buffers
    gives them, the max-terms of its offset): what `plan_buffers(placement=...)` reuses."""
    return [[_encode_dim(t) for t in plan.memory.offsets[b.key]] for b in plan.memory.buffers]


def _cached_plan(buffers, placement) -> Optional[MemoryPlan]:
    if placement is None or len(placement) != len(buffers):
        return None
    try:
        offsets = {b.key: tuple(_decode_dim(t) for t in terms)
                   for b, terms in zip(buffers, placement)}
    except Exception:                       # a malformed entry: plan from scratch
        return None
    plan = MemoryPlan(list(buffers), offsets)
    by_key = {b.key: b for b in buffers}
    for b in buffers:                       # the in-place pairs, as place_buffers lists them
        r = b
        while r.host is not None and r.host in by_key:
            r = by_key[r.host]
        if r is not b:
            plan.inplace.append((b.key, b.host))
    return plan


def _assign_arena(graph, home, root, kernel_nodes, updates, placement=None):
    """Arena homes from the memory-planning analysis (passes/plan_memory.py): one slot per
    placement unit (an in-place result shares its input's slot), each at a static offset
    that is a polynomial in the symbols."""
    def is_view(node):
        low = LOWERINGS.get(node.op)
        return low.view_of if low is not None else None

    def is_free(node):
        low = LOWERINGS.get(node.op)
        return low is not None and low.constant

    buffers = graph_buffers(graph, is_view, is_free)
    plan = _cached_plan(buffers, placement) or place_buffers(buffers)
    slots: list = []
    slot_of: dict = {}
    for b in buffers:
        if b.key in home:
            raise CompileError(f"%{b.key.name} has two homes (a buffer-planning bug)")
        if b.host is not None and b.host in slot_of:      # in place: the input's slot
            k = slot_of[b.host]
            slots[k].sizes.append(_nbytes(b.key))
        else:
            slots.append(ArenaSlot([_nbytes(b.key)], plan.offsets[b.key]))
            k = len(slots) - 1
        slot_of[b.key] = k
        home[b.key] = Home(ARENA, k)
    return slots, plan


def max_dim(dims):
    """The largest of byte sizes that are comparable for every binding (else their sum)."""
    best = dims[0]
    for d in dims[1:]:
        if d == best:
            continue
        diff = dim_add(d, dim_mul(best, -1))
        if isinstance(diff, int):
            best = d if diff > 0 else best
        elif all(c >= 0 for _, c in diff.terms):
            best = d
        elif not all(c <= 0 for _, c in diff.terms):
            best = dim_add(best, d)
    return best


def describe(plan: BufferPlan, graph: Graph) -> str:
    """Human-readable plan (for `exe.plan_text` and debugging)."""
    lines = [f"symbols: {', '.join(plan.symbols) or '(none)'}"]
    for v in graph.values():
        h = plan.home.get(v)
        if h is not None:
            lines.append(f"  %{v.name:<12} {str(v.type):<20} {h.kind}[{h.index}]")
    for k, slot in enumerate(plan.slots):
        lines.append(f"  arena slot {k}: at max({', '.join(map(format_dim, slot.offset))}), "
                     f"max({', '.join(format_dim(s) for s in slot.sizes)}) bytes")
    return "\n".join(lines)
