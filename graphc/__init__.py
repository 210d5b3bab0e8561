"""graphc: a static-graph deep-learning compiler.

Build a graph with the front end (symbolic Tensors, functional ops, nn layers), compile it with
`graphc.compile` (passes + llvmlite JIT), run it as native code. See README.md.
"""
from ir import Graph, GraphcError, ShapeError, TensorType, f32, f64, i32, i64, bool_  # noqa: F401

# -- front end (tensor, functional ops, tracing) ------------------------------------------------

# -- compiler driver and runtime -----------------------------------------------------------------

# -- training: autodiff, nn, losses, optimizers, Model ----------------------------------------

# -- data and metrics ----------------------------------------------------------------------------

__version__ = "0.1.0"
