"""random_uniform: counter-based uniform random numbers in [0, 1), for dropout.

Counter-based means element i of the result is a pure function of (seed, counter, i), so the
reference interpreter and native code produce the same bits, in any order and on any number
of threads. The optional `counter` operand (an integer scalar, e.g. the step number) gives
every training step a fresh mask without recompiling.

    h(x)  = 32-bit integer hash (x ^= x>>16; x *= 0x7feb352d; x ^= x>>15; x *= 0x846ca68b;
            x ^= x>>16), all arithmetic mod 2**32
    key   = h(seed ^ h(counter mod 2**32))
    bits  = h(key + i)                       (i is the row-major element index mod 2**32)
    value = (bits >> 8) * 2**-24             (24 bits: exact in f32, in [0, 1))
"""
from __future__ import annotations

import numpy as np

from .. import dtypes as dt
from ..attrs import AttrSpec
from ..errors import DTypeError, ShapeError
from ..opdef import OpDef, register
from ..types import TensorType
from ._common import elementwise_cost, require_dtype

MIX_MUL1 = 0x7FEB352D
MIX_MUL2 = 0x846CA68B


def hash32(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.uint32)
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint32(16))
        x = x * np.uint32(MIX_MUL1)
        x = x ^ (x >> np.uint32(15))
        x = x * np.uint32(MIX_MUL2)
        x = x ^ (x >> np.uint32(16))
    return x


def random_bits(seed: int, counter: int, n: int) -> np.ndarray:
    key = hash32(np.uint32(seed & 0xFFFFFFFF) ^ hash32(np.uint32(counter & 0xFFFFFFFF)))
    with np.errstate(over="ignore"):
        idx = np.arange(n, dtype=np.uint64).astype(np.uint32)
        return hash32(key + idx)


def _infer(ins, attrs):
    if ins:
        (c,) = ins
        require_dtype("random_uniform", c, dt.INT_DTYPES, "the step counter")
        if c.rank != 0:
            raise ShapeError(f"random_uniform: the counter must be a scalar, found {c}")
    if not attrs["dtype"].is_float:
        raise DTypeError(f"random_uniform: dtype must be f32 or f64, found {attrs['dtype']}")
    return [TensorType(attrs["shape"], attrs["dtype"])]


def _ref(ins, attrs):
    counter = int(ins[0]) if ins else 0
    shape = tuple(attrs["shape"])
    n = int(np.prod(shape, dtype=np.int64))
    bits = random_bits(attrs["seed"], counter, n)
    vals = (bits >> np.uint32(8)).astype(np.float64) * (2.0 ** -24)
    return vals.astype(attrs["dtype"].np_dtype).reshape(shape)


register(OpDef("random_uniform", ("counter",),
               {"shape": AttrSpec("dims"), "seed": AttrSpec("int", 0),
                "dtype": AttrSpec("dtype", dt.f32)},
               _infer, _ref, fusion="elementwise", purity="random", optional_inputs=1,
               cost=elementwise_cost(6),
               doc="uniform [0, 1) numbers, a pure function of (seed, counter, element index)"))
