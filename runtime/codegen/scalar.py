"""The per-element emitters: op -> the LLVM instructions that compute ONE element.

Every elementwise op (and constant, iota, dim_value, random_uniform) has an emitter
`fn(ec, args) -> value` where `args` are the operand elements already in registers and `ec`
is an ElementContext (builder, dtypes, attributes, the element's flat index and coordinates).
The elementwise loop emitter composes these for a single node or for a whole fused group, so
fusing ops never needs a second implementation of an op's meaning.

Emitters are type-generic: operands may be scalars or `<W x T>` vectors (constants are built
with `const_like`, intrinsics are declared by type), so explicit-vector loops reuse them.

Semantics follow the ir/ops docstrings exactly:
- maximum/minimum/relu propagate NaN (fcmp + select, never llvm.maxnum);
- integer division truncates, x/0 = 0 and INT_MIN/-1 wraps, without trapping;
- float->int casts saturate with NaN -> 0 (llvm.fptosi.sat);
- no fast-math flags.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import llvmlite.ir as ir

from ir import CompileError
from ir import dtypes as dt

from . import helpers as h
from . import vecmath

SCALAR_EMITTERS: dict[str, Callable] = {}


@dataclass
class ElementContext:
    """What an emitter may use besides its operands."""
    b: ir.IRBuilder
    kb: object                      # the KernelBuilder (dims, constant globals)
    node: object                    # the ir Node being computed (attrs, types)
    flat: ir.Value                  # row-major index of this element in the node's output
    coords: Optional[list]          # its coordinates (when the loop provides them)
    lanes: int = 1                  # > 1: operands and result are <lanes x T> vectors
    base: Optional[ir.Value] = None  # scalar index of the first lane (== flat when lanes = 1)

    @property
    def attrs(self) -> dict:
        return self.node.attrs

    @property
    def out_dtype(self):
        return self.node.outputs[0].type.dtype

    def in_dtype(self, k: int = 0):
        return self.node.inputs[k].type.dtype

    def out_type(self) -> ir.Type:
        t = h.register_type(self.out_dtype)
        return ir.VectorType(t, self.lanes) if self.lanes > 1 else t

    def coord(self, axis: int) -> ir.Value:
        if self.coords is None:
            raise CompileError(f"{self.node.op} needs element coordinates, but its loop only "
                               "provides a flat index", self.node.loc)
        return self.coords[axis]


def emitter(*ops):
    def register(fn):
        for op in ops:
            SCALAR_EMITTERS[op] = fn
        return fn
    return register


def emit_element(ec: ElementContext, args: list) -> ir.Value:
    fn = SCALAR_EMITTERS.get(ec.node.op)
    if fn is None:
        raise CompileError(f"op {ec.node.op} has no per-element emitter", ec.node.loc)
    return fn(ec, args)


# -- NaN-aware helpers -------------------------------------------------------------------------
def isnan(b, x):
    return b.fcmp_unordered("uno", x, x)


def max_nan(b, x, y):
    """numpy's maximum: x if x > y or x is NaN, else y (so a NaN in either operand wins)."""
    if not h.is_float_type(x.type):
        return b.select(b.icmp_signed(">", x, y), x, y)
    take_x = b.or_(b.fcmp_ordered(">", x, y), isnan(b, x))
    return b.select(take_x, x, y)


def min_nan(b, x, y):
    if not h.is_float_type(x.type):
        return b.select(b.icmp_signed("<", x, y), x, y)
    take_x = b.or_(b.fcmp_ordered("<", x, y), isnan(b, x))
    return b.select(take_x, x, y)


# -- unary -------------------------------------------------------------------------------------
@emitter("neg")
def _neg(ec, a):
    (x,) = a
    return ec.b.fneg(x) if h.is_float_type(x.type) else ec.b.sub(h.const_like(x.type, 0), x)


@emitter("abs")
def _abs(ec, a):
    (x,) = a
    if h.is_float_type(x.type):
        return h.intrinsic(ec.b, "fabs", [x])
    # llvm.abs with is_int_min_poison = false: abs(INT_MIN) = INT_MIN, like numpy
    return h.intrinsic(ec.b, "abs", [x, ir.Constant(h.I1, 0)])


