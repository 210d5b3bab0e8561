"""Lowering of random_uniform: the counter-based generator of ir/ops/random.py, bit-exact.

    h(x)  = x ^= x>>16; x *= 0x7feb352d; x ^= x>>15; x *= 0x846ca68b; x ^= x>>16   (mod 2**32)
    key   = h(seed ^ h(counter mod 2**32));  bits = h(key + i);  value = (bits >> 8) * 2**-24

Element i depends only on (seed, counter, i), so the per-element emitter composes into any
elementwise loop (fused dropout masks included) and any thread split gives the same bits. The
key is loop-invariant; LLVM hoists it out of the loop.
"""
from __future__ import annotations

from ir import dtypes as dt
from ir.ops.random import MIX_MUL1, MIX_MUL2

from . import helpers as h
from .elementwise import lower_group_node
from .registry import lowering
from .scalar import emitter


def hash32(b, x):
    """The 32-bit mixer on i32 (or <W x i32>) values; integer ops wrap mod 2**32."""
    t = x.type
    x = b.xor(x, b.lshr(x, h.const_like(t, 16)))
    x = b.mul(x, h.const_like(t, _signed32(MIX_MUL1)))
    x = b.xor(x, b.lshr(x, h.const_like(t, 15)))
    x = b.mul(x, h.const_like(t, _signed32(MIX_MUL2)))
    return b.xor(x, b.lshr(x, h.const_like(t, 16)))


def _signed32(u: int) -> int:
    return u - (1 << 32) if u >= 1 << 31 else u


@emitter("random_uniform")
def _random_uniform(ec, args):
    b = ec.b
    t32 = h.with_element(ec.flat.type, h.I32)
    if args:
        counter = args[0]
        if ec.in_dtype(0) is dt.i64:
            counter = b.trunc(counter, h.with_element(counter.type, h.I32))
    else:
        counter = h.const_like(h.I32, 0)
    seed = h.const_like(counter.type, _signed32(ec.attrs["seed"] & 0xFFFFFFFF))
    key = hash32(b, b.xor(seed, hash32(b, counter)))
    if h.lanes_of(t32) > 1 and not h.lanes_of(key.type) > 1:
        key = h.splat(b, key, h.lanes_of(t32))
    bits = hash32(b, b.add(key, b.trunc(ec.flat, t32)))
    top24 = b.lshr(bits, h.const_like(t32, 8))
    out_t = ec.out_type()
    return b.fmul(b.uitofp(top24, out_t), h.const_like(out_t, 2.0 ** -24))


lowering("random_uniform")(lower_group_node)
