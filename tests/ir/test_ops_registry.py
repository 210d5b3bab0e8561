"""Every registered op against tests/ir/naive.py, plus every op's cost function.

`CASES` holds one representative use per op, with a symbolic batch dim N bound to 1, 3 and 7.
The parametrisation runs over `ir.all_ops()`, so a newly registered op without a case here
fails `test_op_matches_naive[<op>]`. The test_ops_<family>.py files go deeper per family
(attribute combinations, edge values, hypothesis-generated shapes).
"""
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import ir  # noqa: E402
from ir import TensorType, sym  # noqa: E402
from ir.ops import elementwise  # noqa: E402
from ir.symbolic import SymDim, evaluate  # noqa: E402
from tests.ir import naive  # noqa: E402
from tests.ir.op_harness import check_op, concrete, one_node_graph, rand  # noqa: E402

N = sym("N")
BATCHES = (1, 3, 7)


@dataclass
class Case:
    types: list           # input types; may use the symbol N
    arrays: list          # inputs for the concrete N
    attrs: dict           # may hold symbolic dims
    expected: object      # naive result(s) for the concrete N
    env: dict = field(default_factory=dict)
    tol: dict = field(default_factory=dict)


def T(*shape, dtype="f32"):
    return TensorType(shape, dtype)


def _unary(name):
    def make(rng, n):
        x = rand(rng, (n, 5), "f32", -4, 4, specials=0.25)
        return Case([T(N, 5)], [x], {}, naive.unary(name, x))
    return make


def _binary(name):
    def make(rng, n):
        if name == "pow":
            a, b = rand(rng, (n, 4), "f32", 0.1, 3), rand(rng, (n, 4), "f32", -2, 2)
        else:
            a = rand(rng, (n, 4), "f32", specials=0.2)
            b = rand(rng, (n, 4), "f32", specials=0.2)
            b[:, 0] = a[:, 0]              # some equal pairs for the comparisons
        expected = naive.binary(name, a, b)
        return Case([T(N, 4), T(N, 4)], [a, b], {}, expected)
    return make


def _logical(name):
    def make(rng, n):
        a, b = rand(rng, (n, 3), "bool"), rand(rng, (n, 3), "bool")
        return Case([T(N, 3, dtype="bool")] * 2, [a, b], {}, naive.binary(name, a, b))
    return make


def _logical_not(rng, n):
    x = rand(rng, (n, 3), "bool")
    return Case([T(N, 3, dtype="bool")], [x], {}, naive.logical_not(x))


def _select(rng, n):
    c, a, b = rand(rng, (n, 3), "bool"), rand(rng, (n, 3)), rand(rng, (n, 3), specials=0.3)
    return Case([T(N, 3, dtype="bool"), T(N, 3), T(N, 3)], [c, a, b], {}, naive.select(c, a, b))


def _cast(rng, n):
    x = rand(rng, (n, 6), "f32", -4e9, 4e9, specials=0.3)
    return Case([T(N, 6)], [x], {"dtype": "i32"}, naive.cast(x, np.int32))


def _constant(rng, n):
    value = np.array([[1.5, np.nan], [-0.0, np.inf], [3.25, -2.0]], np.float32)
    return Case([], [], {"value": value}, value.astype(np.float64))


def _iota(rng, n):
    return Case([], [], {"shape": (N, 4), "axis": 0, "dtype": "f32"},
                naive.iota((n, 4), 0, np.float32), env={"N": n})


def _dim_value(rng, n):
    return Case([], [], {"dim": 2 * N + 1}, np.array(2 * n + 1, np.int64), env={"N": n})


def _broadcast(rng, n):
    x = rand(rng, (n, 1))
    attrs = {"shape": (N, 3, 4), "dims": (0, 2)}
    return Case([T(N, 1)], [x], attrs, naive.broadcast(x, (n, 3, 4), (0, 2)))


def _reshape(rng, n):
    x = rand(rng, (n, 6))
    return Case([T(N, 6)], [x], {"shape": (N, 2, 3)}, naive.reshape(x, (n, 2, 3)))


def _transpose(rng, n):
    x = rand(rng, (n, 2, 3))
    return Case([T(N, 2, 3)], [x], {"perm": (2, 0, 1)}, naive.transpose(x, (2, 0, 1)))


def _slice(rng, n):
    x = rand(rng, (n, 7))
    attrs = {"starts": (0, 1), "stops": (N - 1, 7), "steps": (1, 2)}
    return Case([T(N, 7)], [x], attrs, naive.slice_(x, (0, 1), (n - 1, 7), (1, 2)))


def _pad(rng, n):
    x = rand(rng, (n, 3))
    attrs = {"low": (1, 0), "high": (0, 2), "value": 1.5}
    return Case([T(N, 3)], [x], attrs, naive.pad(x, (1, 0), (0, 2), 1.5))


def _concat(rng, n):
    xs = [rand(rng, (n, k)) for k in (2, 3, 1)]
    return Case([T(N, 2), T(N, 3), T(N, 1)], xs, {"axis": 1}, naive.concat(xs, 1))


