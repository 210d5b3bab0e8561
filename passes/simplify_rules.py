"""The rule table of `simplify`: named local rewrites, each exact for IEEE floats unless marked
fast-math.

A rule is a function `fn(rw, node) -> Value | None` over a node whose op is in `rule.ops`:
it returns the value that replaces the node's (single) result, or None. It may emit new nodes
through `rw.emit` (they are placed right before the node). `rw.uniform(v)` is the one value
every element of `v` holds when `v` is a constant (possibly broadcast or reshaped), else None.

Why each "safe" rule is exact in IEEE arithmetic (NaN, inf and -0.0 included):
  x * 1 = x, x / 1 = x            (a NaN keeps being a NaN; the sign of zero is kept)
  x - (+0.0) = x, x + (-0.0) = x  (-0.0 is the additive identity; +0.0 is NOT: -0.0 + 0.0 = +0.0)
  -(-x) = x,  x + (-y) = x - y,  x - (-y) = x + y   (IEEE defines subtraction that way)
  greater(x, 0) = greater(relu(x), 0)    (relu(x) > 0 exactly when x > 0; NaN gives false)
  casts that widen and come back (f32->f64->f32, i32->i64->i32) are the identity
  movement ops that move nothing (identity reshape/transpose/broadcast, full slice, zero pad)
Fast-math rules (only with `simplify{fast-math=true}`) are wrong for some floats:
  x * 0 -> 0 (NaN*0 and inf*0 are NaN; -1*0 is -0.0), x - x -> 0 (inf - inf is NaN),
  x + 0.0 -> x (-0.0 + 0.0 is +0.0), x / x -> 1, and reassociation (x + c1) + c2 -> x + (c1+c2).
For integers the first two are exact, so they have separate, always-on `int-` rules.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ir import dtypes as dt

INT_LIKE = (dt.i32, dt.i64, dt.bool_)


@dataclass(frozen=True)
class Rule:
    name: str
    ops: tuple
    fn: Callable
    fast_math: bool = False
    doc: str = ""


RULES: list = []


def rule(name: str, *ops: str, fast_math: bool = False, doc: str = ""):
    def register(fn):
        RULES.append(Rule(name, ops, fn, fast_math, doc))
        return fn
    return register


# -- helpers ---------------------------------------------------------------------------------
def _is(x, value) -> bool:
    return x is not None and bool(x == value)


def _is_pos_zero(x) -> bool:
    return x is not None and x == 0 and not np.signbit(x)


def _is_neg_zero(x) -> bool:
    return x is not None and x == 0 and bool(np.signbit(x))


def _is_int(v) -> bool:
    return v.type.dtype in INT_LIKE


def _producer(v, op: str):
    p = v.producer
    return p if p is not None and p.op == op else None


def _identity_binary(rw, node, test, side=(0, 1)):
    """The other operand when operand `k` (in `side`) is a uniform constant passing `test`."""
    a, b = node.inputs
    if 1 in side and test(rw.uniform(b), a):
        return a
    if 0 in side and test(rw.uniform(a), b):
        return b
    return None


# -- identities (exact) ----------------------------------------------------------------------
@rule("mul-by-one", "mul", doc="x * 1 -> x")
def _mul_one(rw, node):
    return _identity_binary(rw, node, lambda c, x: _is(c, 1))


@rule("div-by-one", "div", doc="x / 1 -> x")
def _div_one(rw, node):
    return _identity_binary(rw, node, lambda c, x: _is(c, 1), side=(1,))


@rule("sub-zero", "sub", doc="x - (+0.0) -> x (and x - 0 for integers)")
def _sub_zero(rw, node):
    return _identity_binary(rw, node, lambda c, x: _is_pos_zero(c) or
                            (_is_int(x) and _is(c, 0)), side=(1,))


@rule("add-zero", "add", doc="x + (-0.0) -> x (and x + 0 for integers)")
def _add_zero(rw, node):
    return _identity_binary(rw, node, lambda c, x: _is_neg_zero(c) or
                            (_is_int(x) and _is(c, 0)))


@rule("neg-neg", "neg", doc="-(-x) -> x")
def _neg_neg(rw, node):
    p = _producer(node.inputs[0], "neg")
    return p.inputs[0] if p else None


@rule("not-not", "logical_not", doc="not(not x) -> x")
def _not_not(rw, node):
    p = _producer(node.inputs[0], "logical_not")
    return p.inputs[0] if p else None


@rule("add-neg", "add", doc="x + (-y) -> x - y")
def _add_neg(rw, node):
    x, y = node.inputs
    p = _producer(y, "neg")
    return rw.emit("sub", [x, p.inputs[0]], node=node) if p else None


@rule("sub-neg", "sub", doc="x - (-y) -> x + y")
def _sub_neg(rw, node):
    x, y = node.inputs
    p = _producer(y, "neg")
    return rw.emit("add", [x, p.inputs[0]], node=node) if p else None


@rule("relu-mask", "greater", doc="greater(x, 0) -> greater(relu(x), 0) when relu(x) exists "
      "(lets x die early and the relu join its producer's epilogue)")
def _relu_mask(rw, node):
    x, zero = node.inputs
    relu = rw.earlier_relu.get(id(x))
    if relu is None or rw.uniform(zero) is None or rw.uniform(zero) != 0:
        return None
    return rw.emit("greater", [relu, zero], node=node)


_EXACT_CASTS = {(dt.f32, dt.f64), (dt.i32, dt.i64), (dt.i32, dt.f64)}


@rule("cast-identity", "cast", doc="cast to the same dtype, or widen-then-narrow back -> x")
def _cast_identity(rw, node):
    x = node.inputs[0]
    if x.type.dtype is node.attrs["dtype"]:
        return x
    p = _producer(x, "cast")
    if p is not None:
        src = p.inputs[0].type.dtype
        if src is node.attrs["dtype"] and ((src, x.type.dtype) in _EXACT_CASTS
                                           or (src is dt.bool_)):
            return p.inputs[0]
    return None


# -- movement ---------------------------------------------------------------------------------
@rule("reshape-identity", "reshape", doc="reshape to the same shape -> x")
def _reshape_identity(rw, node):
    x = node.inputs[0]
    return x if tuple(x.type.shape) == tuple(node.attrs["shape"]) else None


@rule("reshape-reshape", "reshape", doc="reshape(reshape(x)) -> reshape(x)")
def _reshape_reshape(rw, node):
    p = _producer(node.inputs[0], "reshape")
    if p is None:
        return None
    return rw.emit("reshape", [p.inputs[0]], {"shape": node.attrs["shape"]}, node=node)


@rule("transpose-identity", "transpose", doc="transpose by the identity permutation -> x")
def _transpose_identity(rw, node):
    perm = node.attrs["perm"]
    return node.inputs[0] if list(perm) == list(range(len(perm))) else None


@rule("transpose-transpose", "transpose", doc="transpose(transpose(x)) -> one transpose")
def _transpose_transpose(rw, node):
    p = _producer(node.inputs[0], "transpose")
    if p is None:
        return None
    inner, outer = p.attrs["perm"], node.attrs["perm"]
    perm = tuple(inner[k] for k in outer)
    if list(perm) == list(range(len(perm))):
        return p.inputs[0]
    return rw.emit("transpose", [p.inputs[0]], {"perm": perm}, node=node)


@rule("broadcast-identity", "broadcast", doc="broadcast to its own shape -> x")
def _broadcast_identity(rw, node):
    x = node.inputs[0]
    same = tuple(x.type.shape) == tuple(node.attrs["shape"])
    return x if same and list(node.attrs["dims"]) == list(range(x.type.rank)) else None


@rule("broadcast-broadcast", "broadcast", doc="broadcast(broadcast(x)) -> one broadcast")
def _broadcast_broadcast(rw, node):
    p = _producer(node.inputs[0], "broadcast")
    if p is None:
        return None
    dims = tuple(node.attrs["dims"][d] for d in p.attrs["dims"])
    return rw.emit("broadcast", [p.inputs[0]], {"shape": node.attrs["shape"], "dims": dims},
                   node=node)


@rule("slice-full", "slice", doc="a slice that keeps every element -> x")
def _slice_full(rw, node):
    x, a = node.inputs[0], node.attrs
    full = all(s == 0 and st == 1 and e == d for s, e, st, d in
               zip(a["starts"], a["stops"], a["steps"], x.type.shape))
    return x if full else None


@rule("pad-nothing", "pad", doc="pad by zero elements on every side -> x")
def _pad_nothing(rw, node):
    a = node.attrs
    return node.inputs[0] if not any(a["low"]) and not any(a["high"]) else None


@rule("concat-single", "concat", doc="concat of one operand -> x")
def _concat_single(rw, node):
    return node.inputs[0] if len(node.inputs) == 1 else None


@rule("transpose-into-matmul", "matmul",
      doc="matmul(transpose(a) of the last two axes, b) -> matmul(a, b, transpose_a=!ta)")
def _transpose_into_matmul(rw, node):
    operands = list(node.inputs)
    attrs = dict(node.attrs)
    changed = False
    for k, flag in ((0, "transpose_a"), (1, "transpose_b")):
        p = _producer(operands[k], "transpose")
        perm = list(p.attrs["perm"]) if p else []
        r = len(perm)
        if r >= 2 and perm == list(range(r - 2)) + [r - 1, r - 2]:
            operands[k] = p.inputs[0]
            attrs[flag] = not attrs[flag]
            changed = True
    return rw.emit("matmul", operands, attrs, node=node) if changed else None


# -- scalar-broadcast canonicalization -------------------------------------------------------
@rule("uniform-constant", "constant",
      doc="a constant whose elements are all equal -> broadcast of a scalar constant")
def _uniform_constant(rw, node):
    arr = node.attrs["value"]
    if arr.size <= 1 or not _all_same_bits(arr):
        return None
    scalar = rw.emit("constant", [], {"value": arr.reshape(-1)[:1].reshape(())}, node=node,
                     keep_name=False)
    return rw.emit("broadcast", [scalar], {"shape": arr.shape, "dims": ()}, node=node)


@rule("broadcast-unit", "broadcast",
      doc="broadcast of a one-element constant of rank > 0 -> broadcast of a scalar constant")
def _broadcast_unit(rw, node):
    p = _producer(node.inputs[0], "constant")
    if p is None or p.output.type.rank == 0 or p.attrs["value"].size != 1:
        return None
    scalar = rw.emit("constant", [], {"value": p.attrs["value"].reshape(())}, node=node,
                     keep_name=False)
    return rw.emit("broadcast", [scalar], {"shape": node.attrs["shape"], "dims": ()},
                   node=node)


def _all_same_bits(arr: np.ndarray) -> bool:
    flat = np.ascontiguousarray(arr).reshape(-1)
    raw = flat.view(np.uint8).reshape(flat.size, -1)
    return bool((raw == raw[0]).all())


# -- integer versions of the fast-math rules (exact for integers) ----------------------------
def _zeros_like(rw, node, like):
    zero = rw.emit("constant", [], {"value": np.zeros((), like.type.dtype.np_dtype)},
                   node=node, keep_name=False)
    return rw.emit("broadcast", [zero], {"shape": like.type.shape, "dims": ()}, node=node)


@rule("int-mul-by-zero", "mul", doc="x * 0 -> 0 for integers")
def _int_mul_zero(rw, node):
    a, b = node.inputs
    if _is_int(a) and (_is(rw.uniform(a), 0) or _is(rw.uniform(b), 0)):
        return _zeros_like(rw, node, a)
    return None


@rule("int-sub-self", "sub", doc="x - x -> 0 for integers")
def _int_sub_self(rw, node):
    a, b = node.inputs
    return _zeros_like(rw, node, a) if _is_int(a) and a is b else None


# -- fast-math (wrong for some IEEE values) --------------------------------------------------
@rule("mul-by-zero", "mul", fast_math=True, doc="x * 0 -> 0 (wrong for NaN, inf, -0.0)")
def _mul_zero(rw, node):
    a, b = node.inputs
    if not _is_int(a) and (_is(rw.uniform(a), 0) or _is(rw.uniform(b), 0)):
        return _zeros_like(rw, node, a)
    return None


@rule("sub-self", "sub", fast_math=True, doc="x - x -> 0 (wrong for NaN and inf)")
def _sub_self(rw, node):
    a, b = node.inputs
    return _zeros_like(rw, node, a) if not _is_int(a) and a is b else None


@rule("add-pos-zero", "add", fast_math=True, doc="x + 0.0 -> x (wrong for x = -0.0)")
def _add_pos_zero(rw, node):
    return _identity_binary(rw, node, lambda c, x: not _is_int(x) and _is_pos_zero(c))


@rule("div-self", "div", fast_math=True, doc="x / x -> 1 (wrong for 0, NaN, inf)")
def _div_self(rw, node):
    a, b = node.inputs
    if _is_int(a) or a is not b:
        return None
    one = rw.emit("constant", [], {"value": np.ones((), a.type.dtype.np_dtype)}, node=node,
                  keep_name=False)
    return rw.emit("broadcast", [one], {"shape": a.type.shape, "dims": ()}, node=node)


@rule("reassociate-constants", "add", "mul", fast_math=True,
      doc="(x op c1) op c2 -> x op (c1 op c2) for add and mul (changes rounding)")
def _reassociate(rw, node):
    x, c2 = node.inputs
    k2 = rw.uniform(c2)
    p = x.producer
    if k2 is None or p is None or p.op != node.op or _is_int(x):
        return None
    inner, c1 = p.inputs
    k1 = rw.uniform(c1)
    if k1 is None:
        return None
    with np.errstate(all="ignore"):
        k = (np.add if node.op == "add" else np.multiply)(k1, k2)
    const = rw.emit("constant", [], {"value": np.asarray(k, x.type.dtype.np_dtype)}, node=node,
                    keep_name=False)
    c = rw.emit("broadcast", [const], {"shape": x.type.shape, "dims": ()}, node=node,
                keep_name=False)
    return rw.emit(node.op, [inner, c], node=node)
