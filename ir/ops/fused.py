"""The `fused` op: a group of nodes the fusion pass made into one, computed by ONE kernel.

    %7, %8 = fused(%x, %b) {kind="elementwise", body=graph @fused_3(%0: f32[N,4], %1: f32[4]) {
        ...
        return %5 as "r0", %6 as "r1"
      }} : f32[N,4], f32[N,4] loc(fused["mlp.py":12 "net/dense1", "mlp.py":13 "net/relu"])

Operands are the group's external values, in the order of the body's inputs (same types);
the results are the body's outputs (any number: the op's result count comes from the body).
`kind` names the kernel family codegen uses: "elementwise" (one loop), "reduction" (a
row-wise kernel with passes over each row), "contraction" (a matmul/conv with an epilogue).
The reference runs the body with the reference interpreter, so a fused graph computes exactly
what the unfused one did. Fusion runs after autodiff, so `fused` never needs a gradient.
"""
from __future__ import annotations

import numpy as np

from .. import dtypes as dt
from ..attrs import AttrSpec
from ..errors import AttrError, ShapeError
from ..graph import Graph
from ..opdef import Cost, OpDef, get_op, register
from ..symbolic import SymDim, dim_add, substitute
from ..types import TensorType

FUSED_KINDS = ("elementwise", "reduction", "contraction")


def _body(attrs) -> Graph:
    body = attrs.get("body")
    if not isinstance(body, Graph):
        raise AttrError(f"fused: attribute 'body' must be a nested graph, found {body!r:.60}")
    return body


def _result_count(attrs) -> int:
    body = attrs.get("body")
    return len(body.outputs) if isinstance(body, Graph) else 1


def _infer(ins, attrs):
    body = _body(attrs)
    if attrs["kind"] not in FUSED_KINDS:
        raise AttrError(f"fused: kind must be one of {', '.join(FUSED_KINDS)}, found "
                        f"{attrs['kind']!r}")
    if len(ins) != len(body.inputs):
        raise ShapeError(f"fused: the body @{body.name} takes {len(body.inputs)} operand(s), "
                         f"found {len(ins)}")
    binding: dict = {}
    for k, (t, v) in enumerate(zip(ins, body.inputs)):
        if not _instance_of(t, v.type, binding):
            raise ShapeError(f"fused: operand {k} is {t}, but body input %{v.name} is {v.type}")
        if v.role != "input":
            raise ShapeError(f"fused: body input %{v.name} has role {v.role!r}; a fused body "
                             f"takes plain inputs (the outer graph owns params and state)")
    if body.aliases or body.initializers:
        raise ShapeError(f"fused: the body @{body.name} must not update inputs in place or "
                         f"carry initializers")
    if not body.outputs:
        raise ShapeError(f"fused: the body @{body.name} has no outputs")
    return [TensorType(tuple(substitute(d, binding) for d in v.type.shape), v.type.dtype)
            for v in body.outputs]


def _instance_of(t: TensorType, pattern: TensorType, binding: dict) -> bool:
    """Does operand type `t` fit body input type `pattern`? A bare symbol of the body binds to
    the operand's dim (consistently), so a body stays valid when the outer graph's batch dim
    is specialised (shape-infer) after fusion; every other dim must be equal."""
    if t.dtype != pattern.dtype or t.rank != pattern.rank:
        return False
    for d, p in zip(t.shape, pattern.shape):
        if isinstance(p, SymDim) and len(p.terms) == 1 and p.terms[0][1] == 1 \
                and len(p.terms[0][0]) == 1:
            name = p.terms[0][0][0]
            if binding.setdefault(name, d) != d:
                return False
        elif substitute(p, binding) != d:
            return False
    return True


def run_body(body: Graph, args) -> tuple:
    """Run a fused body on numpy operands with the reference interpreter.

    The precision follows the operands: when the outer interpreter runs in float64, f32
    operands arrive as f64 arrays and the body is computed in float64 too."""
    from ..interpreter import _compute_dtype, bind_symbols, current_env, resolve_attrs
    promoted = any(v.type.dtype is dt.f32 and np.asarray(a).dtype == np.float64
                   for v, a in zip(body.inputs, args))
    precision = dt.f64 if promoted else dt.f32
    arrays = {v.name: np.asarray(a) for v, a in zip(body.inputs, args)}
    env = bind_symbols(body, arrays, current_env())
    values = {v: arrays[v.name] for v in body.inputs}
    for node in body.nodes:
        opdef = get_op(node.op)
        attrs = resolve_attrs(opdef, node.attrs, env, precision)
        result = opdef.reference([values[v] for v in node.inputs], attrs)
        results = result if isinstance(result, (tuple, list)) else (result,)
        for out, arr in zip(node.outputs, results):
            want = _compute_dtype(out.type.dtype, precision).np_dtype
            values[out] = np.asarray(arr).astype(want, copy=False)
    return tuple(values[v] for v in body.outputs)


def _reference(ins, attrs):
    out = run_body(attrs["body"], ins)
    return out[0] if len(out) == 1 else out


def _cost(ins, outs, attrs):
    binding: dict = {}
    for t, v in zip(ins, attrs["body"].inputs):
        _instance_of(t, v.type, binding)
    flops = 0
    for node in attrs["body"].nodes:
        op = get_op(node.op)
        if op.cost is not None:
            c = op.cost([v.type for v in node.inputs], [v.type for v in node.outputs],
                        node.attrs)
            flops = dim_add(flops, substitute(c.flops, binding))
    nbytes = 0
    for t in list(ins) + list(outs):
        nbytes = dim_add(nbytes, t.nbytes)
    return Cost(flops, nbytes)


register(OpDef("fused", ("operands*",),
               {"kind": AttrSpec("str", doc="kernel family: " + ", ".join(FUSED_KINDS)),
                "body": AttrSpec("graph", doc="the fused nodes as a nested graph")},
               _infer, _reference, fusion="opaque", cost=_cost, num_outputs=_result_count,
               doc="a group of nodes computed by one kernel (made by the fusion pass)"))
