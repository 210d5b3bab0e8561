"""Element types of graphc tensors: f32, f64, i32, i64, bool."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import DTypeError


@dataclass(frozen=True)
class DType:
    name: str          # the IR spelling: f32, f64, i32, i64, bool
    np_dtype: np.dtype
    itemsize: int
    is_float: bool
    is_int: bool

    def __repr__(self) -> str:
        return self.name

    __str__ = __repr__


f32 = DType("f32", np.dtype(np.float32), 4, True, False)
f64 = DType("f64", np.dtype(np.float64), 8, True, False)
i32 = DType("i32", np.dtype(np.int32), 4, False, True)
i64 = DType("i64", np.dtype(np.int64), 8, False, True)
bool_ = DType("bool", np.dtype(np.bool_), 1, False, False)

ALL_DTYPES = (f32, f64, i32, i64, bool_)
FLOAT_DTYPES = (f32, f64)
INT_DTYPES = (i32, i64)
_BY_NAME = {d.name: d for d in ALL_DTYPES}
_ALIASES = {"float32": f32, "float64": f64, "int32": i32, "int64": i64, "bool_": bool_}


def dtype(x) -> DType:
    """Normalise a DType, IR name ('f32'), numpy name ('float32') or numpy dtype to a DType."""
    if isinstance(x, DType):
        return x
    if isinstance(x, str):
        found = _BY_NAME.get(x) or _ALIASES.get(x)
        if found is None:
            raise DTypeError(f"unknown dtype {x!r}; expected one of {', '.join(_BY_NAME)}")
        return found
    try:
        npd = np.dtype(x)
    except TypeError:
        raise DTypeError(f"cannot interpret {x!r} as a dtype") from None
    for d in ALL_DTYPES:
        if d.np_dtype == npd:
            return d
    raise DTypeError(f"numpy dtype {npd} has no graphc equivalent; expected one of "
                     f"{', '.join(str(d.np_dtype) for d in ALL_DTYPES)}")
