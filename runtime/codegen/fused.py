"""Lowering of `fused` nodes: ONE kernel per fused group, by the group's kind.

- elementwise: the body's nodes go to `emit_elementwise_group` as one loop (explicit
  `<W x T>` vectors when the loop is flat). A broadcast of a scalar is dropped first: its
  consumers read the scalar itself, which the loop hoists, so the loop stays flat.
- contraction: the matmul/conv2d kernel with an epilogue (runtime/codegen/epilogue.py) that
  computes the rest of the body at each finished output value (vectors of lanes along one
  output axis, masked at edges): bias adds, activations, relu masks. Only the last value is
  stored; the raw product never reaches memory.
- reduction: a row-wise kernel following passes/fusion_rules.RowLayout. Per row: one pass
  over the row's columns for each reduction into that row (softmax: a max pass, a
  sum-of-exp pass), in program order; row-level values in registers; then one final pass
  that writes every full-shape result and accumulates column and total reductions. Scalars
  known before the loop are computed once up front; totals' scalar epilogues (a mean's
  division) after the loop. Full-shape values are recomputed in each pass that needs them:
  cheaper than a round trip through memory for elementwise chains.
"""
from __future__ import annotations

import llvmlite.ir as ir
import numpy as np

from ir import CompileError
from passes.fusion_rules import (COL, CONTRACTION_OPS, FULL, PRE, REDUCE_OPS, ROW, TOTAL,
                                 row_layout)

from . import helpers as h
from .conv import emit_conv2d
from .elementwise import NEEDS_COORDS, emit_elementwise_group, vector_lanes
from .kernel import KernelBuilder
from .matmul import emit_matmul
from .reduce import combine, horizontal, reduce_identity
from .registry import lowering
from .scalar import ElementContext, emit_element


@lowering("fused")
def lower_fused(kb: KernelBuilder, node) -> None:
    body = node.attrs["body"]
    for k, (outer, inner) in enumerate(zip(node.inputs, body.inputs)):
        if outer.type != inner.type:
            raise CompileError(f"fused body @{body.name}: operand {k} is {outer.type} but the "
                               f"body input is {inner.type} (re-run fusion after specialising "
                               f"shapes)", node.loc)
    kind = node.attrs["kind"]
    if kind == "elementwise":
        emit_fused_elementwise(kb, body)
    elif kind == "contraction":
        emit_fused_contraction(kb, body)
    elif kind == "reduction":
        emit_fused_rows(kb, body)
    else:
        raise CompileError(f"fused kind {kind!r} has no kernel family", node.loc)


# -- elementwise ---------------------------------------------------------------------------
def _drop_scalar_broadcasts(nodes):
    """Nodes with every broadcast of a rank-0 value removed (uses read the scalar directly),
    and the map broadcast result -> scalar."""
    subst, out = {}, []
    for n in nodes:
        ins = [subst.get(id(v), v) for v in n.inputs]
        if n.op == "broadcast" and ins[0].type.rank == 0:
            subst[id(n.outputs[0])] = ins[0]
            continue
        if any(a is not b for a, b in zip(ins, n.inputs)):
            n = type(n)(n.op, ins, n.attrs, n.outputs, n.loc)
        out.append(n)
    return out, subst


def emit_fused_elementwise(kb: KernelBuilder, body) -> None:
    nodes, subst = _drop_scalar_broadcasts(body.nodes)
    leaves = dict(zip(body.inputs, kb.inputs))
    stores = [(subst.get(id(v), v), buf) for v, buf in zip(body.outputs, kb.outputs)]
    flat = not any(n.op in NEEDS_COORDS for n in nodes)
    rank = len(body.outputs[0].type.shape)
    values = [o for n in nodes for o in n.outputs] + list(body.inputs)
    lanes = vector_lanes(kb, values) if flat and rank > 0 else 1
    emit_elementwise_group(kb, nodes, leaves, stores, lanes)