def _gather(rng, n):
    data, idx = rand(rng, (n, 5)), rng.integers(0, 5, size=(2, 2)).astype(np.int64)
    return Case([T(N, 5), T(2, 2, dtype="i64")], [data, idx], {"axis": 1},
                naive.gather(data, idx, 1))


def _matmul(rng, n):
    a, b = rand(rng, (n, 4), low=-1, high=1), rand(rng, (3, 4), low=-1, high=1)
    return Case([T(N, 4), T(3, 4)], [a, b], {"transpose_b": True},
                naive.matmul(a, b, transpose_b=True), tol={"atol32": 1e-5})


def _reduce(name):
    def make(rng, n):
        x = rand(rng, (n, 3, 4), specials=0.05)
        fn = getattr(naive, name)
        return Case([T(N, 3, 4)], [x], {"axes": (0, -1), "keepdims": True},
                    fn(x, (0, 2), True), tol={"atol32": 1e-5})
    return make


def _argmax(rng, n):
    x = rng.integers(0, 3, size=(n, 5)).astype(np.float32)     # plenty of ties
    return Case([T(N, 5)], [x], {"axis": 1}, naive.argmax(x, 1, False))


CONV = {"stride": (2, 1), "padding": (1, 0, 0, 1), "dilation": (1, 2), "groups": 2}


def _conv2d(rng, n):
    x, w = rand(rng, (n, 4, 6, 5), low=-1, high=1), rand(rng, (6, 2, 3, 2), low=-1, high=1)
    return Case([T(N, 4, 6, 5), T(6, 2, 3, 2)], [x, w], dict(CONV),
                naive.conv2d(x, w, **CONV), tol={"atol32": 1e-5})


def _conv2d_grad_input(rng, n):
    dy, w = rand(rng, (n, 6, 3, 4), low=-1, high=1), rand(rng, (6, 2, 3, 2), low=-1, high=1)
    return Case([T(N, 6, 3, 4), T(6, 2, 3, 2)], [dy, w], dict(CONV, input_hw=(6, 5)),
                naive.conv2d_grad_input(dy, w, (6, 5), **CONV), tol={"atol32": 1e-5})


def _conv2d_grad_filter(rng, n):
    x, dy = rand(rng, (n, 4, 6, 5), low=-1, high=1), rand(rng, (n, 6, 3, 4), low=-1, high=1)
    return Case([T(N, 4, 6, 5), T(N, 6, 3, 4)], [x, dy], dict(CONV, kernel_hw=(3, 2)),
                naive.conv2d_grad_filter(x, dy, (3, 2), **CONV), tol={"atol32": 1e-5})


POOL = {"kernel": (3, 2), "stride": (2, 2), "padding": (1, 0, 1, 1), "ceil_mode": True}


def _max_pool2d(rng, n):
    x = rand(rng, (n, 2, 5, 6))
    return Case([T(N, 2, 5, 6)], [x], dict(POOL), naive.max_pool2d(x, **POOL))


def _max_pool2d_grad(rng, n):
    x = rand(rng, (n, 2, 5, 6))
    dy = rand(rng, (n, 2) + naive.pool_out_hw(x.shape, POOL["kernel"], POOL["stride"],
                                              POOL["padding"], True))
    return Case([T(N, 2, 5, 6), T(N, 2, *dy.shape[2:])], [x, dy], dict(POOL),
                naive.max_pool2d_grad(x, dy, **POOL))


def _avg_pool2d(rng, n):
    x = rand(rng, (n, 2, 5, 6))
    return Case([T(N, 2, 5, 6)], [x], dict(POOL, count_include_pad=False),
                naive.avg_pool2d(x, count_include_pad=False, **POOL))


def _avg_pool2d_grad(rng, n):
    dy = rand(rng, (n, 2) + naive.pool_out_hw((n, 2, 5, 6), POOL["kernel"], POOL["stride"],
                                              POOL["padding"], True))
    attrs = dict(POOL, count_include_pad=True, input_hw=(5, 6))
    return Case([T(N, 2, *dy.shape[2:])], [dy], attrs,
                naive.avg_pool2d_grad(dy, (5, 6), count_include_pad=True, **POOL))


def _random_uniform(rng, n):
    counter = np.array(3, np.int64)
    return Case([T(dtype="i64")], [counter], {"shape": (N, 8), "seed": 7},
                naive.random_uniform((n, 8), seed=7, counter=3), env={"N": n})


def _fused(rng, n):
    """A two-result fused group: r0 = relu(a * b), r1 = exp(r0) + b (the body, run through
    the interpreter, must equal the naive ops composed)."""
    body = ir.Graph("fused_0")
    a, b = body.add_input("a", T(N, 4)), body.add_input("b", T(N, 4))
    r0 = ir.emit(body, "relu", [ir.emit(body, "mul", [a, b])])
    body.add_output(r0, "r0")
    body.add_output(ir.emit(body, "add", [ir.emit(body, "exp", [r0]), b]), "r1")
    x, y = rand(rng, (n, 4), "f32", specials=0.2), rand(rng, (n, 4), "f32", specials=0.2)
    r0_want = naive.unary("relu", naive.binary("mul", x, y))
    r1_want = naive.binary("add", naive.unary("exp", r0_want), y)
    return Case([T(N, 4), T(N, 4)], [x, y], {"kind": "elementwise", "body": body},
                [r0_want, r1_want])


