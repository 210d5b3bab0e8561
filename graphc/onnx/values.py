"""How the importer holds ONNX values, and the ONNX <-> graphc dtype tables.

An ONNX value is held either as a graphc `Tensor` (computed when the graph runs) or as a
`Const` (known while importing: initializers, Constant nodes, Shape of a tensor, and anything
computed only from those). Shape operands (Reshape's shape, Slice's starts, ...) must be
Consts. A Const computed from a shape may hold symbolic dims: its array then has dtype object
and its elements are ints and `SymDim`s, so `Reshape(x, Concat(Shape(x)[0:1], [-1]))` on an
input of shape (N, 16, 4, 4) folds to the shape (N, -1) without knowing N.
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from ir import dtypes as dt
from ir.symbolic import SymDim

from .errors import UnsupportedOnnxError

ONNX_TO_GRAPHC = {
    TensorProto.FLOAT: dt.f32,
    TensorProto.DOUBLE: dt.f64,
    TensorProto.INT32: dt.i32,
    TensorProto.INT64: dt.i64,
    TensorProto.BOOL: dt.bool_,
}
GRAPHC_TO_ONNX = {v: k for k, v in ONNX_TO_GRAPHC.items()}


def onnx_type_name(code: int) -> str:
    try:
        return TensorProto.DataType.Name(code)
    except ValueError:
        return f"type {code}"


def graphc_dtype(code: int, what: str) -> dt.DType:
    """The graphc dtype of ONNX element type `code`; UnsupportedOnnxError for the others."""
    found = ONNX_TO_GRAPHC.get(code)
    if found is None:
        names = ", ".join(onnx_type_name(c) for c in ONNX_TO_GRAPHC)
        raise UnsupportedOnnxError(f"{what} has element type {onnx_type_name(code)}; graphc "
                                   f"supports {names}")
    return found


def numpy_dtype(code: int) -> np.dtype:
    return np.dtype(helper.tensor_dtype_to_np_dtype(code))


class Const:
    """A value known at import time (see the module docstring).

    `array` holds the value; `dtype` is its ONNX-level numpy dtype (int64 for an object array
    of dims). `param` is set for a floating initializer: when the graph uses it as data it
    becomes the trainable graph parameter of that name instead of a constant."""

    __slots__ = ("array", "dtype", "param")

    def __init__(self, array, dtype=None, param=None):
        arr = np.asarray(array) if not isinstance(array, np.ndarray) else array
        if arr.dtype == object:
            if any(isinstance(v, SymDim) for v in arr.flat):
                dtype = np.dtype(dtype or np.int64)
            else:
                arr = arr.astype(dtype or np.int64)
        elif dtype is not None and arr.dtype != np.dtype(dtype):
            arr = arr.astype(dtype)
        self.array = arr
        self.dtype = np.dtype(dtype) if dtype is not None else arr.dtype
        self.param = param

    @property
    def symbolic(self) -> bool:
        return self.array.dtype == object

    @property
    def shape(self) -> tuple:
        return self.array.shape

    @property
    def ndim(self) -> int:
        return self.array.ndim

    def __repr__(self) -> str:
        return f"Const({self.array!r}, dtype={self.dtype})"


def has_symbols(arr: np.ndarray) -> bool:
    return arr.dtype == object and any(isinstance(v, SymDim) for v in arr.flat)


def dims_array(dims) -> np.ndarray:
    """A 1-D array of dims: int64 when they are all ints, else an object array."""
    dims = list(dims)
    if all(isinstance(d, (int, np.integer)) for d in dims):
        return np.array(dims, np.int64)
    out = np.empty(len(dims), object)
    for i, d in enumerate(dims):
        out[i] = int(d) if isinstance(d, (int, np.integer)) else d
    return out


def attribute_value(attr):
    """A NodeProto attribute as Python data: ints, floats, str, lists, numpy arrays."""
    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, list):
        if value and isinstance(value[0], bytes):
            return [v.decode("utf-8", "replace") for v in value]
        if value and isinstance(value[0], TensorProto):
            return [numpy_helper.to_array(v) for v in value]
        return list(value)
    return value
