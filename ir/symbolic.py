"""Symbolic dimensions.

A dim is either a Python int or a `SymDim`: a polynomial with integer coefficients over named
symbols (`N`, `784*N`, `N+M`). Polynomials are closed under the arithmetic that shape rules
need (reshape/flatten multiply dims, concat adds them, an exact division undoes a product), and
their canonical form makes equality a structural comparison: a shape rule proves two dims equal
exactly when their canonical forms match. A SymDim whose polynomial is a constant is returned
as a plain int, so a static dim is always an int.
"""
from __future__ import annotations

import re
from typing import Iterable, Mapping, Union

from .errors import ShapeError

# A monomial is a sorted tuple of symbol names, with repetition for powers: ('M', 'N', 'N').
Monomial = tuple
_SYMBOL_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class SymDim:
    """An integer polynomial over named symbols, in canonical form (immutable)."""

    __slots__ = ("terms", "_hash")

    def __init__(self, terms: Mapping[Monomial, int]):
        canon = tuple(sorted((m, c) for m, c in terms.items() if c != 0))
        object.__setattr__(self, "terms", canon)
        object.__setattr__(self, "_hash", hash(("SymDim", canon)))

    def __setattr__(self, *_):
        raise AttributeError("SymDim is immutable")

    # -- arithmetic ---------------------------------------------------------------------------
    def __add__(self, other):
        return dim_add(self, other)

    __radd__ = __add__

    def __sub__(self, other):
        return dim_add(self, dim_mul(other, -1))

    def __rsub__(self, other):
        return dim_add(other, dim_mul(self, -1))

    def __mul__(self, other):
        return dim_mul(self, other)

    __rmul__ = __mul__

    def __floordiv__(self, other):
        return dim_div_exact(self, other)

    # -- comparison ---------------------------------------------------------------------------
    def __eq__(self, other):
        return isinstance(other, SymDim) and other.terms == self.terms

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return self._hash

    def symbols(self) -> set[str]:
        return {s for m, _ in self.terms for s in m}

    def __repr__(self):
        return format_dim(self)

    __str__ = __repr__


Dim = Union[int, SymDim]


def sym(name: str) -> SymDim:
    """The symbolic dim called `name` (an identifier such as 'N' or 'batch')."""
    if not isinstance(name, str) or not _SYMBOL_RE.match(name):
        raise ShapeError(f"a symbolic dim name must be an identifier like 'N', found {name!r}")
    return SymDim({(name,): 1})


def _as_terms(d: Dim) -> dict:
    if isinstance(d, SymDim):
        return dict(d.terms)
    if isinstance(d, bool) or not isinstance(d, int):
        raise ShapeError(f"a dim must be an int or a symbolic dim, found {d!r} ({type(d).__name__})")
    return {(): d} if d != 0 else {}


def _normalise(terms: dict) -> Dim:
    terms = {m: c for m, c in terms.items() if c != 0}
    if not terms:
        return 0
    if set(terms) == {()}:
        return terms[()]
    return SymDim(terms)


def dim_add(a: Dim, b: Dim) -> Dim:
    out = _as_terms(a)
    for m, c in _as_terms(b).items():
        out[m] = out.get(m, 0) + c
    return _normalise(out)


def dim_mul(a: Dim, b: Dim) -> Dim:
    out: dict = {}
    for ma, ca in _as_terms(a).items():
        for mb, cb in _as_terms(b).items():
            m = tuple(sorted(ma + mb))
            out[m] = out.get(m, 0) + ca * cb
    return _normalise(out)


def dim_div_exact(a: Dim, b: Dim) -> Dim:
    """a / b when b divides a exactly (b an int or a single monomial); else raise ShapeError."""
    tb = _as_terms(b)
    if len(tb) != 1:
        raise ShapeError(f"cannot divide dim {format_dim(a)} by {format_dim(b)}: "
                         "the divisor must be a single term")
    (mb, cb), = tb.items()
    out = {}
    for ma, ca in _as_terms(a).items():
        rest = list(ma)
        for s in mb:
            if s not in rest:
                raise ShapeError(f"dim {format_dim(a)} is not divisible by {format_dim(b)}")
            rest.remove(s)
        if ca % cb:
            raise ShapeError(f"dim {format_dim(a)} is not divisible by {format_dim(b)}")
        out[tuple(rest)] = ca // cb
    return _normalise(out)