# -- contraction ---------------------------------------------------------------------------
def emit_fused_contraction(kb: KernelBuilder, body) -> None:
    heads = [n for n in body.nodes if n.op in CONTRACTION_OPS]
    if len(heads) != 1 or len(body.outputs) != 1:
        raise CompileError(f"fused contraction @{body.name} needs one matmul/conv2d and one "
                           f"result")
    head = heads[0]
    leaves = dict(zip(body.inputs, kb.inputs))
    for v in head.inputs:
        if v not in leaves:
            raise CompileError(f"fused contraction @{body.name}: {head.op} operand %{v.name} "
                               f"must be a group operand")
    out_buf = kb.outputs[0]
    rank = out_buf.rank
    epilogue_nodes = [n for n in body.nodes if n is not head]
    producer = {id(o): n for n in epilogue_nodes for o in n.outputs}
    result = body.outputs[0]

    def kernel_coord(site, axis):
        if head.op == "matmul":
            return site.coords[axis - (rank - 2) + 1]
        return site.coords[axis]

    def lane_axis(site):
        if head.op == "matmul":
            return rank - 2 + site.lane_axis - 1
        return site.lane_axis

    def epilogue(b, value, site):
        memo = {id(head.outputs[0]): value}

        def splat(x):
            return h.splat(b, x, site.lanes) if site.lanes > 1 else x

        def load_leaf(v, src_axes_to_out=None):
            buf = leaves[v]
            if buf.rank == 0:
                return splat(kb.load(buf, h.i64(0)))
            if src_axes_to_out is None:                      # the output's own shape
                return site.load_lanes(b, buf.ptr, buf.dtype, site.index, site.lane_stride)
            strides = kb.strides(buf.shape)
            start, lane_stride = h.i64(0), None
            for i, out_axis in enumerate(src_axes_to_out):
                if buf.shape[i] == 1:
                    continue
                start = h.add(b, start, h.mul(b, kernel_coord(site, out_axis), strides[i]))
                if site.lanes > 1 and out_axis == lane_axis(site):
                    lane_stride = strides[i]
            if lane_stride is None:
                return splat(h.load_element(b, buf.ptr, start, buf.dtype, buf.dtype.itemsize))
            return site.load_lanes(b, buf.ptr, buf.dtype, start, lane_stride)

        def val(v):
            key = id(v)
            if key in memo:
                return memo[key]
            n = producer.get(key)
            if n is None:
                out = load_leaf(v)
            elif n.op == "broadcast":
                src = n.inputs[0]
                out = val(src) if src.type.rank == 0 or src not in leaves \
                    else load_leaf(src, n.attrs["dims"])
            else:
                ec = ElementContext(b, kb, n, site.index, None, site.lanes, site.index)
                out = emit_element(ec, [val(x) for x in n.inputs])
            memo[key] = out
            return out

        return val(result)

    a, w = (leaves[v] for v in head.inputs)
    if head.op == "matmul":
        emit_matmul(kb, a, w, out_buf, head.attrs["transpose_a"], head.attrs["transpose_b"],
                    epilogue=epilogue)
    else:
        emit_conv2d(kb, a, w, out_buf, head.attrs, epilogue=epilogue)


