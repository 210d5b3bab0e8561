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

Arena slots are reused by liveness: a value's bytes are free after the last node that reads
it (or any view of it); an output of node i never shares a slot with an input of node i. Slot
sizes are symbolic (a max over the values placed in them), evaluated at run time from the
symbol values, so one plan serves every batch size. The memory-planning pass replaces this
with best-fit static offsets later.

In-place updates (`graph.aliases`): an output that updates a param is kept live to the end
and copied into the param's buffer after every node has run, so no node reads a half-updated
parameter. Returned outputs are copied first (they see the old parameter values, as in the
interpreter), then updates whose source is itself a parameter being overwritten are
snapshotted into the arena before any update is written.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ir import CompileError
from ir.graph import Graph, Value
from ir.symbolic import SymDim, format_dim, symbols_of

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


def plan_buffers(graph: Graph) -> BufferPlan:
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

    slots = _assign_arena(graph, home, root, kernel_nodes, updates)
    snapshots = []
    for view, src in root.items():
        home[view] = home[src]

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
                      slots, output_copies, snapshots, update_copies)


def _nbytes(v: Value):
    return v.type.nbytes


def _new_slot(slots: list, v: Value) -> int:
    slots.append(ArenaSlot([_nbytes(v)]))
    return len(slots) - 1


def _assign_arena(graph, home, root, kernel_nodes, updates):
    """Greedy liveness-based slot assignment for every value still without a home."""
    end = len(graph.nodes)
    last_use: dict = {}

    def base(v):
        return root.get(v, v)

    for i, node in enumerate(graph.nodes):
        for v in node.inputs:
            last_use[base(v)] = i
    for v in graph.outputs:
        last_use[base(v)] = end
    for _, v, _ in updates:
        last_use[base(v)] = end

    slots: list = []
    free: list = []                   # slot indices currently unused
    live: dict = {}                   # slot -> last use of the value in it
    for i in kernel_nodes:
        node = graph.nodes[i]
        for out in node.outputs:
            if out in home or out in root:
                continue
            slot = _pick_slot(slots, free, _nbytes(out))
            if slot is None:
                slot = _new_slot(slots, out)
            else:
                slots[slot].sizes.append(_nbytes(out))
            home[out] = Home(ARENA, slot)
            live[slot] = last_use.get(out, i)
        for slot, last in list(live.items()):
            if last <= i:
                del live[slot]
                free.append(slot)
    return slots


def _pick_slot(slots, free, nbytes):
    """A free slot, preferring one that already holds a value of exactly this size."""
    if not free:
        return None
    for k in free:
        if any(s == nbytes for s in slots[k].sizes):
            free.remove(k)
            return k
    return free.pop(0)


def describe(plan: BufferPlan, graph: Graph) -> str:
    """Human-readable plan (for `exe.plan_text` and debugging)."""
    lines = [f"symbols: {', '.join(plan.symbols) or '(none)'}"]
    for v in graph.values():
        h = plan.home.get(v)
        if h is not None:
            lines.append(f"  %{v.name:<12} {str(v.type):<20} {h.kind}[{h.index}]")
    for k, slot in enumerate(plan.slots):
        lines.append(f"  arena slot {k}: max({', '.join(format_dim(s) for s in slot.sizes)}) "
                     "bytes")
    return "\n".join(lines)
