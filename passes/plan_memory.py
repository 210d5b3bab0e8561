"""plan-memory: where every intermediate lives in the one arena of a compiled graph.

The analysis (`graph_buffers` + `place_buffers`) is what the runtime uses to lay out its
arena (runtime/plan.py asks for it); the `plan-memory` pass runs the same analysis and reports
it, so the numbers in a pipeline's statistics are the ones the native code uses.

1. Live intervals over the final node order. A buffer is defined at its producer's position
   and lives until its last reader (a view such as reshape shares its operand's buffer and
   extends its life; an output that updates a parameter lives to the end, when the runtime
   copies it into the parameter). Two buffers conflict when their intervals overlap; at one
   node, inputs and outputs overlap (a kernel reads while it writes).
2. In-place reuse: a kernel that reads an input element by element at the position it
   writes (an elementwise op, or a fused elementwise group reading the operand directly) may
   write its last result over an input that dies at that node, when both have the same byte
   size. The two share one buffer (the runtime then drops `noalias` on that pair of kernel
   arguments).
3. Placement: greedy by size (largest first), each buffer at the lowest offset that keeps it
   clear of every conflicting buffer placed so far (best fit among the gaps). Sizes are
   polynomials in the symbolic dims (N) and offsets are maxima of such polynomials (a
   buffer stacked above 1254400 and 1600*N bytes starts at max(1254400, 1600*N)): a
   candidate offset (0, the end of a conflicting buffer, or above all of them) is accepted
   only if it is clear of each conflicting buffer for EVERY binding of the symbols (checked
   term by term: a difference of polynomials with no negative coefficient), so one plan
   serves every batch size. Among the valid candidates the one lowest at the planning
   binding (`hint`, default every symbol = 64) wins; offsets are rounded up to 64 bytes at
   call time, which the +63 slack of a symbolic size that is not always a multiple of 64
   allows for (see `padded`). Which buffers go low
   depends on the planning binding, so several are tried (N = 16 ... 4096) and the plan
   whose arena is worst-case closest to the lower bound (checked at N = 1 ... 8192) is kept.
   Trade-off: a gap that fits at N=64 but not at every N is not used, so for shapes that mix
   N with static sizes the plan can be looser than a per-binding plan; in exchange nothing
   is re-planned at call time and the generated code computes the offsets with a few
   multiplications and maxima.

The report (stats of the pass, `MemoryPlan.report(env)`): arena bytes, the lower bound (the
peak over time of the bytes live at once) and the unplanned sum (every buffer separately),
for the given symbol values (option `symbols`, e.g. "N=128").
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Callable, Optional

from ir import Graph
from ir.graph import Node
from ir.symbolic import SymDim, dim_add, dim_mul, evaluate, sym

from .registry import PassContext, PassOption, function_pass

ALIGN = 64
DEFAULT_HINT = 64


@dataclass
class Buffer:
    """One arena buffer: `key` identifies it for the caller (an ir Value)."""
    key: object
    size: object                 # bytes (a Dim)
    start: int
    end: int
    host: object = None          # in-place: the key of the input buffer it reuses


@dataclass
class MemoryPlan:
    buffers: list                                   # Buffer, in the order given
    offsets: dict = field(default_factory=dict)     # key -> max expression (tuple of Dims),
    #                                                 rounded up to ALIGN at use
    inplace: list = field(default_factory=list)     # (key, host key)

    def _env(self, env):
        syms = set()
        for b in self.buffers:
            syms |= _symbols(b.size)
        return {s: int(env.get(s, DEFAULT_HINT)) for s in syms}

    def arena_bytes(self, env: dict) -> int:
        env = self._env(env)
        top = 0
        for b in self.buffers:
            top = max(top, _align(mx_evaluate(self.offsets[b.key], env)) + evaluate(b.size, env))
        return _align(top)

    def lower_bound(self, env: dict) -> int:
        """Peak over node positions of the bytes live at once (in-place pairs count once)."""
        env = self._env(env)
        events: dict = {}
        guest_end: dict = {}
        for g in self.buffers:
            if g.host is not None:
                guest_end[id(g.host)] = max(guest_end.get(id(g.host), g.end), g.end)
        for b in self.buffers:
            if b.host is not None:
                continue
            end = max(b.end, guest_end.get(id(b.key), b.end))
            size = _align(evaluate(b.size, env))
            events.setdefault(b.start, 0)
            events[b.start] += size
            events.setdefault(end + 1, 0)
            events[end + 1] -= size
        peak = live = 0
        for t in sorted(events):
            live += events[t]
            peak = max(peak, live)
        return peak

    def unplanned_bytes(self, env: dict) -> int:
        env = self._env(env)
        return sum(_align(evaluate(b.size, env)) for b in self.buffers)

    def report(self, env: dict) -> dict:
        return {"arena_bytes": self.arena_bytes(env), "lower_bound_bytes": self.lower_bound(env),
                "unplanned_bytes": self.unplanned_bytes(env), "buffers": len(self.buffers),
                "inplace": len(self.inplace)}


def _symbols(d) -> set:
    return d.symbols() if isinstance(d, SymDim) else set()


def _align(x: int) -> int:
    return (x + ALIGN - 1) // ALIGN * ALIGN


def padded(size):
    """Bytes reserved for a buffer. Static: rounded up to ALIGN. Symbolic: itself when every
    coefficient is a multiple of ALIGN (then the buffer's end, rounded up, is its rounded-up
    offset plus its size: nothing is lost to alignment), else ALIGN-1 bytes of slack for
    rounding its offset up at call time."""
    if isinstance(size, int):
        return _align(size)
    if all(c % ALIGN == 0 for _, c in size.terms):
        return size
    return dim_add(size, ALIGN - 1)


def _nonneg(d) -> bool:
    """d >= 0 for every binding of its symbols (no negative coefficient)."""
    if isinstance(d, int):
        return d >= 0
    return all(c >= 0 for _, c in d.terms)


def _le(a, b) -> bool:
    return _nonneg(dim_add(b, dim_mul(a, -1)))


# Placement arithmetic on plain polynomials (monomial -> coefficient, frozen as sorted
# tuples): the planner compares thousands of them, and ir.symbolic's Dim arithmetic is made
# for clarity, not speed.
def _poly(d) -> tuple:
    if isinstance(d, int):
        return (((), d),) if d else ()
    return tuple(sorted((m, c) for m, c in d.terms if c))


def _peval(a: tuple, env: dict) -> int:
    total = 0
    for m, c in a:
        for s in m:
            c *= env[s]
        total += c
    return total


def _pdim(a: tuple):
    out = 0
    for m, c in a:
        term = c
        for s in m:
            term = dim_mul(term, sym(s))
        out = dim_add(out, term)
    return out


# Offsets are "max expressions": tuples of polynomials whose maximum (evaluated at call time)
# is the offset. Stacking a buffer above two others whose ends are incomparable polynomials
# (1254400 and 1600*N: which is larger depends on N) needs exactly that maximum. The placement
# (_place_fresh) holds them as coefficient vectors (_vmx_le, _vmx_max).
def mx_evaluate(a: tuple, env: dict) -> int:
    """The value of a max expression of Dims."""
    return max(evaluate(x, env) for x in a)


TRY_HINTS = (16, 64, 256, 1024, 4096)
CHECK_AT = (1, 16, 128, 1024, 8192)


def place_buffers(buffers: list, hint: Optional[dict] = None) -> MemoryPlan:
    """Offsets for `buffers` (see the module docstring), valid for every binding.

    Which buffers go low depends on their sizes at the planning binding, so symbolic sizes
    get several planning bindings (TRY_HINTS, plus `hint`) and the plan whose arena is
    worst-case closest to the lower bound over CHECK_AT (and `hint`) wins."""
    syms = set()
    for b in buffers:
        syms |= _symbols(b.size)
    if not syms:
        return _place(buffers, hint)
    hints = [{s: h for s in syms} for h in TRY_HINTS]
    checks = [{s: n for s in syms} for n in CHECK_AT]
    if hint:
        first = {s: int(hint.get(s, DEFAULT_HINT)) for s in syms}
        if first in hints:                      # the same placement would be computed twice
            hints.remove(first)
        hints.insert(0, first)
        checks.append(first)
    best = None
    for h in hints:
        plan = _place(buffers, h)
        worst = max(plan.arena_bytes(env) / max(plan.lower_bound(env), 1) for env in checks)
        if best is None or worst < best[0] - 1e-9:
            best = (worst, plan)
    return best[1]


# The last few placements, by the buffers' facts and the planning binding: compiling a graph
# places the same buffers twice (the plan-memory pass for its report, then the runtime for
# real), ~0.1 s of a training step's cold compile. Entries hold their key objects (so an id
# is never reused while its entry lives); a plan handed out is a copy.
_RECENT: list = []
_RECENT_SIZE = 2


def _place(buffers: list, hint: Optional[dict] = None) -> MemoryPlan:
    facts = (tuple((id(b.key), b.size, b.start, b.end, id(b.host)) for b in buffers),
             tuple(sorted((hint or {}).items())))
    for keys, known_facts, known in _RECENT:
        if known_facts == facts:
            return MemoryPlan(list(buffers), dict(known.offsets), list(known.inplace))
    plan = _place_fresh(buffers, hint)
    _RECENT.insert(0, ([(b.key, b.host) for b in buffers], facts, plan))
    del _RECENT[_RECENT_SIZE * len(TRY_HINTS):]
    return MemoryPlan(list(buffers), dict(plan.offsets), list(plan.inplace))


def _place_fresh(buffers: list, hint: Optional[dict] = None) -> MemoryPlan:
    plan = MemoryPlan(list(buffers))
    by_key = {b.key: b for b in buffers}
    root: dict = {}
    for b in buffers:                                  # resolve chains of in-place reuse
        r = b
        while r.host is not None and r.host in by_key:
            r = by_key[r.host]
        root[b.key] = r.key
        if r is not b:
            plan.inplace.append((b.key, b.host))
    # one placement unit per root: the union of its members' intervals, the max size
    units: dict = {}
    for b in buffers:
        u = units.setdefault(root[b.key], {"start": b.start, "end": b.end, "size": b.size})
        u["start"] = min(u["start"], b.start)
        u["end"] = max(u["end"], b.end)
        if b.size != u["size"] and _le(u["size"], b.size):
            u["size"] = b.size
    env = {}
    for u in units.values():
        for s in _symbols(u["size"]):
            env[s] = int((hint or {}).get(s, DEFAULT_HINT))
    order = sorted(units, key=lambda k: (-evaluate(units[k]["size"], env), units[k]["start"]))
    # Every offset is a sum of sizes, so every polynomial of this placement is a vector of
    # coefficients over the monomials of the sizes (constant first): comparing two is one
    # pass over a short tuple, where the sorted-pairs form built two dicts.
    sizes = {key: _poly(padded(u["size"])) for key, u in units.items()}
    basis = sorted({m for p in sizes.values() for m, _ in p} | {()})
    at = {m: k for k, m in enumerate(basis)}

    def vector(p: tuple) -> tuple:
        v = [0] * len(basis)
        for m, c in p:
            v[at[m]] = c
        return tuple(v)
    weights = tuple(_peval(((m, 1),), env) for m in basis)    # each monomial at `env`
    zero = (vector(()),)                       # the max expression {0}
    placed: list = []                          # (offset expr, top expr, start, end)
    offset_of: dict = {}
    # "top of a placed unit <= candidate" for candidates that are themselves {0} or a placed
    # top is asked again for every later unit they both clash with: remembered by the
    # identity of the two expressions (all kept alive by `placed`)
    below: dict = {}
    lasting = {id(zero)}

    def top_below(p, cand) -> bool:
        if id(cand) not in lasting:
            return _vmx_le(p[1], cand)
        k = (id(p[1]), id(cand))
        known = below.get(k)
        if known is None:
            known = below[k] = _vmx_le(p[1], cand)
        return known
    for key in order:
        u = units[key]
        size = vector(sizes[key])
        clash = [p for p in placed if p[2] <= u["end"] and u["start"] <= p[3]]
        above_all = _vmx_max(zero, *[p[1] for p in clash])
        best = None
        seen_cands: set = set()
        for cand in [zero] + [p[1] for p in clash] + [above_all]:
            if cand in seen_cands:                 # the same offset, already judged
                continue
            seen_cands.add(cand)
            top = tuple(tuple(map(operator.add, x, size)) for x in cand)
            if all(top_below(p, cand) or _vmx_le(top, p[0]) for p in clash):
                value = max(sum(map(operator.mul, x, weights)) for x in cand)
                if best is None or value < best[0]:
                    best = (value, cand)
        offset_of[key] = best[1]
        placed.append((best[1], tuple(tuple(map(operator.add, x, size)) for x in best[1]),
                       u["start"], u["end"]))
        lasting.add(id(placed[-1][1]))
    for b in buffers:
        plan.offsets[b.key] = tuple(_pdim(tuple((m, c) for m, c in zip(basis, x) if c))
                                    for x in offset_of[root[b.key]])
    return plan


def _vmx_le(a: tuple, b: tuple) -> bool:
    """max(a) <= max(b) for every binding, for max expressions of coefficient vectors (see
    _place_fresh): each term of a is below some term of b (no coefficient of the difference
    is negative)."""
    if len(a) == 1 and len(b) == 1:
        return all(map(operator.le, a[0], b[0]))
    return all(any(all(map(operator.le, x, y)) for y in b) for x in a)


def _vmx_max(*exprs) -> tuple:
    """The terms of all `exprs` (max expressions of coefficient vectors) that no other term
    dominates, in order of first appearance. Folded one expression at a time (dominance is
    transitive, so dropping a dominated term early never changes the result)."""
    acc: list = []
    for e in exprs:
        for x in e:
            if x in acc or any(all(map(operator.le, x, y)) for y in acc):
                continue                         # already there, or dominated
            acc = [y for y in acc if not all(map(operator.le, y, x))]
            acc.append(x)
    return tuple(acc)


# -- buffers of a graph ---------------------------------------------------------------------
def _reads_in_place(node: Node, value) -> bool:
    """Does `node` read `value` only at the position it writes its result (so that result may
    overwrite it)?"""
    out = node.outputs[-1]
    if tuple(value.type.shape) != tuple(out.type.shape):
        return False
    if node.op == "fused":
        if node.attrs["kind"] != "elementwise":
            return False
        body = node.attrs["body"]
        inner = [b for o, b in zip(node.inputs, body.inputs) if o is value]
        return all(n.op != "broadcast" for b in inner for n in body.nodes if b in n.inputs)
    from ir.opdef import get_op
    op = get_op(node.op)
    return op.fusion == "elementwise" and op.purity == "pure" and node.op not in (
        "constant", "iota", "dim_value") and len(node.outputs) == 1


def graph_buffers(graph: Graph, is_view: Callable = None, is_free: Callable = None,
                  inplace: bool = True) -> list:
    """The arena buffers of `graph` as the runtime lays them out: results of kernel nodes
    that are neither returned to the caller nor views, plus updates of parameters.

    `is_view(node) -> operand index or None` and `is_free(node) -> bool` (no kernel: a
    constant) default to reshape and constant; the runtime passes its lowering registry's."""
    is_view = is_view or (lambda n: 0 if n.op == "reshape" else None)
    is_free = is_free or (lambda n: n.op == "constant")
    end = len(graph.nodes)
    returned = {id(v) for name, v in zip(graph.output_names, graph.outputs)
                if name not in graph.aliases}
    updates = {id(v) for name, v in zip(graph.output_names, graph.outputs)
               if name in graph.aliases}
    root: dict = {}
    start: dict = {}
    arena: list = []
    for i, node in enumerate(graph.nodes):
        if not any(id(o) in returned for o in node.outputs):
            view = is_view(node)
            if view is not None:
                src = node.inputs[view]
                root[id(node.outputs[0])] = root.get(id(src), id(src))
                continue
            if is_free(node):
                continue
        for o in node.outputs:
            if id(o) not in returned:   # a returned result is written into the caller's array
                start[id(o)] = i
                arena.append(o)
    last: dict = {}
    for i, node in enumerate(graph.nodes):
        for v in node.inputs:
            last[root.get(id(v), id(v))] = i
    for v in graph.outputs:
        if id(v) in updates or id(v) in returned:
            last[root.get(id(v), id(v))] = end
    buffers = []
    keyed = {}
    for v in arena:
        b = Buffer(v, v.type.nbytes, start[id(v)], last.get(id(v), start[id(v)]))
        buffers.append(b)
        keyed[id(v)] = b
    if inplace:
        _mark_in_place(graph, keyed, root)
    return buffers


