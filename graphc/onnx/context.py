"""What an op handler sees of the ONNX node it imports, and the handler registry.

A handler is a function `handler(ctx) -> value or list of values` registered for an ONNX op
type and the op versions (the `since_version`s of the op's schemas) whose float32 semantics it
implements. It reads inputs as graphc Tensors (`ctx.tensor(i)`) or as import-time constants
(`ctx.const(i, "what")`), attributes with `ctx.attr(name, default)`, and builds the result with
the front end (graphc.functional), so every node it makes has checked types. Attributes a
handler never reads make the import fail with a clear error instead of being ignored.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ir.symbolic import SymDim

from ..tensor import Tensor
from .errors import DataDependentError, UnsupportedOnnxError
from .values import Const, attribute_value


@dataclass(frozen=True)
class Handler:
    op_type: str
    fn: Callable
    versions: tuple       # since_versions of the ONNX schemas this handler implements


HANDLERS: dict[str, Handler] = {}


def onnx_op(*op_types: str, versions):
    """Register the decorated function as the importer of `op_types` at `versions`."""
    def register(fn):
        for op_type in op_types:
            if op_type in HANDLERS:
                raise ValueError(f"ONNX op {op_type} has two importers")
            HANDLERS[op_type] = Handler(op_type, fn, tuple(sorted(versions)))
        return fn
    return register


_REQUIRED = object()


class NodeContext:
    """One ONNX node being imported (see the module docstring)."""

    def __init__(self, importer, node, version: int, index: int):
        self.importer = importer
        self.node = node
        self.op_type = node.op_type
        self.version = version
        self.opset = importer.opset
        self.name = node.name.strip("/") or f"{node.op_type}_{index}"
        self.inputs = list(node.input)
        self.outputs = list(node.output)
        self._attrs = {a.name: a for a in node.attribute}
        self._read: set = set()

    def describe(self) -> str:
        version = f", op version {self.version}" if self.version else ""
        return f"ONNX {self.op_type} (opset {self.opset}{version}) node " \
               f"{self.node.name or self.name!r}"

    @property
    def loc(self):
        return self.importer.node_loc(self.name)

    def unsupported(self, message: str):
        raise UnsupportedOnnxError(f"{self.describe()}: {message}", self.loc)

    # -- inputs --------------------------------------------------------------------------------
    def has(self, i: int) -> bool:
        return i < len(self.inputs) and self.inputs[i] != ""

    @property
    def n_inputs(self) -> int:
        return len(self.inputs)

    def value(self, i: int):
        """Input i as the importer holds it: a Tensor or a Const."""
        if not self.has(i):
            self.unsupported(f"input {i} is required but missing")
        return self.importer.value(self.inputs[i], self)

    def is_const(self, i: int) -> bool:
        return self.has(i) and isinstance(self.value(i), Const)

    def all_const(self) -> bool:
        return all(isinstance(self.value(i), Const) for i in range(self.n_inputs) if self.has(i))

    def tensor(self, i: int) -> Tensor:
        """Input i as a graphc Tensor (a Const becomes a constant node or a parameter)."""
        v = self.value(i)
        return v if isinstance(v, Tensor) else self.importer.materialize(v)

    def const(self, i: int, what: str) -> np.ndarray:
        """Input i as an array known at import time; DataDependentError if it is not."""
        v = self.value(i)
        if isinstance(v, Const):
            return v.array
        known = self.importer.evaluate(v)
        if known is not None:
            return known
        roots = self.importer.data_roots(self.inputs[i])
        source = (f"graph input(s) {', '.join(roots)}" if roots else "runtime data")
        hint = (f"; bind {', '.join(roots)} with import_model(..., constants={{...}}) to "
                "specialise the model" if roots else "")
        raise DataDependentError(
            f"{self.describe()}: input {i} ({what}) must be known when the model is imported "
            f"(graphc compiles static graphs), but it is computed from {source}{hint}",
            self.loc, roots)

    def const_ints(self, i: int, what: str) -> list:
        """Input i as a list of ints (or symbolic dims), known at import time."""
        arr = self.const(i, what)
        if arr.dtype != object and arr.dtype.kind not in "iu":
            self.unsupported(f"input {i} ({what}) must hold integers, found {arr.dtype}")
        return [d if isinstance(d, SymDim) else int(d) for d in arr.reshape(-1)]

    # -- attributes ----------------------------------------------------------------------------
    def has_attr(self, name: str) -> bool:
        return name in self._attrs

    def attr(self, name: str, default=_REQUIRED):
        self._read.add(name)
        a = self._attrs.get(name)
        if a is None:
            if default is _REQUIRED:
                self.unsupported(f"attribute {name!r} is required")
            return default
        return attribute_value(a)

    def unread_attrs(self) -> list:
        return sorted(set(self._attrs) - self._read)

    # -- outputs -------------------------------------------------------------------------------
    def wants(self, i: int) -> bool:
        """Whether output i is used (present with a non-empty name)."""
        return i < len(self.outputs) and self.outputs[i] != ""

    @property
    def n_outputs(self) -> int:
        return len(self.outputs)