def product(dims: Iterable[Dim]) -> Dim:
    out: Dim = 1
    for d in dims:
        out = dim_mul(out, d)
    return out


def is_static(d: Dim) -> bool:
    return isinstance(d, int)


def shape_is_static(shape: Iterable[Dim]) -> bool:
    return all(isinstance(d, int) for d in shape)


def symbols_of(dims: Iterable[Dim]) -> set[str]:
    out: set[str] = set()
    for d in dims:
        if isinstance(d, SymDim):
            out |= d.symbols()
    return out


def evaluate(d: Dim, env: Mapping[str, int]) -> int:
    """The int value of `d` once every symbol is bound in `env`."""
    if isinstance(d, int):
        return d
    total = 0
    for m, c in d.terms:
        v = c
        for s in m:
            if s not in env:
                raise ShapeError(f"symbolic dim {s} has no value (dim {format_dim(d)})")
            v *= env[s]
        total += v
    return total


def substitute(d: Dim, env: Mapping[str, Dim]) -> Dim:
    """Replace symbols by dims (ints or other polynomials); unbound symbols stay."""
    if isinstance(d, int):
        return d
    out: Dim = 0
    for m, c in d.terms:
        term: Dim = c
        for s in m:
            term = dim_mul(term, env.get(s, sym(s)))
        out = dim_add(out, term)
    return out


def format_dim(d: Dim) -> str:
    """IR spelling: 'N', '784*N', 'N*N', 'N+M', '2*N-1'. Parsed back by `parse_dim`."""
    if isinstance(d, int):
        return str(d)
    parts = []
    # highest-degree terms first, constant last: reads like '2*N+1'
    for m, c in sorted(d.terms, key=lambda t: (-len(t[0]), t[0])):
        factors = list(m)
        if c == 1 and factors:
            body = "*".join(factors)
        elif c == -1 and factors:
            body = "-" + "*".join(factors)
        else:
            body = "*".join([str(c)] + factors)
        if parts and not body.startswith("-"):
            body = "+" + body
        parts.append(body)
    return "".join(parts)


_TOKEN_RE = re.compile(r"\s*(?:(\d+)|([A-Za-z_][A-Za-z0-9_]*)|([-+*]))")


def parse_dim(text: str) -> Dim:
    """Inverse of `format_dim`: a sum of products of ints and symbol names."""
    pos, total, sign = 0, 0, 1
    term: Dim = 1
    expect_factor = True
    text = text.strip()
    if not text:
        raise ShapeError("empty dim expression")
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m:
            raise ShapeError(f"bad dim expression {text!r} at column {pos + 1}")
        pos = m.end()
        num, name, opch = m.groups()
        if expect_factor:
            if num is not None:
                term = dim_mul(term, int(num))
            elif name is not None:
                term = dim_mul(term, sym(name))
            elif opch == "-" and term == 1:
                sign = -sign
                continue
            else:
                raise ShapeError(f"bad dim expression {text!r}: expected a number or symbol")
            expect_factor = False
        else:
            if opch == "*":
                expect_factor = True
            elif opch in "+-":
                total = dim_add(total, dim_mul(term, sign))
                term, sign, expect_factor = 1, (1 if opch == "+" else -1), True
            else:
                raise ShapeError(f"bad dim expression {text!r}: expected an operator")
    if expect_factor:
        raise ShapeError(f"bad dim expression {text!r}: ends with an operator")
    return dim_add(total, dim_mul(term, sign))


def as_dim(x) -> Dim:
    """Normalise a user-facing dim: int, symbol name ('N'), expression ('784*N') or SymDim."""
    if isinstance(x, SymDim):
        return x
    if isinstance(x, bool):
        raise ShapeError(f"a dim must be an int or a symbol name, found {x!r}")
    if isinstance(x, int):
        if x < 0:
            raise ShapeError(f"a dim must be non-negative, found {x}")
        return x
    if hasattr(x, "__index__"):
        return as_dim(int(x))
    if isinstance(x, str):
        return parse_dim(x)
    raise ShapeError(f"a dim must be an int or a symbol name, found {x!r} ({type(x).__name__})")


def as_shape(xs) -> tuple:
    if isinstance(xs, (int, str, SymDim)):
        xs = (xs,)
    return tuple(as_dim(x) for x in xs)


def format_shape(shape: Iterable[Dim]) -> str:
    return "[" + ",".join(format_dim(d) for d in shape) + "]"