@emitter("sign")
def _sign(ec, a):
    (x,) = a
    b, t = ec.b, x.type
    one, mone, zero = h.const_like(t, 1), h.const_like(t, -1), h.const_like(t, 0)
    if h.is_float_type(t):
        # NaN stays NaN; both zeros give +0 (numpy's sign)
        inner = b.select(b.fcmp_ordered("==", x, zero), zero, x)
        return b.select(b.fcmp_ordered(">", x, zero), one,
                        b.select(b.fcmp_ordered("<", x, zero), mone, inner))
    return b.select(b.icmp_signed(">", x, zero), one,
                    b.select(b.icmp_signed("<", x, zero), mone, zero))


@emitter("relu")
def _relu(ec, a):
    (x,) = a
    return max_nan(ec.b, x, h.const_like(x.type, 0))


def _intrinsic_unary(name):
    return lambda ec, a: h.intrinsic(ec.b, name, [a[0]])


def _libm_unary(name):
    return lambda ec, a: h.libm_call(ec.b, name, a[0])


@emitter("exp")
def _exp(ec, a):
    (x,) = a
    if vecmath.is_f32_vector(x):               # llvm.exp on vectors becomes scalar expf calls
        return vecmath.exp_f32_vector(ec.b, x)
    return h.intrinsic(ec.b, "exp", [x])


def _vector_or(vector_fn, scalar_fn):
    """f32 vectors: the IR polynomial of vecmath.py (LLVM would make one libm call per
    lane); scalars and f64: `scalar_fn` (LLVM intrinsic or libm)."""
    def emit(ec, a):
        if vecmath.is_f32_vector(a[0]):
            return vector_fn(ec.b, a[0])
        return scalar_fn(ec, a)
    return emit


emitter("log")(_vector_or(vecmath.log_f32_vector, _intrinsic_unary("log")))
emitter("sqrt")(_intrinsic_unary("sqrt"))
emitter("log1p")(_vector_or(vecmath.log1p_f32_vector, _libm_unary("log1p")))
emitter("tanh")(_vector_or(vecmath.tanh_f32_vector, _libm_unary("tanh")))
emitter("erf")(_vector_or(vecmath.erf_f32_vector, _libm_unary("erf")))


@emitter("rsqrt")
def _rsqrt(ec, a):
    (x,) = a
    return ec.b.fdiv(h.const_like(x.type, 1.0), h.intrinsic(ec.b, "sqrt", [x]))


@emitter("reciprocal")
def _reciprocal(ec, a):
    (x,) = a
    return ec.b.fdiv(h.const_like(x.type, 1.0), x)


@emitter("sigmoid")
def _sigmoid(ec, a):
    # the reference's stable form: e = exp(-|x|); x >= 0 ? 1/(1+e) : e/(1+e)
    (x,) = a
    b, t = ec.b, x.type
    e = _exp(ec, [b.fneg(h.intrinsic(b, "fabs", [x]))])
    one = h.const_like(t, 1.0)
    denom = b.fadd(one, e)
    return b.select(b.fcmp_ordered(">=", x, h.const_like(t, 0.0)), b.fdiv(one, denom),
                    b.fdiv(e, denom))


# -- binary ------------------------------------------------------------------------------------
def _arith(float_op, int_op):
    def emit(ec, a):
        x, y = a
        return getattr(ec.b, float_op if h.is_float_type(x.type) else int_op)(x, y)
    return emit


emitter("add")(_arith("fadd", "add"))
emitter("sub")(_arith("fsub", "sub"))
emitter("mul")(_arith("fmul", "mul"))


@emitter("div")
def _div(ec, a):
    x, y = a
    b, t = ec.b, x.type
    if h.is_float_type(t):
        return b.fdiv(x, y)
    zero, one, mone = h.const_like(t, 0), h.const_like(t, 1), h.const_like(t, -1)
    by_zero = b.icmp_signed("==", y, zero)
    by_mone = b.icmp_signed("==", y, mone)
    # sdiv traps on x/0 and on INT_MIN/-1: divide by 1 there and patch the result
    safe = b.select(b.or_(by_zero, by_mone), one, y)
    q = b.sdiv(x, safe)
    q = b.select(by_mone, b.sub(zero, x), q)
    return b.select(by_zero, zero, q)


