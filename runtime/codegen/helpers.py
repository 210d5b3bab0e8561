"""Small LLVM IR helpers shared by every lowering.

- element types: how each graphc dtype looks in memory and in registers (bool is one byte in
  memory, like numpy, and an i1 in registers);
- typed loads/stores that always state the real alignment (a vector access without `align`
  is assumed 64-byte aligned and faults on numpy buffers);
- counted loops and loop nests in rotated form (`for i in [start, stop)`), which LLVM's loop
  vectoriser handles best;
- index arithmetic in i64 with `nsw` (indices never overflow: the call boundary checks sizes);
- type-generic constants and intrinsic declarations, so the same per-element code works on a
  scalar or on a `<W x T>` vector (the explicit-vector kernels of the speed work reuse them).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Sequence

import llvmlite.ir as ir

from ir import dtypes as dt

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F32 = ir.FloatType()
F64 = ir.DoubleType()
PTR = ir.PointerType()
NSW = ("nsw",)

_MEMORY_TYPES = {"f32": F32, "f64": F64, "i32": I32, "i64": I64, "bool": I8}


def memory_type(dtype) -> ir.Type:
    """The LLVM type of one element of `dtype` in a buffer."""
    return _MEMORY_TYPES[dt.dtype(dtype).name]


def register_type(dtype) -> ir.Type:
    """The LLVM type an element is computed in (bool as i1)."""
    d = dt.dtype(dtype)
    return I1 if d is dt.bool_ else _MEMORY_TYPES[d.name]


def i64(x: int) -> ir.Constant:
    return ir.Constant(I64, int(x))


def i32(x: int) -> ir.Constant:
    return ir.Constant(I32, int(x))


# -- scalar or vector: type-generic helpers ----------------------------------------------------
def element_of(typ: ir.Type) -> ir.Type:
    return typ.element if isinstance(typ, ir.VectorType) else typ


def lanes_of(typ: ir.Type) -> int:
    return typ.count if isinstance(typ, ir.VectorType) else 1


def with_element(typ: ir.Type, elem: ir.Type) -> ir.Type:
    """`elem`, or a vector of `elem` with as many lanes as `typ` has."""
    return ir.VectorType(elem, typ.count) if isinstance(typ, ir.VectorType) else elem


def const_like(typ: ir.Type, value) -> ir.Constant:
    """A constant of type `typ` (splatted across the lanes when `typ` is a vector)."""
    elem = element_of(typ)
    if isinstance(elem, ir.IntType):
        value = int(value)
        if elem.width == 1:
            value = 1 if value else 0
    else:
        value = float(value)
    if isinstance(typ, ir.VectorType):
        return ir.Constant(typ, [ir.Constant(elem, value)] * typ.count)
    return ir.Constant(typ, value)


def is_float_type(typ: ir.Type) -> bool:
    return isinstance(element_of(typ), (ir.FloatType, ir.DoubleType))


def type_suffix(typ: ir.Type) -> str:
    """LLVM's overload suffix: f32, f64, i32, v16f32, ..."""
    elem = element_of(typ)
    if isinstance(elem, ir.FloatType):
        s = "f32"
    elif isinstance(elem, ir.DoubleType):
        s = "f64"
    else:
        s = f"i{elem.width}"
    return f"v{typ.count}{s}" if isinstance(typ, ir.VectorType) else s


def declare(module: ir.Module, name: str, ret: ir.Type, args: Sequence[ir.Type]) -> ir.Function:
    """Declare (once) an external or intrinsic function by its full name.

    `Module.declare_intrinsic` cannot declare vector overloads, so every intrinsic goes
    through here with its mangled name."""
    existing = module.globals.get(name)
    if existing is not None:
        return existing
    return ir.Function(module, ir.FunctionType(ret, list(args)), name=name)


