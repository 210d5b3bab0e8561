"""graphc's functional ops: every function takes Tensors (plus Python scalars or numpy arrays
where it makes sense) and appends primitive nodes to the graph being traced.

They are re-exported as `graphc.<name>`. Each is built only from the primitives in ir/ops,
so autodiff, passes and codegen see nothing but primitives.
"""
from .broadcasting import broadcast_shapes, broadcast_to
from .elementwise import (abs, add, cast, clip, divide, elu, equal, erf, exp, gelu, greater,
                          greater_equal, is_finite, leaky_relu, less, less_equal, log, log1p,
                          logical_and, logical_not, logical_or, maximum, minimum, multiply,
                          negative, not_equal, power, reciprocal, relu, rsqrt, selu, sigmoid,
                          sign, softplus, softsign, sqrt, square, subtract, tanh, where)
from .nn import (avg_pool2d, conv2d, conv_transpose2d, dropout, global_avg_pool2d, linear,
                 matmul, max_pool2d)
from .reductions import argmax, log_softmax, logsumexp, max, mean, min, softmax, std, sum, var
from .shapes import (concat, expand_dims, flatten, full, gather, getitem, one_hot, ones,
                     ones_like, pad, reshape, squeeze, stack, take, transpose, zeros, zeros_like)

__all__ = [
    # arithmetic, comparison, logic
    "add", "subtract", "multiply", "divide", "power", "negative", "maximum", "minimum",
    "less", "less_equal", "greater", "greater_equal", "equal", "not_equal",
    "logical_and", "logical_or", "logical_not", "where", "cast", "clip", "is_finite",
    # math and activations
    "abs", "sign", "exp", "log", "log1p", "sqrt", "rsqrt", "reciprocal", "erf", "square",
    "tanh", "sigmoid", "relu", "leaky_relu", "elu", "selu", "gelu", "softplus", "softsign",
    # reductions and normalisers
    "sum", "mean", "max", "min", "argmax", "var", "std", "softmax", "log_softmax", "logsumexp",
    # shapes and data movement
    "reshape", "transpose", "flatten", "expand_dims", "squeeze", "getitem", "concat", "stack",
    "pad", "take", "gather", "one_hot", "broadcast_to", "broadcast_shapes",
    "full", "zeros", "ones", "zeros_like", "ones_like",
    # neural-network ops
    "matmul", "linear", "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d",
    "global_avg_pool2d", "dropout",
]
