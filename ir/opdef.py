"""The op registry: one `OpDef` per primitive holds everything about the op's meaning.

An OpDef names the op, its inputs and attribute schema, its shape/dtype rule (`infer`), its
numpy reference implementation (`reference`, the oracle for codegen and constant folding), its
fusion kind, its purity and its FLOP/byte cost. Gradient rules live in passes/autodiff and
lowerings in runtime/; tests assert every op has all of them.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Callable, Optional

from .attrs import AttrSpec
from .errors import UnknownOpError

FUSION_KINDS = ("elementwise", "broadcast", "injective", "reduction", "contraction", "opaque")
PURITIES = ("pure", "random", "stateful")


@dataclass(frozen=True)
class Cost:
    flops: object   # a Dim: int or symbolic polynomial
    bytes: object


@dataclass(frozen=True)
class OpDef:
    name: str
    inputs: tuple                       # input names; a trailing '*' name means variadic
    attrs: dict                         # attr name -> AttrSpec
    infer: Callable                     # (list[TensorType], attrs) -> list[TensorType]
    reference: Callable                 # (list[np.ndarray], attrs) -> ndarray | tuple
    fusion: str
    purity: str = "pure"
    cost: Optional[Callable] = None     # (in types, out types, attrs) -> Cost
    num_outputs: object = 1             # an int, or a callable attrs -> int (e.g. `fused`)
    optional_inputs: int = 0            # how many trailing inputs may be omitted
    doc: str = ""
    tags: frozenset = field(default_factory=frozenset)   # e.g. {"unary", "binary", "compare"}

    def __post_init__(self):
        assert self.fusion in FUSION_KINDS, self.fusion
        assert self.purity in PURITIES, self.purity
        for spec in self.attrs.values():
            assert isinstance(spec, AttrSpec)

    def result_count(self, attrs: dict) -> int:
        """How many results a node with these attrs has (most ops: a fixed number)."""
        n = self.num_outputs
        return n(attrs) if callable(n) else n

    @property
    def variadic(self) -> bool:
        return bool(self.inputs) and self.inputs[-1].endswith("*")

    def arity_ok(self, n: int) -> bool:
        if self.variadic:
            return n >= len(self.inputs)   # the variadic name needs at least one operand
        return len(self.inputs) - self.optional_inputs <= n <= len(self.inputs)

    def arity_text(self) -> str:
        if self.variadic:
            return f"at least {len(self.inputs)}"
        lo = len(self.inputs) - self.optional_inputs
        return str(lo) if lo == len(self.inputs) else f"{lo} to {len(self.inputs)}"


_REGISTRY: dict[str, OpDef] = {}


def register(opdef: OpDef) -> OpDef:
    if opdef.name in _REGISTRY:
        raise ValueError(f"op {opdef.name!r} registered twice")
    _REGISTRY[opdef.name] = opdef
    return opdef


def get_op(name: str) -> OpDef:
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownOpError(f"unknown op {name!r}{hint}") from None


def has_op(name: str) -> bool:
    return name in _REGISTRY


def all_ops() -> dict[str, OpDef]:
    return dict(_REGISTRY)
