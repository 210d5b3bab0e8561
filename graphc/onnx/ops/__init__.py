"""The importer's op handlers, one module per op family; importing this package registers
them all in graphc.onnx.context.HANDLERS."""
from . import elementwise, einsum, nn, pooling, reductions, rnn, shapes  # noqa: F401