@emitter("pow")
def _pow(ec, a):
    return h.intrinsic(ec.b, "pow", list(a))


@emitter("maximum")
def _maximum(ec, a):
    return max_nan(ec.b, *a)


@emitter("minimum")
def _minimum(ec, a):
    return min_nan(ec.b, *a)


_CMP = {"less": "<", "less_equal": "<=", "greater": ">", "greater_equal": ">=",
        "equal": "==", "not_equal": "!="}


def _compare(op):
    sym = _CMP[op]

    def emit(ec, a):
        x, y = a
        b = ec.b
        if h.is_float_type(x.type):
            # ordered compares are false with a NaN; "!=" is unordered, so NaN != x is true
            return (b.fcmp_unordered(sym, x, y) if sym == "!=" else b.fcmp_ordered(sym, x, y))
        if ec.in_dtype(0) is dt.bool_:
            return b.icmp_unsigned(sym, x, y)
        return b.icmp_signed(sym, x, y)
    return emit


for _op in _CMP:
    emitter(_op)(_compare(_op))

emitter("logical_and")(lambda ec, a: ec.b.and_(a[0], a[1]))
emitter("logical_or")(lambda ec, a: ec.b.or_(a[0], a[1]))
emitter("logical_not")(lambda ec, a: ec.b.xor(a[0], h.const_like(a[0].type, 1)))
emitter("select")(lambda ec, a: ec.b.select(a[0], a[1], a[2]))


# -- cast --------------------------------------------------------------------------------------
def convert(b, x: ir.Value, src, dst) -> ir.Value:
    """Convert one element between dtypes with graphc's cast semantics."""
    src, dst = dt.dtype(src), dt.dtype(dst)
    if src is dst:
        return x
    to = h.with_element(x.type, h.register_type(dst))
    if dst is dt.bool_:
        zero = h.const_like(x.type, 0)
        return b.fcmp_unordered("!=", x, zero) if src.is_float else b.icmp_unsigned("!=", x, zero)
    if src is dt.bool_:
        return b.uitofp(x, to) if dst.is_float else b.zext(x, to)
    if src.is_float and dst.is_float:
        return b.fpext(x, to) if dst.itemsize > src.itemsize else b.fptrunc(x, to)
    if src.is_int and dst.is_int:
        return b.sext(x, to) if dst.itemsize > src.itemsize else b.trunc(x, to)
    if src.is_int:
        return b.sitofp(x, to)
    # float -> int saturates and sends NaN to 0
    return h.intrinsic(b, "fptosi.sat", [x], ret=to, suffix_types=[to, x.type])


@emitter("cast")
def _cast(ec, a):
    return convert(ec.b, a[0], ec.in_dtype(0), ec.attrs["dtype"])


# -- element generators: no operands -----------------------------------------------------------
@emitter("constant")
def _constant(ec, a):
    value = ec.attrs["value"]
    if value.size == 1:
        item = value.reshape(()).item()
        return h.const_like(ec.out_type(), item)
    ptr = ec.kb.ctx.constant_global(value)
    base = ec.flat if ec.base is None else ec.base
    # lanes start wherever the loop is (a row of a vectorised coordinate loop need not start
    # on a vector boundary): only element alignment is promised
    return h.load_element(ec.b, ptr, base, ec.out_dtype, ec.out_dtype.itemsize, ec.lanes)


@emitter("iota")
def _iota(ec, a):
    return convert(ec.b, ec.coord(ec.attrs["axis"]), dt.i64, ec.out_dtype)


@emitter("dim_value")
def _dim_value(ec, a):
    v = ec.kb.dim(ec.attrs["dim"])
    if ec.lanes > 1:
        v = h.splat(ec.b, v, ec.lanes)
    return convert(ec.b, v, dt.i64, ec.out_dtype)
