"""The ONNX backend node tests graphc is measured on, and the documented failures.

In scope (issue 7): every node test of onnx.backend.test whose model uses only the ops the
issue lists (`ISSUE_OPS`; this includes the "_expanded" tests whose function bodies are made of
those ops) and that is a float32 case: at least one input or output is float32 and every input
and output is float32, int32, int64 or bool (so float16/bfloat16/double/int8/uint*/string
cases and sequence/optional types are out of scope). The rule is applied to every test
mechanically; nothing is picked by hand.

`KNOWN_FAILURES` lists each in-scope test graphc does not pass, with the reason. The suite
(test_backend_node.py) marks them as expected failures, so a test that starts passing (or a new
failure) shows up at once.
"""
from __future__ import annotations

import functools
import warnings

ISSUE_OPS = frozenset("""
Gemm MatMul Add Sub Mul Div Neg Pow Sqrt Exp Log Relu LeakyRelu Sigmoid Tanh Softplus Softmax
LogSoftmax Conv MaxPool AveragePool GlobalAveragePool Flatten Reshape Identity Constant Dropout
BatchNormalization LayerNormalization Transpose Concat Split Slice Squeeze Unsqueeze Shape Gather
Expand Pad ConstantOfShape Cast ReduceMean ReduceSum ReduceMax ReduceMin ArgMax Clip Where Equal
Less Greater Abs Max Min Reciprocal Erf Gelu ConvTranspose GlobalMaxPool Elu Selu HardSigmoid
Einsum LSTM GRU""".split())

FLOAT = 1
SCOPE_DTYPES = frozenset({1, 6, 7, 9})      # FLOAT, INT32, INT64, BOOL

_DROPOUT_RNG = ("training-mode Dropout draws its mask from graphc's counter-based random_uniform, "
                "so which elements are kept differs from the NumPy RandomState mask the test "
                "data was made with (scaling, mask dtype and ratio 0 are right: "
                "test_training_dropout_zero_ratio* pass)")

KNOWN_FAILURES: dict = {
    "test_training_dropout": _DROPOUT_RNG,
    "test_training_dropout_default": _DROPOUT_RNG,
    "test_training_dropout_default_mask": _DROPOUT_RNG,
    "test_training_dropout_mask": _DROPOUT_RNG,
}


def _io_types(model) -> list:
    out = []
    for vi in list(model.graph.input) + list(model.graph.output):
        t = vi.type
        out.append(t.tensor_type.elem_type if t.HasField("tensor_type") else None)
    return out


def scope_of(model) -> str | None:
    """None when the test is in scope, else the reason it is not."""
    ops = {n.op_type for n in model.graph.node}
    other = sorted(ops - ISSUE_OPS)
    if other:
        return f"uses ops outside the issue's list ({', '.join(other)})"
    types = _io_types(model)
    if None in types:
        return "has a non-tensor input or output"
    if FLOAT not in types:
        return "has no float32 input or output"
    if not set(types) <= SCOPE_DTYPES:
        return "has an input or output that is not float32/int32/int64/bool"
    return None


@functools.lru_cache(maxsize=1)
def node_cases() -> list:
    """All of ONNX's node test cases (onnx.backend.test.loader TestCase objects)."""
    from onnx.backend.test.loader import load_model_tests
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(load_model_tests(kind="node"))


def in_scope_cases() -> list:
    return [c for c in node_cases() if scope_of(c.model) is None]