def helper_function(module: ir.Module, name: str, fnty: ir.FunctionType,
                    noinline: bool = False) -> tuple:
    """A helper that kernels share by name (micro-kernels, gemv tiles; the name encodes
    everything it is built from): (the module's existing one, False) when it has it,
    defined here or declared for another part's definition (module_builder's
    SHARED_HELPERS), else (a new internal function for the caller to fill in, True).
    `noinline`: kept out of its callers (a register-hungry loop that spills when inlined)."""
    existing = module.globals.get(name)
    if existing is not None:
        return existing, False
    fn = ir.Function(module, fnty, name=name)
    fn.linkage = "internal"
    if noinline:
        fn.attributes.add("noinline")
    return fn, True


def intrinsic(b: ir.IRBuilder, base: str, args: Sequence[ir.Value], ret: ir.Type = None,
              suffix_types: Sequence[ir.Type] = None) -> ir.Value:
    """Call `llvm.<base>.<suffix>` (e.g. llvm.fabs.f32 or llvm.fabs.v16f32)."""
    ret = ret or args[0].type
    suffix = ".".join(type_suffix(t) for t in (suffix_types or [args[0].type]))
    fn = declare(b.module, f"llvm.{base}.{suffix}", ret, [a.type for a in args])
    return b.call(fn, list(args))


def libm_call(b: ir.IRBuilder, name_f64: str, x: ir.Value) -> ir.Value:
    """Call a libm function (`erf` / `erff` chosen by type), lane by lane for a vector."""
    elem = element_of(x.type)
    name = name_f64 + ("f" if isinstance(elem, ir.FloatType) else "")
    fn = declare(b.module, name, elem, [elem])
    if not isinstance(x.type, ir.VectorType):
        return b.call(fn, [x])
    out = ir.Constant(x.type, ir.Undefined)
    for lane in range(x.type.count):
        out = b.insert_element(out, b.call(fn, [b.extract_element(x, i32(lane))]), i32(lane))
    return out


def vector_type(dtype, lanes: int) -> ir.VectorType:
    """`<lanes x T>` in register form of `dtype`."""
    return ir.VectorType(register_type(dtype), lanes)


def splat(b: ir.IRBuilder, scalar: ir.Value, lanes: int) -> ir.Value:
    """Broadcast a scalar to every lane of a `<lanes x T>` vector."""
    vec = ir.VectorType(scalar.type, lanes)
    one = b.insert_element(ir.Constant(vec, ir.Undefined), scalar, i32(0))
    return b.shuffle_vector(one, ir.Constant(vec, ir.Undefined),
                            ir.Constant(ir.VectorType(I32, lanes), [i32(0)] * lanes))


# -- memory ------------------------------------------------------------------------------------
def element_ptr(b: ir.IRBuilder, base: ir.Value, index: ir.Value, dtype) -> ir.Value:
    return b.gep(base, [index], inbounds=True, source_etype=memory_type(dtype))


def load_element(b: ir.IRBuilder, base: ir.Value, index: ir.Value, dtype, align: int,
                 lanes: int = 1) -> ir.Value:
    """Load element `index` (or `lanes` consecutive elements) as the register type."""
    d = dt.dtype(dtype)
    mem = memory_type(d)
    typ = ir.VectorType(mem, lanes) if lanes > 1 else mem
    v = b.load(element_ptr(b, base, index, d), typ=typ, align=min(align, d.itemsize * lanes))
    if d is dt.bool_:
        v = b.icmp_unsigned("!=", v, const_like(typ, 0))
    return v


def store_element(b: ir.IRBuilder, value: ir.Value, base: ir.Value, index: ir.Value, dtype,
                  align: int) -> None:
    d = dt.dtype(dtype)
    if d is dt.bool_:
        value = b.zext(value, with_element(value.type, I8))
    b.store(value, element_ptr(b, base, index, d),
            align=min(align, d.itemsize * lanes_of(value.type)))


def memcpy(b: ir.IRBuilder, dst: ir.Value, src: ir.Value, nbytes: ir.Value) -> None:
    fn = declare(b.module, "llvm.memcpy.p0.p0.i64", ir.VoidType(), [PTR, PTR, I64, I1])
    b.call(fn, [dst, src, nbytes, ir.Constant(I1, 0)])


