"""What a fused group may contain: the checks the fusion pass runs before it merges groups,
and the row layout of reduction groups that codegen (runtime/codegen/fused.py) builds on.

Every check returns None when the group is fine, else the reason in words: the pass records
it as the refusal reason, so `graphc opt --explain-fusion` can say why two nodes were not
fused.

Group kinds
- elementwise: elementwise ops and broadcasts computed in ONE loop over the shape S of the
  values the group stores. Every node has shape S, except rank-0 values (scalars computed
  once per element; LLVM hoists them) that are not stored. A broadcast reads a group operand
  or an in-group scalar.
- contraction: a matmul or conv2d followed by an elementwise epilogue over its output
  (bias add, activation, relu mask), stored as the single result through the kernel's
  epilogue hook. Side inputs of the epilogue are operands (read at the output position) or
  broadcasts of operands along the output axes.
- reduction: reduce_sum/max/min with elementwise prologues and epilogues, computed by a
  row-wise kernel (see `RowLayout`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ir.opdef import get_op

REDUCE_OPS = ("reduce_sum", "reduce_max", "reduce_min")
CONTRACTION_OPS = ("matmul", "conv2d")
# elementwise ops the row-wise and epilogue emitters cannot place: they need the element's
# own coordinates or flat index in their result shape
NEEDS_POSITION = ("iota", "random_uniform")

# value levels inside a reduction group
FULL, ROW, COL, PRE, TOTAL = "full", "row", "col", "pre", "total"


def is_elementwise(node) -> bool:
    return get_op(node.op).fusion == "elementwise" and node.op != "constant"


def group_kind(nodes) -> str:
    if any(n.op in CONTRACTION_OPS for n in nodes):
        return "contraction"
    if any(n.op in REDUCE_OPS for n in nodes):
        return "reduction"
    return "elementwise"


def _desc(v) -> str:
    return f"%{v.name} ({v.producer.op if v.producer else 'input'})"


# -- elementwise -----------------------------------------------------------------------------
def check_elementwise(nodes, stored) -> Optional[str]:
    """`nodes`: the group in topological order; `stored`: the values it must write."""
    if not stored:
        return "the group would store nothing"
    shape = tuple(stored[0].type.shape)
    inside = {id(o) for n in nodes for o in n.outputs}
    for v in stored:
        if tuple(v.type.shape) != shape:
            return (f"it would store {_desc(v)} of shape {list(v.type.shape)} and "
                    f"{_desc(stored[0])} of shape {list(shape)}: one loop writes one shape")
    for n in nodes:
        if n.op != "broadcast" and not is_elementwise(n):
            return f"{n.op} is not elementwise"
        out = n.outputs[0]
        if tuple(out.type.shape) != shape and out.type.rank != 0:
            return (f"{_desc(out)} has shape {list(out.type.shape)}, but the loop runs over "
                    f"{list(shape)}: it would be recomputed for every element")
        if n.op == "broadcast" and id(n.inputs[0]) in inside and n.inputs[0].type.rank != 0:
            return (f"broadcast {_desc(out)} of an in-group value of shape "
                    f"{list(n.inputs[0].type.shape)}: only group operands and scalars are "
                    f"broadcast inside a loop")
    return None


# -- contraction -----------------------------------------------------------------------------
def check_contraction(nodes, stored) -> Optional[str]:
    heads = [n for n in nodes if n.op in CONTRACTION_OPS]
    if len(heads) != 1:
        return f"a kernel computes one contraction, the group has {len(heads)}"
    head = heads[0]
    if len(stored) != 1:
        names = ", ".join(_desc(v) for v in stored)
        return (f"the {head.op} epilogue stores one value, the group would store "
                f"{len(stored)} ({names})")
    out = head.outputs[0]
    if stored[0].type != out.type:
        return (f"the epilogue result {_desc(stored[0])} is {stored[0].type}, but "
                f"{head.op} writes {out.type}")
    inside = {id(o) for n in nodes for o in n.outputs}
    if any(id(v) in inside for v in head.inputs):
        return (f"a prologue of the {head.op} (it reads its operands from memory, packed; "
                f"only an epilogue is fused)")
    for n in nodes:
        if n is head:
            continue
        if n.op in NEEDS_POSITION:
            return f"{n.op} needs its element position, which an epilogue does not provide"
        if n.op != "broadcast" and not is_elementwise(n):
            return f"{n.op} is not elementwise"
        t = n.outputs[0].type
        if tuple(t.shape) != tuple(out.type.shape) and t.rank != 0:
            return (f"{_desc(n.outputs[0])} has shape {list(t.shape)}, not the {head.op} "
                    f"output shape {list(out.type.shape)}")
        if n.op == "broadcast":
            src = n.inputs[0]
            if id(src) in inside and src.type.rank != 0:
                return f"broadcast of an in-group value {_desc(src)}"
            if head.op == "matmul" and out.type.rank > 2 and \
                    any(d < out.type.rank - 2 for d in n.attrs["dims"]):
                return "a broadcast along the batch axes of a batched matmul"
    return None


# -- reduction: the row layout ---------------------------------------------------------------
@dataclass
class RowLayout:
    """How a reduction group runs: a loop over the R rows of the domain D = rows x cols
    (row axes D[:k], column axes D[k:]), with per-row passes over the C columns.

    Levels: FULL values have the domain's shape (computed per element, in the column pass
    that needs them: a row's earlier reductions are complete by then); ROW values one per
    row (reduced over the columns, or elementwise on those); COL values one per column
    (reduced over the rows, accumulated across the row loop: only stored); PRE values are
    scalars known before the loop (from scalar operands); TOTAL values scalars reduced over
    everything, known after the loop (only their scalar epilogue may use them).
    `leaf_index[id(v)]`: how an operand read at a FULL position is indexed: "full" (r*C+c),
    "row" (r), "col" (c) or "scalar" (0)."""
    domain: tuple
    k: int
    level: dict = field(default_factory=dict)        # id(Value) -> level (operands too)
    leaf_index: dict = field(default_factory=dict)   # id(operand or broadcast) -> index kind


def _axes(node):
    rank = node.inputs[0].type.rank
    return sorted({a % rank for a in node.attrs["axes"]}) if rank else []


def _non_unit_axes(src_shape, dims) -> list:
    return [d for i, d in enumerate(dims) if src_shape[i] != 1]


def row_layout(nodes, operands, stored):
    """(RowLayout, None) for a valid reduction group, else (None, reason)."""
    reductions = [n for n in nodes if n.op in REDUCE_OPS]
    if not reductions:
        return None, "no reduction in the group"
    widest = max(reductions, key=lambda n: n.inputs[0].type.rank)
    domain = tuple(widest.inputs[0].type.shape)
    d = len(domain)
    if d == 0:
        return None, "a reduction of a scalar"
    ks = set()
    for n in reductions:
        if tuple(n.inputs[0].type.shape) != domain:
            continue
        axes = _axes(n)
        if len(axes) == d or not axes:
            continue
        if axes == list(range(d - len(axes), d)):
            ks.add(d - len(axes))
        elif axes == list(range(len(axes))):
            ks.add(len(axes))
        else:
            return None, (f"{n.op} over axes {axes} of {list(domain)} reduces neither the "
                          f"leading nor the trailing axes")
    if len(ks) > 1:
        return None, (f"reductions split the domain {list(domain)} at different axes "
                      f"({sorted(ks)}): one row loop cannot serve them all")
    k = ks.pop() if ks else max(d - 1, 0)
    layout = RowLayout(domain, k)
    row_shapes = {domain[:k], domain[:k] + (1,) * (d - k)}
    operand_ids = {id(v) for v in operands}
    level = layout.level

    def shape_level(shape):
        shape = tuple(shape)
        if shape == domain:
            return FULL
        if shape in row_shapes:
            return ROW
        if all(s == 1 for s in shape):
            return PRE
        return None

    for n in nodes:
        out = n.outputs[0]
        if n.op == "random_uniform":
            return None, f"{n.op} needs its own flat index, which a row kernel does not keep"
        if n.op in REDUCE_OPS:
            src = level.get(id(n.inputs[0])) if id(n.inputs[0]) not in operand_ids else None
            src = src or shape_level(n.inputs[0].type.shape)
            axes = _axes(n)
            rank = n.inputs[0].type.rank
            if src == FULL and axes == list(range(k, d)) and k < d:
                level[id(out)] = ROW
            elif src == FULL and axes == list(range(k)) and k > 0:
                level[id(out)] = COL
            elif src in (FULL, ROW) and len(axes) == rank:
                level[id(out)] = TOTAL
            else:
                return None, (f"{n.op} %{out.name} over axes {axes} of a {src or 'foreign'} "
                              f"value does not fit the row layout of {list(domain)}")
            if id(n.inputs[0]) in operand_ids:
                layout.leaf_index[id(n.inputs[0])] = "full" if src == FULL else "row"
                level.setdefault(id(n.inputs[0]), src)
            continue
        if n.op == "broadcast":
            reason = _broadcast_level(n, layout, operand_ids, row_shapes, shape_level)
            if reason:
                return None, reason
            continue
        if not is_elementwise(n):
            return None, f"{n.op} is not elementwise"
        levels = {level[id(v)] for v in n.inputs if id(v) in level}
        if COL in levels:
            return None, (f"{n.op} %{out.name} uses a column reduction, which is complete "
                          f"only after every row: needs a second kernel")
        own = shape_level(out.type.shape)
        if own is None:
            return None, (f"{_desc(out)} of shape {list(out.type.shape)} fits no level of the "
                          f"row layout {list(domain)}")
        if TOTAL in levels and own != PRE:
            return None, (f"{n.op} %{out.name} uses a total over every row inside the row "
                          f"loop: a reduction output feeds a broadcast over the reduced axis, "
                          f"which needs a second pass")
        level[id(out)] = TOTAL if (own == PRE and TOTAL in levels) else own
        for v in n.inputs:
            if id(v) in operand_ids:
                layout.leaf_index[id(v)] = {FULL: "full", ROW: "row"}.get(own, "scalar")
                level.setdefault(id(v), own if own != TOTAL else PRE)
    for v in stored:
        if level.get(id(v)) is None:
            return None, f"{_desc(v)} has no level"
    return layout, None


def _broadcast_level(n, layout: RowLayout, operand_ids, row_shapes, shape_level):
    out, src = n.outputs[0], n.inputs[0]
    level, d, k = layout.level, len(layout.domain), layout.k
    own = shape_level(out.type.shape)
    src_level = level.get(id(src))
    mapped = _non_unit_axes(src.type.shape, n.attrs["dims"])
    if id(src) in operand_ids or src_level is None:
        if not mapped:
            kind = "scalar"
        elif own == FULL and mapped == list(range(k)):
            kind = "row"
        elif own == FULL and mapped == list(range(k, d)):
            kind = "col"
        elif own == FULL and mapped == list(range(d)):
            kind = "full"
        elif own == ROW and mapped == list(range(len(mapped))) and len(mapped) == k:
            kind = "row"
        else:
            return (f"broadcast {_desc(out)} spreads an operand along axes {mapped} of "
                    f"{list(layout.domain)}: the row kernel reads operands by row, by "
                    f"column or whole")
        if own is None:
            return f"broadcast {_desc(out)} has a shape outside the row layout"
        layout.leaf_index[id(n)] = kind
        level[id(out)] = own
        return None
    if src_level in (COL, TOTAL):
        return (f"broadcast {_desc(out)} of a {'column' if src_level == COL else 'total'} "
                f"reduction: a reduction output feeds a broadcast over the reduced axis, "
                f"which needs a second pass")
    if src_level == PRE:
        level[id(out)] = own
        layout.leaf_index[id(n)] = "scalar"
        return None if own else f"broadcast {_desc(out)} has a shape outside the row layout"
    if src_level == ROW and own == FULL and (mapped == list(range(k)) or not mapped):
        level[id(out)] = FULL
        layout.leaf_index[id(n)] = "row"
        return None
    if src_level == own:
        level[id(out)] = own
        layout.leaf_index[id(n)] = "same"
        return None
    return (f"broadcast {_desc(out)} of a {src_level} value to {list(out.type.shape)} does "
            f"not fit the row layout")


def check_reduction(nodes, operands, stored) -> Optional[str]:
    layout, reason = row_layout(nodes, operands, stored)
    if reason:
        return reason
    inside = {id(o) for n in nodes for o in n.outputs}
    for n in nodes:
        for v in n.inputs:
            if id(v) in inside and layout.level.get(id(v)) == COL:
                return (f"{n.op} uses the column reduction {_desc(v)} inside the group: it "
                        f"is complete only after the last row")
    return None


def check_group(nodes, operands, stored) -> Optional[str]:
    if not operands:
        return ("the group would read nothing (a computation from constants and sizes only: "
                "each node stays a kernel of its own)")
    kind = group_kind(nodes)
    if kind == "contraction":
        return check_contraction(nodes, stored)
    if kind == "reduction":
        return check_reduction(nodes, operands, stored)
    return check_elementwise(nodes, stored)
