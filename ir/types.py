"""Tensor types: a shape of dims (ints or symbolic) and a dtype."""
from __future__ import annotations

from dataclasses import dataclass

from . import dtypes as _dt
from .symbolic import Dim, as_shape, format_shape, product, shape_is_static, symbols_of


@dataclass(frozen=True)
class TensorType:
    shape: tuple
    dtype: _dt.DType

    def __post_init__(self):
        object.__setattr__(self, "shape", as_shape(self.shape))
        object.__setattr__(self, "dtype", _dt.dtype(self.dtype))

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> Dim:
        return product(self.shape)

    @property
    def nbytes(self) -> Dim:
        return product(self.shape) * self.dtype.itemsize

    @property
    def is_static(self) -> bool:
        return shape_is_static(self.shape)

    def symbols(self) -> set[str]:
        return symbols_of(self.shape)

    def with_shape(self, shape) -> "TensorType":
        return TensorType(tuple(shape), self.dtype)

    def with_dtype(self, dt) -> "TensorType":
        return TensorType(self.shape, dt)

    def __str__(self) -> str:
        """IR spelling, e.g. f32[N,784]; a scalar is f32[]."""
        return f"{self.dtype.name}{format_shape(self.shape)}"

    __repr__ = __str__


def scalar(dt) -> TensorType:
    return TensorType((), dt)
