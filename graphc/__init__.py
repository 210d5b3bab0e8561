"""graphc: a static-graph deep-learning compiler.

Build a graph with the front end (symbolic Tensors, functional ops, nn layers), compile it with
`graphc.compile` (passes + llvmlite JIT), run it as native code. See README.md.
"""
from ir import Graph, GraphcError, ShapeError, TensorType, f32, f64, i32, i64, bool_  # noqa: F401

# -- front end (tensor, functional ops, tracing) ------------------------------------------------
from . import functional, tensor, tracing  # noqa: E402,F401
from .functional import *  # noqa: E402,F401,F403  (graphc.relu, graphc.matmul, ...)
from .scope import current_path as current_scope, scope  # noqa: E402,F401
from .tensor import (Tensor, TraceError, as_tensor, building, constant, current_graph,  # noqa
                     emit, unwrap, wrap)
from .tracing import Function, Spec, function, param, spec, trace  # noqa: E402,F401

# -- compiler driver and runtime -----------------------------------------------------------------
from .compiler import compile  # noqa: E402,F401  (graphc.compile(graph) -> Executable)
from runtime import Executable, ExecutionError  # noqa: E402,F401
from .bundles import export, load  # noqa: E402,F401  (bundles: runtime/bundle/)

# -- training: autodiff, nn, losses, optimizers, Model ----------------------------------------
from . import losses, nn, optim  # noqa: E402,F401
from .autograd import grad  # noqa: E402,F401  (graphc.grad(loss, wrt=[...]) while tracing)
from .training import Gradients, Model  # noqa: E402,F401

# -- data and metrics ----------------------------------------------------------------------------
from . import data, init, metrics  # noqa: E402,F401
from .data import BatchIterator, load_mnist, read_idx  # noqa: E402,F401
# (data.one_hot stays namespaced: the front end's one_hot works on symbolic tensors)

# -- ONNX import/export (graphc.onnx: the onnx package itself is imported only when used) ----
from . import onnx  # noqa: E402,F401

__version__ = "0.1.0"