def memset_zero(b: ir.IRBuilder, dst: ir.Value, nbytes: ir.Value) -> None:
    fn = declare(b.module, "llvm.memset.p0.i64", ir.VoidType(), [PTR, I8, I64, I1])
    b.call(fn, [dst, ir.Constant(I8, 0), nbytes, ir.Constant(I1, 0)])


# -- loops -------------------------------------------------------------------------------------
@contextmanager
def counted_loop(b: ir.IRBuilder, stop: ir.Value, start: ir.Value = None, step: int = 1,
                 name: str = "i"):
    """`for (i = start; i < stop; i += step) { <with-body> }` with i64 `i` yielded.

    Rotated form (guard, body, latch) so LLVM sees a canonical counted loop. The body may
    open nested loops; the latch is appended wherever the builder ends up."""
    start = start if start is not None else i64(0)
    fn = b.function
    body = fn.append_basic_block(f"{name}.body")
    done = fn.append_basic_block(f"{name}.done")
    pre = b.block
    b.cbranch(b.icmp_signed("<", start, stop), body, done)
    b.position_at_end(body)
    idx = b.phi(I64, name=name)
    idx.add_incoming(start, pre)
    yield idx
    nxt = b.add(idx, i64(step), name=f"{name}.next", flags=NSW)
    idx.add_incoming(nxt, b.block)
    b.cbranch(b.icmp_signed("<", nxt, stop), body, done)
    b.position_at_end(done)


@contextmanager
def loop_nest(b: ir.IRBuilder, extents: Sequence[ir.Value], name: str = "c"):
    """Nested counted loops over `extents` (outermost first); yields the list of indices."""
    if not extents:
        yield []
        return
    with counted_loop(b, extents[0], name=f"{name}{len(extents)}") as i:
        with loop_nest(b, extents[1:], name) as rest:
            yield [i] + rest


def add(b, *xs) -> ir.Value:
    """Sum of i64 values (constants fold away)."""
    out = None
    for x in xs:
        if isinstance(x, ir.Constant) and x.constant == 0:
            continue
        out = x if out is None else b.add(out, x, flags=NSW)
    return out if out is not None else i64(0)


def mul(b, x: ir.Value, y: ir.Value) -> ir.Value:
    if isinstance(x, ir.Constant) and isinstance(y, ir.Constant):
        return i64(x.constant * y.constant)
    for p, q in ((x, y), (y, x)):
        if isinstance(p, ir.Constant) and p.constant == 1:
            return q
        if isinstance(p, ir.Constant) and p.constant == 0:
            return i64(0)
    return b.mul(x, y, flags=NSW)


def product(b, xs: Sequence[ir.Value]) -> ir.Value:
    out = i64(1)
    for x in xs:
        out = mul(b, out, x)
    return out


def smin(b, x: ir.Value, y: ir.Value) -> ir.Value:
    """The smaller of two signed integers."""
    return b.select(b.icmp_signed("<", x, y), x, y)


def smax(b, x: ir.Value, y: ir.Value) -> ir.Value:
    """The larger of two signed integers."""
    return b.select(b.icmp_signed(">", x, y), x, y)


def ceil_div(b, x: ir.Value, y: ir.Value) -> ir.Value:
    """ceil(x / y) for x >= 0, y > 0."""
    return b.sdiv(b.add(x, b.sub(y, i64(1))), y)


def row_major_strides(b, extents: Sequence[ir.Value]) -> list:
    """Element strides of a contiguous row-major array with these extents."""
    strides = [i64(1)] * len(extents)
    for axis in range(len(extents) - 2, -1, -1):
        strides[axis] = mul(b, strides[axis + 1], extents[axis + 1])
    return strides


def dot_index(b, coords: Sequence[ir.Value], strides: Sequence[ir.Value],
              base: ir.Value = None) -> ir.Value:
    """base + sum(coords[k] * strides[k])."""
    terms = [base] if base is not None else []
    terms += [mul(b, c, s) for c, s in zip(coords, strides)]
    return add(b, *terms)
