"""Attribute schemas: what each op attribute is, checked and normalised in one place.

Kinds:
  int, float, bool, str     scalars
  ints, floats              tuples of those
  dim                       one dim (int or symbolic), e.g. a symbolic count
  dims                      a shape: tuple of dims (ints or symbolic)
  dtype                     an ir DType
  tensor                    a numpy array (stored read-only; constants share it)
  graph                     a nested Graph (fused groups)
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import dtypes as _dt
from .errors import AttrError, GraphcError
from .symbolic import SymDim, as_dim, as_shape

ATTR_KINDS = ("int", "float", "bool", "str", "ints", "floats", "dim", "dims", "dtype", "tensor",
              "graph")


class _Required:
    def __repr__(self):
        return "<required>"


REQUIRED = _Required()


@dataclass(frozen=True)
class AttrSpec:
    kind: str
    default: Any = REQUIRED
    doc: str = ""

    def __post_init__(self):
        if self.kind not in ATTR_KINDS:
            raise ValueError(f"unknown attr kind {self.kind!r}")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


def normalise_attr(op: str, name: str, kind: str, value):
    """Check `value` against `kind` and return its canonical form; raise AttrError if wrong."""
    def bad(expected):
        return AttrError(f"op {op}: attribute {name!r} expects {expected}, "
                         f"found {value!r} ({type(value).__name__})")

    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise bad("an int")
        return int(value)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise bad("a float")
        return float(value)
    if kind == "bool":
        if not isinstance(value, (bool, np.bool_)):
            raise bad("a bool")
        return bool(value)
    if kind == "str":
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if kind in ("ints", "floats"):
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise bad(f"a list of {kind[:-1]}s")
        return tuple(normalise_attr(op, name, kind[:-1], v) for v in value)
    if kind == "dim":
        try:
            return as_dim(value)
        except GraphcError:
            raise bad("a dim (an int or a symbol)") from None
    if kind == "dims":
        if isinstance(value, (str, bytes, int, SymDim)) or not hasattr(value, "__iter__"):
            raise bad("a shape (a list of dims)")
        try:
            return as_shape(value)
        except GraphcError:
            raise bad("a shape (a list of ints or symbols)") from None
    if kind == "dtype":
        try:
            return _dt.dtype(value)
        except GraphcError:
            raise bad("a dtype (f32, f64, i32, i64, bool)") from None
    if kind == "tensor":
        arr = np.asarray(value)
        try:
            _dt.dtype(arr.dtype)
        except GraphcError:
            raise bad("an array of f32, f64, i32, i64 or bool") from None
        if arr.flags.writeable:
            arr = arr.copy()
            arr.flags.writeable = False
        return arr
    if kind == "graph":
        from .graph import Graph
        if not isinstance(value, Graph):
            raise bad("a Graph")
        return value
    raise AssertionError(kind)


def check_attrs(op: str, schema: dict, attrs: dict) -> dict:
    """Validate attrs against an op's schema: unknown names, missing required ones, kinds.
    Returns a new dict with defaults filled in and values normalised."""
    unknown = sorted(set(attrs) - set(schema))
    if unknown:
        raise AttrError(f"op {op}: unknown attribute(s) {', '.join(map(repr, unknown))}; "
                        f"it takes {', '.join(map(repr, schema)) or 'no attributes'}")
    out = {}
    for name, spec in schema.items():
        if name in attrs:
            out[name] = normalise_attr(op, name, spec.kind, attrs[name])
        elif spec.required:
            raise AttrError(f"op {op}: missing required attribute {name!r} ({spec.kind})")
        else:
            out[name] = spec.default
    return out