CASES = {
    "fused": _fused,
    **{name: _unary(name) for name in elementwise.UNARY},
    **{name: _binary(name) for name in list(elementwise.BINARY) + list(elementwise.COMPARE)},
    **{name: _logical(name) for name in elementwise.LOGICAL},
    "logical_not": _logical_not, "select": _select, "cast": _cast,
    "constant": _constant, "iota": _iota, "dim_value": _dim_value, "broadcast": _broadcast,
    "reshape": _reshape, "transpose": _transpose, "slice": _slice, "pad": _pad,
    "concat": _concat, "gather": _gather, "matmul": _matmul,
    **{name: _reduce(name) for name in ("reduce_sum", "reduce_max", "reduce_min")},
    "argmax": _argmax, "conv2d": _conv2d, "conv2d_grad_input": _conv2d_grad_input,
    "conv2d_grad_filter": _conv2d_grad_filter, "max_pool2d": _max_pool2d,
    "max_pool2d_grad": _max_pool2d_grad, "avg_pool2d": _avg_pool2d,
    "avg_pool2d_grad": _avg_pool2d_grad, "random_uniform": _random_uniform,
}


def test_cases_name_only_registered_ops():
    assert set(CASES) <= set(ir.all_ops()), set(CASES) - set(ir.all_ops())


def _require_case(op):
    if op not in CASES:
        pytest.fail(f"op {op!r} is registered but has no reference test: add a case to "
                    f"tests/ir/test_ops_registry.py (and family tests)")


@pytest.mark.parametrize("op", sorted(ir.all_ops()))
def test_op_matches_naive(op):
    _require_case(op)
    for n in BATCHES:
        case = CASES[op](np.random.default_rng(n), n)
        check_op(op, case.arrays, case.expected, case.attrs, case.types, case.env, **case.tol)


# -- costs -------------------------------------------------------------------------------------
def _static_types(types, n):
    return [TensorType(tuple(evaluate(d, {"N": n}) for d in t.shape), t.dtype) for t in types]


def _cost_of(op, types, attrs):
    g = one_node_graph(op, types, attrs)
    node = g.nodes[0]
    cost = ir.get_op(op).cost([v.type for v in node.inputs], [v.type for v in node.outputs],
                              node.attrs)
    assert isinstance(cost, ir.Cost), f"{op}: cost returned {cost!r}"
    return cost


@pytest.mark.parametrize("op", sorted(ir.all_ops()))
def test_cost_is_nonnegative_and_symbolic(op):
    assert ir.get_op(op).cost is not None, f"op {op} has no cost function"
    _require_case(op)
    case = CASES[op](np.random.default_rng(0), 1)
    symbolic = _cost_of(op, case.types, case.attrs)
    statics = {}
    for n in BATCHES:
        attrs = {k: concrete(v, {"N": n}) for k, v in case.attrs.items()}
        cost = _cost_of(op, _static_types(case.types, n), attrs)
        for part in ("flops", "bytes"):
            value = getattr(cost, part)
            assert isinstance(value, int) and value >= 0, f"{op} {part} = {value!r} at N={n}"
            # the symbolic cost is the polynomial whose value at N=n is the static cost
            assert evaluate(getattr(symbolic, part), {"N": n}) == value, (op, part, n)
            statics.setdefault(part, set()).add(value)
    for part, values in statics.items():
        if len(values) > 1:   # depends on N: must be a polynomial in N, not a number
            assert isinstance(getattr(symbolic, part), SymDim), (op, part)
            assert getattr(symbolic, part).symbols() == {"N"}


def test_cost_formulas_count_the_work():
    """Spot checks against hand counts: 2*M*K*N for matmul, 2 per MAC for conv, every byte of
    every operand for elementwise ops."""
    mm = _cost_of("matmul", [T(5, 2, 3), T(5, 3, 4)], {})
    assert mm.flops == 2 * 5 * 2 * 3 * 4
    assert mm.bytes == 4 * (5 * 2 * 3 + 5 * 3 * 4 + 5 * 2 * 4)
    conv = _cost_of("conv2d", [T(2, 4, 6, 5), T(6, 2, 3, 2)], dict(CONV))
    assert conv.flops == 2 * (2 * 6 * 3 * 4) * (2 * 3 * 2)
    for grad, types, extra in (("conv2d_grad_input", [T(2, 6, 3, 4), T(6, 2, 3, 2)],
                                {"input_hw": (6, 5)}),
                               ("conv2d_grad_filter", [T(2, 4, 6, 5), T(2, 6, 3, 4)],
                                {"kernel_hw": (3, 2)})):
        assert _cost_of(grad, types, dict(CONV, **extra)).flops == conv.flops, grad
    add = _cost_of("add", [T(N, 3), T(N, 3)], {})
    assert add.bytes == 3 * (N * 3 * 4) and add.flops == 3 * N
