"""The epilogue hook of the contraction kernels (matmul, conv2d): the contract with fusion.

A contraction kernel emitter (`emit_matmul`, `emit_conv2d`) accepts `epilogue=`, a callable

    epilogue(b: ir.IRBuilder, value: ir.Value, site: OutputSite) -> ir.Value

invoked on each computed output value just before it is stored, with `b` positioned where
the store will be emitted. `value` is the finished result (all of the reduction summed) in
the output's register type: a scalar, or a `<W x T>` vector whose lanes are consecutive
positions along one output axis. The callable returns the value to store, of the same type.
That is where a fused group adds a bias, applies an activation (built from scalar.py's
per-element emitters, which accept scalars and vectors alike), scales, and so on.

`OutputSite` says which output elements `value` holds:
- `coords`: one i64 per output axis as the kernel sees it: matmul (batch, row, col), the
  batch axes flattened into one row-major index (0 when unbatched); conv2d (n, channel, oh,
  ow). For a vector these are the coordinates of lane 0.
- `index`: the row-major flat index of lane 0 in the output buffer.
- `lanes`, `lane_axis`: the number of lanes and the axis of `coords` they run along; lane k
  is at coords[lane_axis] + k, flat index `index + k * lane_stride`.
- `mask`: None when every lane is a real output element, else a `<lanes x i1>` vector of
  the lanes that are (at an edge of the output); the kernel stores only those. Values read
  for masked-off lanes must not come from outside a buffer: use `load_lanes`, which honours
  the mask.

The kernel calls the epilogue once per output element (or vector of elements), never on a
partial sum, whatever its blocking, threading or the order in which it visits the output.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import llvmlite.ir as ir

from . import helpers as h

Epilogue = Callable[[ir.IRBuilder, ir.Value, "OutputSite"], ir.Value]


@dataclass
class OutputSite:
    coords: tuple
    index: ir.Value
    lanes: int = 1
    lane_axis: int = -1
    lane_stride: ir.Value = None
    mask: Optional[ir.Value] = None

    def load_lanes(self, b: ir.IRBuilder, ptr: ir.Value, dtype, start: ir.Value,
                   stride: ir.Value = None, align: int = None) -> ir.Value:
        """Load `lanes` elements of a buffer at `start + k * stride` (stride 1 by default),
        reading nothing for masked-off lanes (they hold 0). A scalar load when lanes == 1.

        E.g. a bias over the output's last matmul axis: `site.load_lanes(b, bias.ptr, dt,
        site.coords[2])`; a tensor of the output's shape: `load_lanes(b, p, dt, site.index,
        site.lane_stride)`."""
        return load_lanes(b, ptr, dtype, start, self.lanes, stride, self.mask, align)


def load_lanes(b: ir.IRBuilder, ptr: ir.Value, dtype, start: ir.Value, lanes: int,
               stride: ir.Value = None, mask: Optional[ir.Value] = None,
               align: int = None) -> ir.Value:
    """`lanes` elements at start, start+stride, ... (masked-off lanes read nothing, give 0)."""
    align = align or dtype.itemsize
    if lanes == 1:
        return h.load_element(b, ptr, start, dtype, align)
    contiguous = stride is None or (isinstance(stride, ir.Constant) and stride.constant == 1)
    reg = h.register_type(dtype)
    vec = ir.VectorType(h.memory_type(dtype), lanes)
    if contiguous and mask is None:
        return h.load_element(b, ptr, start, dtype, align, lanes)
    if contiguous:
        p = h.element_ptr(b, ptr, start, dtype)
        value = masked_load(b, p, vec, mask, min(align, dtype.itemsize))
    else:
        offsets = b.mul(h.splat(b, stride, lanes),
                        ir.Constant(ir.VectorType(h.I64, lanes), list(range(lanes))))
        ptrs = b.gep(ptr, [b.add(h.splat(b, start, lanes), offsets)], inbounds=True,
                     source_etype=h.memory_type(dtype))
        ptrs.type = ir.VectorType(h.PTR, lanes)   # llvmlite types a vector GEP as a scalar ptr
        if mask is None:
            mask = ir.Constant(ir.VectorType(h.I1, lanes), [1] * lanes)
        value = gather(b, ptrs, vec, mask, dtype.itemsize)
    if reg != h.memory_type(dtype):                  # bool: bytes in memory, i1 in registers
        value = b.icmp_unsigned("!=", value, h.const_like(value.type, 0))
    return value


def masked_load(b: ir.IRBuilder, p: ir.Value, vec: ir.VectorType, mask: ir.Value,
                align: int, passthru: ir.Value = None) -> ir.Value:
    """Lanes where `mask` is set are loaded; the others come from `passthru` (zero)."""
    name = f"llvm.masked.load.{h.type_suffix(vec)}.p0"
    fn = h.declare(b.module, name, vec, [h.PTR, h.I32, mask.type, vec])
    return b.call(fn, [p, h.i32(align), mask,
                       passthru if passthru is not None else h.const_like(vec, 0)])


def masked_store(b: ir.IRBuilder, value: ir.Value, p: ir.Value, mask: ir.Value,
                 align: int) -> None:
    name = f"llvm.masked.store.{h.type_suffix(value.type)}.p0"
    fn = h.declare(b.module, name, ir.VoidType(), [value.type, h.PTR, h.I32, mask.type])
    b.call(fn, [value, p, h.i32(align), mask])


def gather(b: ir.IRBuilder, ptrs: ir.Value, vec: ir.VectorType, mask: ir.Value,
           align: int) -> ir.Value:
    name = f"llvm.masked.gather.{h.type_suffix(vec)}.v{vec.count}p0"
    fn = h.declare(b.module, name, vec, [ptrs.type, h.I32, mask.type, vec])
    return b.call(fn, [ptrs, h.i32(align), mask, h.const_like(vec, 0)])


def apply(epilogue: Optional[Epilogue], b: ir.IRBuilder, value: ir.Value,
          site: OutputSite) -> ir.Value:
    """`epilogue(b, value, site)`, checking it kept the value's type (a codegen bug if not)."""
    if epilogue is None:
        return value
    out = epilogue(b, value, site)
    if not isinstance(out, ir.Value) or out.type != value.type:
        found = getattr(out, "type", type(out).__name__)
        raise TypeError(f"epilogue must return a value of type {value.type}, returned {found}")
    return out
