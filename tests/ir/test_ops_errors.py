"""Shape-rule errors: every op family rejects invalid uses with ShapeError / DTypeError /
AttrError whose message names the op and shows the operand types, and carries the user's
location when the node has one."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import ir  # noqa: E402
from ir import AttrError, DTypeError, GraphcError, ShapeError, TensorType, sym  # noqa: E402
from tests.ir.op_harness import one_node_graph  # noqa: E402

N = sym("N")


def T(*shape, dtype="f32"):
    return TensorType(shape, dtype)


CONV = {"stride": (1, 1), "padding": (0, 0, 0, 0)}


def _fused_body():
    """A fused body taking f32[3] (fused ops check their operands against it)."""
    g = ir.Graph("fused_0")
    x = g.add_input("x", T(3))
    g.add_output(ir.emit(g, "neg", [x]), "r0")
    return g

# (op, operand types, attrs, error class, fragments the message must contain). Unless a case
# lists its own fragments, the op name and every operand type are required.
CASES = [
    # elementwise
    ("exp", [T(3, dtype="i32")], {}, DTypeError, None),
    ("neg", [T(2, dtype="bool")], {}, DTypeError, None),
    ("add", [T(2, 3), T(3, 2)], {}, ShapeError, None),
    ("mul", [T(2), T(2, dtype="f64")], {}, DTypeError, None),
    ("pow", [T(2, dtype="i32"), T(2, dtype="i32")], {}, DTypeError, None),
    ("less", [T(N, 2), T(2, 2)], {}, ShapeError, None),
    ("equal", [T(2, dtype="bool"), T(2, dtype="i32")], {}, DTypeError, None),
    ("logical_and", [T(2), T(2)], {}, DTypeError, None),
    ("logical_not", [T(2, dtype="i64")], {}, DTypeError, None),
    ("select", [T(2), T(2), T(2)], {}, DTypeError, None),
    ("select", [T(2, dtype="bool"), T(2), T(2, dtype="f64")], {}, DTypeError,
     ["select", "f32[2], f64[2]"]),
    ("select", [T(2, dtype="bool"), T(3), T(3)], {}, ShapeError, None),
    ("cast", [T(2)], {"dtype": "f16"}, AttrError, ["cast", "'dtype'", "f16"]),
    # movement
    ("iota", [], {"shape": (3,), "axis": 1}, ShapeError, ["iota", "axis 1", "[3]"]),
    ("broadcast", [T(3)], {"shape": (4,), "dims": (0,)}, ShapeError, ["broadcast", "[4]"]),
    ("broadcast", [T(3, 1)], {"shape": (3, 4), "dims": (1, 0)}, ShapeError, None),
    ("broadcast", [T(3)], {"shape": (3, 4), "dims": (0, 1)}, ShapeError, None),
    ("reshape", [T(2, 3)], {"shape": (4,)}, ShapeError, ["reshape", "f32[2,3]", "[4]"]),
    ("reshape", [T(N, 3)], {"shape": (N, 2)}, ShapeError, ["reshape", "f32[N,3]", "[N,2]"]),
    ("transpose", [T(2, 3)], {"perm": (0, 0)}, ShapeError, None),
    ("slice", [T(4)], {"starts": (0,), "stops": (5,), "steps": (1,)}, ShapeError, None),
    ("slice", [T(4)], {"starts": (3,), "stops": (2,), "steps": (1,)}, ShapeError, None),
    ("slice", [T(4)], {"starts": (0,), "stops": (4,), "steps": (0,)}, ShapeError, None),
    ("slice", [T(N)], {"starts": (0,), "stops": (3,), "steps": (1,)}, ShapeError,
     ["slice", "f32[N]", "cannot prove stop <= size"]),
    ("slice", [T(N)], {"starts": (1,), "stops": (N,), "steps": (2,)}, ShapeError,
     ["slice", "f32[N]", "strided"]),
    ("pad", [T(2, 2)], {"low": (1, -1), "high": (0, 0)}, ShapeError, None),
    ("pad", [T(2, 2)], {"low": (1,), "high": (0,)}, ShapeError, None),
    ("concat", [T(2, 3), T(2)], {"axis": 0}, ShapeError, None),
    ("fused", [T(2)], {"kind": "elementwise", "body": _fused_body()}, ShapeError,
     ["fused", "f32[2]", "f32[3]"]),
    ("concat", [T(2, 3), T(3, 2)], {"axis": 0}, ShapeError, None),
    ("concat", [T(2, 3), T(2, 3, dtype="f64")], {"axis": 0}, DTypeError, None),
    ("concat", [T(2, 3), T(2, 3)], {"axis": 2}, ShapeError, None),
    ("gather", [T(4, 2), T(3)], {"axis": 0}, DTypeError, ["gather", "indices", "f32[3]"]),
    ("gather", [T(4, 2), T(3, dtype="i64")], {"axis": -3}, ShapeError, ["gather", "f32[4,2]"]),
    # linalg
    ("matmul", [T(2, 3), T(4, 5)], {}, ShapeError, None),
    ("matmul", [T(2, 3), T(2, 5)], {"transpose_b": True}, ShapeError, None),
    ("matmul", [T(2, 2, 3), T(3, 5)], {}, ShapeError, None),
    ("matmul", [T(2, 2, 3), T(3, 3, 5)], {}, ShapeError, None),
    ("matmul", [T(3), T(3)], {}, ShapeError, None),
    ("matmul", [T(2, 2, dtype="bool"), T(2, 2, dtype="bool")], {}, DTypeError, None),
    # reductions
    ("reduce_sum", [T(2, 3)], {"axes": (2,)}, ShapeError, None),
    ("reduce_max", [T(2, 3)], {"axes": (1, -1)}, ShapeError, None),
    ("reduce_min", [T(2, dtype="bool")], {"axes": (0,)}, DTypeError, None),
    ("argmax", [T(2, 3)], {"axis": 5}, ShapeError, None),
    ("argmax", [T(2, 0)], {"axis": 1}, ShapeError, None),
    # convolution
    ("conv2d", [T(1, 3, 5, 5), T(4, 2, 3, 3)], dict(CONV), ShapeError, None),
    ("conv2d", [T(1, 4, 5, 5), T(4, 4, 3, 3)], dict(CONV, groups=3), ShapeError, None),
    ("conv2d", [T(1, 3, 5), T(4, 3, 3, 3)], dict(CONV), ShapeError, ["conv2d", "f32[1,3,5]"]),
    ("conv2d", [T(1, 3, 2, 5), T(4, 3, 3, 3)], dict(CONV), ShapeError, None),
    ("conv2d", [T(1, 3, 5, 5), T(4, 3, 3, 3, dtype="f64")], dict(CONV), DTypeError, None),
    ("conv2d", [T(1, 3, 5, 5, dtype="i32"), T(4, 3, 3, 3, dtype="i32")], dict(CONV),
     DTypeError, ["conv2d", "i32[1,3,5,5]"]),
    ("conv2d", [T(1, 3, N, 5), T(4, 3, 3, 3)], dict(CONV), ShapeError, None),
    ("conv2d", [T(1, 3, 5, 5), T(4, 3, 3, 3)], {"stride": (0, 1)}, ShapeError,
     ["conv2d", "stride", "(0, 1)"]),
    ("conv2d_grad_input", [T(1, 4, 3, 3), T(4, 3, 3, 3)], {"input_hw": (6, 5)}, ShapeError,
     ["conv2d_grad_input", "f32[1,4,3,3]"]),
    ("conv2d_grad_input", [T(1, 5, 3, 3), T(4, 3, 3, 3)], {"input_hw": (5, 5)}, ShapeError,
     None),
    ("conv2d_grad_filter", [T(2, 3, 5, 5), T(1, 4, 3, 3)], {"kernel_hw": (3, 3)}, ShapeError,
     None),
    ("conv2d_grad_filter", [T(1, 3, 5, 5), T(1, 4, 2, 3)], {"kernel_hw": (3, 3)}, ShapeError,
     None),
    # pooling
    ("max_pool2d", [T(1, 4, 4)], {"kernel": (2, 2)}, ShapeError, None),
    ("max_pool2d", [T(1, 1, 4, 4, dtype="i32")], {"kernel": (2, 2)}, DTypeError, None),
    ("avg_pool2d", [T(1, 1, 2, 4)], {"kernel": (3, 2)}, ShapeError, None),
    ("avg_pool2d", [T(1, 1, 4, 4)], {"kernel": (0, 2)}, ShapeError, ["avg_pool2d", "kernel"]),
    ("max_pool2d_grad", [T(1, 1, 4, 4), T(1, 1, 3, 3)], {"kernel": (2, 2), "stride": (2, 2)},
     ShapeError, None),
    ("avg_pool2d_grad", [T(1, 1, 3, 3)], {"kernel": (2, 2), "stride": (2, 2),
                                          "input_hw": (4, 4)}, ShapeError, None),
    # random
    ("random_uniform", [T(2, dtype="i64")], {"shape": (3,)}, ShapeError, None),
    ("random_uniform", [T(dtype="f32")], {"shape": (3,)}, DTypeError, None),
    ("random_uniform", [], {"shape": (3,), "dtype": "i32"}, DTypeError,
     ["random_uniform", "i32"]),
    # attribute checking, common to every op
    ("relu", [T(2)], {"alpha": 0.1}, AttrError, ["relu", "'alpha'"]),
    ("reduce_sum", [T(2)], {}, AttrError, ["reduce_sum", "'axes'"]),
    ("transpose", [T(2)], {"perm": "0"}, AttrError, ["transpose", "'perm'"]),
    ("constant", [], {"value": np.array([1j])}, AttrError, ["constant", "'value'"]),
]


def _case_id(case):
    return f"{case[0]}-{case[3].__name__}-" + "-".join(str(t) for t in case[1])


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_invalid_use_is_reported_with_op_and_operands(case):
    op, types, attrs, error, fragments = case
    loc = ir.Loc("model.py", 42, "net/block1/" + op)
    with pytest.raises(error) as info:
        one_node_graph(op, types, attrs, loc=loc)
    msg = str(info.value)
    for fragment in fragments or [op] + [str(t) for t in types]:
        assert fragment in msg, f"{fragment!r} missing from: {msg}"
    assert msg.startswith(f"model.py:42 (net/block1/{op}): "), msg
    assert info.value.loc == loc


FAMILIES = {
    "elementwise": {"exp", "neg", "add", "mul", "pow", "less", "equal", "logical_and",
                    "logical_not", "select", "cast"},
    "movement": {"iota", "broadcast", "reshape", "transpose", "slice", "pad", "concat", "gather"},
    "linalg": {"matmul"}, "reduction": {"reduce_sum", "reduce_max", "reduce_min", "argmax"},
    "conv": {"conv2d", "conv2d_grad_input", "conv2d_grad_filter"},
    "pooling": {"max_pool2d", "avg_pool2d", "max_pool2d_grad", "avg_pool2d_grad"},
    "random": {"random_uniform"},
}


def test_every_op_with_a_shape_rule_has_an_error_case():
    """Ops whose rule can reject something appear above; the rest take any operand."""
    covered = {c[0] for c in CASES}
    always_valid = {"constant", "dim_value"}
    rejectable = set(ir.all_ops()) - always_valid
    from ir.ops import elementwise
    # one representative per elementwise table is enough: the tables share their rule
    rejectable -= (set(elementwise.UNARY) | set(elementwise.BINARY) | set(elementwise.COMPARE)
                   | set(elementwise.LOGICAL)) - covered
    assert rejectable <= covered, sorted(rejectable - covered)
    for family, ops in FAMILIES.items():
        assert ops <= covered, family


def test_arity_and_unknown_op_errors():
    with pytest.raises(GraphcError, match=r"op add takes 2 operand\(s\) \(a, b\), found 1"):
        one_node_graph("add", [T(2)])
    with pytest.raises(GraphcError, match=r"op concat takes at least 1"):
        one_node_graph("concat", [], {"axis": 0})
    with pytest.raises(ir.UnknownOpError, match="did you mean"):
        one_node_graph("reduce_summ", [T(2)], {"axes": (0,)})