def _mark_in_place(graph: Graph, keyed: dict, root: dict) -> None:
    hosted = set()
    for i, node in enumerate(graph.nodes):
        out = node.outputs[-1]
        guest = keyed.get(id(out))
        if guest is None or guest.start != i:
            continue
        for v in node.inputs:
            host = keyed.get(id(v))
            if host is None or id(v) in hosted or host.end != i \
                    or any(r == id(v) for r in root.values()) \
                    or host.size != guest.size or not _reads_in_place(node, v):
                continue
            guest.host = v
            hosted.add(id(v))
            break


def parse_symbols(text: str) -> dict:
    """'N=128,M=4' -> {'N': 128, 'M': 4}."""
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        name, _, value = item.partition("=")
        out[name.strip()] = int(value)
    return out


def plan_graph(graph: Graph, hint: Optional[dict] = None, **kwargs) -> MemoryPlan:
    return place_buffers(graph_buffers(graph, **kwargs), hint)


@function_pass("plan-memory", "plan the arena: live intervals, in-place reuse, best-fit "
               "static offsets valid for every batch size (reports arena vs lower bound)",
               options=[PassOption("symbols", str, "N=64",
                                   "symbol values the report (and the placement's tie "
                                   "breaks) use, e.g. N=128")])
def plan_memory(graph: Graph, ctx: PassContext | None = None, symbols: str = "N=64"):
    env = parse_symbols(symbols)
    plan = plan_graph(graph, env)
    stats = plan.report(env)
    if ctx is not None:
        ctx.changed = False
        ctx.remark(f"arena {stats['arena_bytes']} bytes, lower bound "
                   f"{stats['lower_bound_bytes']}, unplanned {stats['unplanned_bytes']} "
                   f"(at {symbols})")
    return graph, stats
