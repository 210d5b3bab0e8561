"""Errors of ONNX import and export.

Every one is a GraphcError whose message names the ONNX op, the opset version that defines it
and the node, so a user can find the offending node in a model viewer (Netron) at once.
"""
from __future__ import annotations

from ir.errors import GraphcError


class OnnxError(GraphcError):
    """A model could not be imported or a graph could not be exported."""


class UnsupportedOnnxError(OnnxError):
    """An ONNX op, op version, attribute value or dtype that graphc does not implement, or a
    graphc op that has no ONNX equivalent on export."""


class DataDependentError(UnsupportedOnnxError):
    """A shape operand (Reshape's shape, Slice's starts, ...) is computed from runtime data.

    graphc compiles static graphs, so such operands must be known at import time. `inputs`
    names the graph inputs the operand is computed from: binding them with
    `import_model(model, constants={...})` makes the model importable (the ONNX backend does
    this automatically, compiling one specialisation per distinct value)."""

    def __init__(self, message: str, loc=None, inputs: tuple = ()):
        self.inputs = tuple(inputs)
        super().__init__(message, loc)