# -- reduction: the row kernel -------------------------------------------------------------
class _RowKernel:
    def __init__(self, kb: KernelBuilder, body):
        layout, reason = row_layout(body.nodes, body.inputs, body.outputs)
        if reason:
            raise CompileError(f"fused reduction @{body.name}: {reason}")
        self.kb, self.b, self.body, self.layout = kb, kb.b, body, layout
        d, k = layout.domain, layout.k
        self.row_dims, self.col_dims = d[:k], d[k:]
        self.leaves = dict(zip(body.inputs, kb.inputs))
        self.producer = {id(o): n for n in body.nodes for o in n.outputs}
        self.level = layout.level
        self.pre: dict = {}
        self.row: dict = {}
        self.full: dict = {}
        self.r = self.c = None
        # > 1: FULL values are computed `lanes` columns at a time (`<lanes x T>`); the column
        # passes then run in vectors and finish the row's remainder with scalars
        self.lanes = 1
        self.vector_lanes = self._vector_lanes()

    def lvl(self, v):
        return self.level.get(id(v))

    # values by level ----------------------------------------------------------------------
    def leaf_at(self, v, index):
        buf = self.leaves[v]
        return self.kb.load(buf, h.i64(0) if buf.rank == 0 else index)

    def _vector_lanes(self) -> int:
        """W when the columns can be computed in vectors (a row holds at least one)."""
        cols = self.col_dims
        values = [o for n in self.body.nodes for o in n.outputs] + list(self.body.inputs)
        lanes = vector_lanes(self.kb, values)
        static = all(isinstance(d, int) for d in cols)
        if lanes < 2 or not cols or (static and int(np.prod(cols)) < lanes):
            return 1
        return lanes

    def splat(self, value):
        return h.splat(self.b, value, self.lanes) if self.lanes > 1 else value

    def lanes_at(self, v, index):
        """A leaf read at FULL/COL positions `index` .. + lanes (contiguous along a row)."""
        buf = self.leaves[v]
        if buf.rank == 0 or self.lanes == 1:
            return self.splat(self.leaf_at(v, index))
        return h.load_element(self.b, buf.ptr, index, buf.dtype, buf.dtype.itemsize,
                              self.lanes)

    def pre_val(self, v):
        if id(v) in self.pre:
            return self.pre[id(v)]
        n = self.producer.get(id(v))
        if n is None:
            out = self.leaf_at(v, h.i64(0))
        elif n.op == "broadcast":
            out = self.pre_val(n.inputs[0])
        else:
            ec = ElementContext(self.b, self.kb, n, h.i64(0), [h.i64(0)] * len(v.type.shape))
            out = emit_element(ec, [self.pre_val(x) for x in n.inputs])
        self.pre[id(v)] = out
        return out

    def row_val(self, v):
        if id(v) in self.row:
            return self.row[id(v)]
        n = self.producer.get(id(v))
        if n is None:
            return self.leaf_at(v, self.r)
        if self.lvl(v) == PRE:
            return self.pre_val(v)
        raise CompileError(f"row value %{v.name} used before its row pass (codegen order bug)")

    def full_val(self, v):
        key = id(v)
        if key in self.full:
            return self.full[key]
        n = self.producer.get(key)
        if n is None:
            out = self.lanes_at(v, self.flat())
        elif self.lvl(v) == PRE:
            out = self.splat(self.pre_val(v))
        elif self.lvl(v) == ROW:
            out = self.splat(self.row_val(v))
        elif n.op == "broadcast":
            out = self._broadcast_full(n)
        else:
            base = self.flat()
            flat = base if self.lanes == 1 else self.b.add(self.splat(base), self._steps())
            ec = ElementContext(self.b, self.kb, n, flat, self.coords(), self.lanes, base)
            out = emit_element(ec, [self.full_val(x) for x in n.inputs])
        self.full[key] = out
        return out

    def _broadcast_full(self, n):
        src = n.inputs[0]
        kind = self.layout.leaf_index.get(id(n))
        inner = src in self.leaves
        if kind == "scalar":
            return self.splat(self.leaf_at(src, h.i64(0)) if inner else self.pre_val(src))
        if kind == "row":
            return self.splat(self.leaf_at(src, self.r) if inner else self.row_val(src))
        if kind == "col":
            return self.lanes_at(src, self.c)
        if kind == "full":
            return self.lanes_at(src, self.flat())
        return self.full_val(src)

    def flat(self):
        return h.add(self.b, h.mul(self.b, self.r, self.kb.numel(self.col_dims)), self.c)

    def _steps(self):
        return ir.Constant(ir.VectorType(h.I64, self.lanes),
                           [h.i64(k) for k in range(self.lanes)])

    def coords(self):
        """Coordinates of the current element (unflattened from the row and column; in
        vector mode, of every lane)."""
        def unflatten(index, dims):
            out = []
            for d in reversed(dims):
                e = self.splat(self.kb.dim(d)) if index.type != h.I64 else self.kb.dim(d)
                out.append(self.b.urem(index, e))
                index = self.b.udiv(index, e)
            return list(reversed(out))
        if self.lanes == 1:
            return unflatten(self.r, self.row_dims) + unflatten(self.c, self.col_dims)
        cols = self.b.add(self.splat(self.c), self._steps())
        return [self.splat(x) for x in unflatten(self.r, self.row_dims)] + \
            unflatten(cols, self.col_dims)

    # the kernel -----------------------------------------------------------------------------
    def emit(self) -> None:
        kb, b, body = self.kb, self.b, self.body
        out_buf = {id(v): buf for v, buf in zip(body.outputs, kb.outputs)}
        nodes = body.nodes
        for n in nodes:                                   # scalars known before the loop
            if self.lvl(n.outputs[0]) == PRE:
                self.pre_val(n.outputs[0])
        for v in body.outputs:
            if self.lvl(v) == PRE:
                kb.store(out_buf[id(v)], h.i64(0), self.pre_val(v))
        totals, cols = {}, []
        for n in nodes:
            if n.op in REDUCE_OPS and self.lvl(n.outputs[0]) == TOTAL:
                slot = kb.local(h.register_type(n.outputs[0].type.dtype), "total")
                kb.put(slot, reduce_identity(n.op, n.outputs[0].type.dtype))
                totals[id(n)] = slot
            if n.op in REDUCE_OPS and self.lvl(n.outputs[0]) == COL:
                buf = out_buf[id(n.outputs[0])]
                with h.counted_loop(b, kb.numel(buf.shape), name="colinit") as i:
                    kb.store(buf, i, reduce_identity(n.op, n.outputs[0].type.dtype))
                cols.append(n)
        rows = kb.numel(self.row_dims)
        cols_n = kb.numel(self.col_dims)
        with h.counted_loop(b, rows, name="row") as r:
            self.r, self.row = r, {}
            for n in nodes:
                out = n.outputs[0]
                level = self.lvl(out)
                if level == ROW and n.op in REDUCE_OPS:
                    self.row[id(out)] = self._column_pass_reduce(n, cols_n)
                elif level == ROW:
                    self.row[id(out)] = self._row_node(n)
                elif level == TOTAL and n.op in REDUCE_OPS and self.lvl(n.inputs[0]) != FULL:
                    slot = totals[id(n)]
                    kb.put(slot, combine(b, n.op, kb.get(slot, h.register_type(out.type.dtype)),
                                          self.row_val(n.inputs[0])))
            full_stores = [v for v in body.outputs if self.lvl(v) == FULL]
            full_totals = [n for n in nodes if id(n) in totals and self.lvl(n.inputs[0]) == FULL]
            if full_stores or cols or full_totals:
                vend = self._vector_end(cols_n)
                if self.vector_lanes > 1:
                    self._write_vectors(vend, full_stores, cols, full_totals, totals, out_buf)
                with h.counted_loop(b, cols_n, start=vend, name="write") as c:
                    self.c, self.full = c, {}
                    for v in full_stores:
                        kb.store(out_buf[id(v)], self.flat(), self.full_val(v))
                    for n in cols:
                        buf = out_buf[id(n.outputs[0])]
                        acc = kb.load(buf, c)
                        kb.store(buf, c, combine(b, n.op, acc, self.full_val(n.inputs[0])))
                    for n in full_totals:
                        slot = totals[id(n)]
                        typ = h.register_type(n.outputs[0].type.dtype)
                        kb.put(slot, combine(b, n.op, kb.get(slot, typ),
                                              self.full_val(n.inputs[0])))
            for v in body.outputs:
                if self.lvl(v) == ROW:
                    kb.store(out_buf[id(v)], r, self.row_val(v))
        self._after_loop(nodes, totals, out_buf)

    def _vector_end(self, cols_n):
        """The first column the scalar remainder handles (all of them without vectors)."""
        if self.vector_lanes == 1:
            return h.i64(0)
        w = h.i64(self.vector_lanes)
        return self.b.mul(self.b.udiv(cols_n, w), w, name="cols.vend")

    def _column_pass_reduce(self, n, cols_n):
        kb, b = self.kb, self.b
        dtype = n.outputs[0].type.dtype
        typ = h.register_type(dtype)
        slot = kb.local(typ, "rowacc")
        kb.put(slot, reduce_identity(n.op, dtype))
        vend = self._vector_end(cols_n)
        if self.vector_lanes > 1:
            w = self.vector_lanes
            vslot = kb.local(ir.VectorType(typ, w), "rowacc.v")
            kb.put(vslot, h.splat(b, reduce_identity(n.op, dtype), w))
            with h.counted_loop(b, vend, step=w, name="vpass") as c:
                self.c, self.full, self.lanes = c, {}, w
                kb.put(vslot, combine(b, n.op, kb.get(vslot, vslot.type.pointee),
                                      self.full_val(n.inputs[0])))
            self.lanes = 1
            kb.put(slot, horizontal(b, n.op, kb.get(vslot, vslot.type.pointee)))
        with h.counted_loop(b, cols_n, start=vend, name="pass") as c:
            self.c, self.full = c, {}
            kb.put(slot, combine(b, n.op, kb.get(slot, typ), self.full_val(n.inputs[0])))
        self.c, self.full = None, {}
        return kb.get(slot, typ)

    def _write_vectors(self, vend, full_stores, cols, full_totals, totals, out_buf) -> None:
        """The write pass over columns [0, vend) in vectors: FULL results stored, COL
        reductions combined into their outputs, TOTAL ones into per-row vector partials
        folded into their scalar totals at the end of the row."""
        kb, b, w = self.kb, self.b, self.vector_lanes
        partial = {}
        for n in full_totals:
            typ = h.register_type(n.outputs[0].type.dtype)
            partial[id(n)] = kb.local(ir.VectorType(typ, w), "total.v")
            kb.put(partial[id(n)], h.splat(b, reduce_identity(n.op, n.outputs[0].type.dtype), w))
        with h.counted_loop(b, vend, step=w, name="vwrite") as c:
            self.c, self.full, self.lanes = c, {}, w
            for v in full_stores:
                buf = out_buf[id(v)]
                h.store_element(b, self.full_val(v), buf.ptr, self.flat(), buf.dtype,
                                buf.dtype.itemsize)
            for n in cols:
                buf = out_buf[id(n.outputs[0])]
                acc = h.load_element(b, buf.ptr, c, buf.dtype, buf.dtype.itemsize, w)
                h.store_element(b, combine(b, n.op, acc, self.full_val(n.inputs[0])), buf.ptr,
                                c, buf.dtype, buf.dtype.itemsize)
            for n in full_totals:
                slot = partial[id(n)]
                kb.put(slot, combine(b, n.op, kb.get(slot, slot.type.pointee),
                                     self.full_val(n.inputs[0])))
        self.lanes, self.c, self.full = 1, None, {}
        for n in full_totals:
            slot, typ = totals[id(n)], h.register_type(n.outputs[0].type.dtype)
            folded = horizontal(b, n.op, kb.get(partial[id(n)], partial[id(n)].type.pointee))
            kb.put(slot, combine(b, n.op, kb.get(slot, typ), folded))

    def _row_node(self, n):
        src = n.inputs[0] if n.inputs else None
        if n.op == "broadcast":
            kind = self.layout.leaf_index.get(id(n))
            if src in self.leaves:
                return self.leaf_at(src, h.i64(0) if kind == "scalar" else self.r)
            return self.pre_val(src) if self.lvl(src) == PRE else self.row_val(src)
        ec = ElementContext(self.b, self.kb, n, self.r, None)
        return emit_element(ec, [self.row_val(x) for x in n.inputs])

    def _after_loop(self, nodes, totals, out_buf) -> None:
        kb, b = self.kb, self.b
        done: dict = {}
        for n in nodes:
            out = n.outputs[0]
            if self.lvl(out) != TOTAL:
                continue
            if id(n) in totals:
                done[id(out)] = kb.get(totals[id(n)], h.register_type(out.type.dtype))
                continue
            args = [done[id(x)] if id(x) in done else self.pre_val(x) for x in n.inputs]
            if n.op == "broadcast":
                done[id(out)] = args[0]
                continue
            done[id(out)] = emit_element(ElementContext(b, kb, n, h.i64(0), None), args)
        for v in self.body.outputs:
            if self.lvl(v) == TOTAL:
                kb.store(out_buf[id(v)], h.i64(0), done[id(v)])


def emit_fused_rows(kb: KernelBuilder, body) -> None:
    _RowKernel(kb, body).emit()
