"""Every VJP rule against central finite differences (float64, reference interpreter).

Each test builds a one-op graph `loss = sum(op(inputs) * ct)` with a random cotangent `ct`, so
the checked gradient is the rule's VJP applied to an arbitrary cotangent. Inputs avoid the
points where an op is not differentiable (relu at 0, max ties, log at 0) by construction; the
conventions chosen at those points are tested separately, exactly.
"""
from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ir
from ir import Graph, TensorType, emit, run, sym
from passes.autodiff import NON_DIFFERENTIABLE, VJP_RULES, append_gradients, autodiff


def _load_gradcheck():
    # tests/ is not a package and putting it on sys.path would shadow the `ir` package with
    # tests/ir, so load the helper module from its file.
    if "gradcheck" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "gradcheck", Path(__file__).resolve().parents[1] / "gradcheck.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["gradcheck"] = module
    return sys.modules["gradcheck"]


gradcheck = _load_gradcheck()
check_grads = gradcheck.check_grads

FEW = settings(max_examples=20, deadline=None)
SOME = settings(max_examples=30, deadline=None)


def one_op_graph(op, operands, attrs=None, seed=0):
    """Graph `loss = sum(op(*operands) * ct)`; operands are (name, array). Returns (graph,
    inputs) with a random cotangent for `ct`."""
    g = Graph(op)
    values = [g.add_input(name, TensorType(arr.shape, ir.dtype(arr.dtype)))
              for name, arr in operands]
    y = emit(g, op, values, attrs or {})
    ct = g.add_input("ct", y.type)
    prod = emit(g, "mul", [y, ct])
    loss = emit(g, "reduce_sum", [prod], {"axes": tuple(range(y.type.rank))})
    g.add_output(loss, "loss")
    inputs = dict(operands)
    inputs["ct"] = np.random.default_rng(seed + 99).standard_normal(
        tuple(int(d) for d in y.shape))
    return g, inputs


def away_from_zero(rng, shape, lo=0.1, hi=2.0):
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(lo, hi, size=shape)


def distinct(rng, shape, gap=0.1):
    """Values whose pairwise differences are at least `gap` (no max/min ties)."""
    n = int(np.prod(shape, dtype=np.int64))
    return (rng.permutation(n) * gap + rng.uniform(0, gap / 4, n) - n * gap / 2).reshape(shape)


shapes = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)


# -- coverage ----------------------------------------------------------------------------------
def test_every_op_has_a_rule_or_is_non_differentiable():
    ops = set(ir.all_ops())
    rules, nondiff = set(VJP_RULES), set(NON_DIFFERENTIABLE)
    assert not rules & nondiff, f"ops in both tables: {sorted(rules & nondiff)}"
    assert not ops - rules - nondiff, f"ops with no gradient decision: {sorted(ops - rules - nondiff)}"
    assert not (rules | nondiff) - ops, f"rules for unknown ops: {sorted((rules | nondiff) - ops)}"


# -- unary -------------------------------------------------------------------------------------
UNARY_DOMAINS = {
    "neg": lambda r, s: r.standard_normal(s),
    "abs": away_from_zero,
    "sign": away_from_zero,
    "relu": away_from_zero,
    "exp": lambda r, s: r.standard_normal(s),
    "log": lambda r, s: r.uniform(0.3, 2.0, s),
    "log1p": lambda r, s: r.uniform(-0.5, 2.0, s),
    "sqrt": lambda r, s: r.uniform(0.3, 2.0, s),
    "rsqrt": lambda r, s: r.uniform(0.3, 2.0, s),
    "reciprocal": lambda r, s: away_from_zero(r, s, 0.4, 2.0),
    "tanh": lambda r, s: r.standard_normal(s),
    "sigmoid": lambda r, s: 2 * r.standard_normal(s),
    "erf": lambda r, s: r.standard_normal(s),
}


@pytest.mark.parametrize("op", sorted(UNARY_DOMAINS))
@FEW
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_unary_rules(op, shape, seed):
    x = UNARY_DOMAINS[op](np.random.default_rng(seed), shape)
    g, inputs = one_op_graph(op, [("x", np.asarray(x, np.float64))], seed=seed)
    check_grads(g, "loss", ["x"], inputs)


def test_relu_abs_sign_conventions_at_zero():
    x = np.array([-1.0, 0.0, 2.0])
    for op, expected in (("relu", [0.0, 0.0, 1.0]), ("abs", [-1.0, 0.0, 1.0]),
                         ("sign", [0.0, 0.0, 0.0])):
        g = Graph(op)
        xv = g.add_input("x", TensorType((3,), "f64"))
        y = emit(g, op, [xv])
        g.add_output(emit(g, "reduce_sum", [y], {"axes": (0,)}), "loss")
        out = run(autodiff(g, "loss", ["x"]), {"x": x}, "f64")
        np.testing.assert_array_equal(out["grad_x"], expected, err_msg=op)


# -- binary ------------------------------------------------------------------------------------
def _binary_operands(op, rng, shape):
    a = rng.standard_normal(shape)
    if op == "div":
        return a, away_from_zero(rng, shape, 0.5, 2.0)
    if op == "pow":
        return rng.uniform(0.5, 2.0, shape), rng.standard_normal(shape)
    if op in ("maximum", "minimum"):
        return a, a + away_from_zero(rng, shape, 0.1, 1.0)
    return a, rng.standard_normal(shape)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "pow", "maximum", "minimum"])
@FEW
@given(shape=shapes, seed=st.integers(0, 2**16), wrt=st.sampled_from(["a", "b", "ab"]))
def test_binary_rules(op, shape, seed, wrt):
    a, b = _binary_operands(op, np.random.default_rng(seed), shape)
    g, inputs = one_op_graph(op, [("a", a), ("b", b)], seed=seed)
    check_grads(g, "loss", list(wrt), inputs)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "maximum", "pow"])
def test_binary_with_the_same_operand_twice(op):
    """x op x: both operand contributions reach x and are summed."""
    g = Graph(op)
    x = g.add_input("x", TensorType((2, 3), "f64"))
    y = emit(g, op, [x, x])
    g.add_output(emit(g, "reduce_sum", [emit(g, "mul", [y, y])], {"axes": (0, 1)}), "loss")
    xs = np.random.default_rng(3).uniform(0.5, 2.0, (2, 3))
    check_grads(g, "loss", ["x"], {"x": xs})


def test_maximum_minimum_ties_go_to_the_first_operand():
    a = np.array([1.0, 2.0, 3.0])
    b = np.array([1.0, 5.0, 0.0])
    for op, ga, gb in (("maximum", [1, 0, 1], [0, 1, 0]), ("minimum", [1, 1, 0], [0, 0, 1])):
        g, _ = one_op_graph(op, [("a", a), ("b", b)])
        out = run(autodiff(g, "loss", ["a", "b"]), {"a": a, "b": b, "ct": np.ones(3)}, "f64")
        np.testing.assert_array_equal(out["grad_a"], ga, err_msg=op)
        np.testing.assert_array_equal(out["grad_b"], gb, err_msg=op)


def test_pow_exponent_gradient_is_guarded_where_the_base_is_not_positive():
    a = np.array([-2.0, 0.0, 3.0])
    b = np.array([2.0, 3.0, 0.5])
    g, _ = one_op_graph("pow", [("a", a), ("b", b)])
    out = run(autodiff(g, "loss", ["a", "b"]), {"a": a, "b": b, "ct": np.ones(3)}, "f64")
    np.testing.assert_allclose(out["grad_a"], b * a ** (b - 1))
    np.testing.assert_allclose(out["grad_b"], [0.0, 0.0, 3.0 ** 0.5 * math.log(3.0)])
    # a negative base with an integer exponent, differentiated in the base only
    g1, inputs = one_op_graph("pow", [("a", np.array([-1.5, -0.7])), ("b", np.array([2.0, 3.0]))])
    grads = check_grads(g1, "loss", ["a"], inputs)
    assert np.all(np.isfinite(grads["a"]))
    grad_graph = autodiff(g1, "loss", ["a"])
    assert "log" not in [n.op for n in grad_graph.nodes], "d/db emitted though b is not wanted"


# -- select and cast ---------------------------------------------------------------------------
@FEW
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_select_rule(shape, seed):
    rng = np.random.default_rng(seed)
    g = Graph("select")
    c = g.add_input("c", TensorType(shape, "bool"))
    a = g.add_input("a", TensorType(shape, "f64"))
    b = g.add_input("b", TensorType(shape, "f64"))
    ct = g.add_input("ct", TensorType(shape, "f64"))
    y = emit(g, "select", [c, a, b])
    g.add_output(emit(g, "reduce_sum", [emit(g, "mul", [y, ct])],
                      {"axes": tuple(range(len(shape)))}), "loss")
    inputs = {"c": rng.random(shape) < 0.5, "a": rng.standard_normal(shape),
              "b": rng.standard_normal(shape), "ct": rng.standard_normal(shape)}
    check_grads(g, "loss", ["a", "b"], inputs)


def test_cast_between_floats_passes_the_gradient_and_casts_it_back():
    g = Graph("cast")
    x = g.add_input("x", TensorType((2, 3), "f64"))
    y = emit(g, "cast", [x], {"dtype": "f32"})
    t = emit(g, "tanh", [y])
    back = emit(g, "cast", [t], {"dtype": "f64"})
    g.add_output(emit(g, "reduce_sum", [back], {"axes": (0, 1)}), "loss")
    check_grads(g, "loss", ["x"], {"x": np.random.default_rng(1).standard_normal((2, 3))})
    grad = autodiff(g, "loss", ["x"]).output("grad_x")
    assert grad.type == x.type


def test_cast_to_int_stops_the_gradient():
    g = Graph("cast")
    x = g.add_input("x", TensorType((4,), "f64"))
    i = emit(g, "cast", [x], {"dtype": "i64"})
    f = emit(g, "cast", [i], {"dtype": "f64"})
    g.add_output(emit(g, "reduce_sum", [emit(g, "mul", [f, x])], {"axes": (0,)}), "loss")
    xs = np.array([0.3, 1.7, -2.2, 4.0])
    out = run(autodiff(g, "loss", ["x"]), {"x": xs}, "f64")
    np.testing.assert_allclose(out["grad_x"], np.trunc(xs))   # only the direct use of x


# -- movement ----------------------------------------------------------------------------------
@SOME
@given(data=st.data())
def test_broadcast_rule(data):
    out_shape = data.draw(st.lists(st.integers(1, 4), min_size=0, max_size=4).map(tuple))
    dims = tuple(sorted(data.draw(st.sets(st.integers(0, max(len(out_shape) - 1, 0)),
                                          max_size=len(out_shape)))))
    x_shape = tuple(data.draw(st.sampled_from([1, out_shape[d]])) for d in dims)
    x = np.random.default_rng(len(dims)).standard_normal(x_shape)
    g, inputs = one_op_graph("broadcast", [("x", x)], {"shape": out_shape, "dims": dims})
    check_grads(g, "loss", ["x"], inputs)


@SOME
@given(shape=shapes, data=st.data())
def test_reshape_and_transpose_rules(shape, data):
    x = np.random.default_rng(7).standard_normal(shape)
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    g, inputs = one_op_graph("transpose", [("x", x)], {"perm": perm})
    check_grads(g, "loss", ["x"], inputs)
    n = int(np.prod(shape, dtype=np.int64))
    new_shape = data.draw(st.sampled_from([(n,), (1, n), (n, 1)]))
    g, inputs = one_op_graph("reshape", [("x", x)], {"shape": new_shape})
    check_grads(g, "loss", ["x"], inputs)


@SOME
@given(data=st.data())
def test_slice_rule_with_steps(data):
    shape = data.draw(st.lists(st.integers(1, 6), min_size=1, max_size=3).map(tuple))
    starts, stops, steps = [], [], []
    for d in shape:
        lo = data.draw(st.integers(0, d - 1))
        hi = data.draw(st.integers(lo + 1, d))
        starts.append(lo)
        stops.append(hi)
        steps.append(data.draw(st.integers(1, 3)))
    x = np.random.default_rng(sum(shape)).standard_normal(shape)
    g, inputs = one_op_graph("slice", [("x", x)],
                             {"starts": starts, "stops": stops, "steps": steps})
    check_grads(g, "loss", ["x"], inputs)


@pytest.mark.parametrize("start,stop,step", [(1, "N-1", 1), ("N-2", "N", 1), (0, "N", 1),
                                             ("N-3", "N", 2)])
def test_slice_rule_on_a_symbolic_axis(start, stop, step):
    g = Graph("slice")
    x = g.add_input("x", TensorType((sym("N"), 3), "f64"))
    y = emit(g, "slice", [x], {"starts": (start, 0), "stops": (stop, 3), "steps": (step, 2)})
    t = emit(g, "tanh", [y])
    g.add_output(emit(g, "reduce_sum", [t], {"axes": (0, 1)}), "loss")
    for n in (3, 6):
        xs = np.random.default_rng(n).standard_normal((n, 3))
        grads = check_grads(g, "loss", ["x"], {"x": xs})
        assert grads["x"].shape == (n, 3)


@SOME
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple), data=st.data())
def test_pad_rule(shape, data):
    low = [data.draw(st.integers(0, 2)) for _ in shape]
    high = [data.draw(st.integers(0, 2)) for _ in shape]
    x = np.random.default_rng(5).standard_normal(shape)
    g, inputs = one_op_graph("pad", [("x", x)], {"low": low, "high": high, "value": 1.5})
    check_grads(g, "loss", ["x"], inputs)


@SOME
@given(data=st.data())
def test_concat_rule(data):
    rank = data.draw(st.integers(1, 3))
    axis = data.draw(st.integers(-rank, rank - 1))
    base = data.draw(st.lists(st.integers(1, 3), min_size=rank, max_size=rank))
    count = data.draw(st.integers(1, 3))
    operands = []
    for k in range(count):
        shape = list(base)
        shape[axis] = data.draw(st.integers(1, 3))
        operands.append((f"x{k}", np.random.default_rng(k).standard_normal(shape)))
    wrt = data.draw(st.lists(st.sampled_from([n for n, _ in operands]), min_size=1,
                             unique=True))
    g, inputs = one_op_graph("concat", operands, {"axis": axis})
    check_grads(g, "loss", wrt, inputs)


def test_concat_rule_on_a_symbolic_axis():
    g = Graph("concat")
    a = g.add_input("a", TensorType((sym("N"), 2), "f64"))
    b = g.add_input("b", TensorType((3, 2), "f64"))
    y = emit(g, "concat", [a, b, a], {"axis": 0})
    g.add_output(emit(g, "reduce_sum", [emit(g, "mul", [y, y])], {"axes": (0, 1)}), "loss")
    for n in (1, 4):
        rng = np.random.default_rng(n)
        check_grads(g, "loss", ["a", "b"], {"a": rng.standard_normal((n, 2)),
                                            "b": rng.standard_normal((3, 2))})


@SOME
@given(data=st.data())
def test_gather_rule(data):
    rank = data.draw(st.integers(1, 3))
    shape = data.draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank).map(tuple))
    axis = data.draw(st.integers(-rank, rank - 1))
    idx_shape = data.draw(st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple))
    idx_dtype = data.draw(st.sampled_from([np.int32, np.int64]))
    rng = np.random.default_rng(len(shape) + len(idx_shape))
    indices = rng.integers(0, shape[axis], idx_shape).astype(idx_dtype)   # repeats likely
    g, inputs = one_op_graph("gather", [("data", rng.standard_normal(shape)),
                                        ("indices", indices)], {"axis": axis})
    check_grads(g, "loss", ["data"], inputs)


def test_gather_rule_with_symbolic_index_count():
    g = Graph("gather")
    table = g.add_input("table", TensorType((5, 3), "f64"))
    idx = g.add_input("idx", TensorType((sym("N"),), "i64"))
    rows = emit(g, "gather", [table, idx], {"axis": 0})
    g.add_output(emit(g, "reduce_sum", [emit(g, "mul", [rows, rows])], {"axes": (0, 1)}), "loss")
    for n in (1, 6):
        rng = np.random.default_rng(n)
        check_grads(g, "loss", ["table"], {"table": rng.standard_normal((5, 3)),
                                           "idx": rng.integers(0, 5, n)})


# -- reductions --------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["reduce_sum", "reduce_max", "reduce_min"])
@SOME
@given(shape=shapes, data=st.data())
def test_reduction_rules(op, shape, data):
    axes = sorted(data.draw(st.sets(st.integers(0, max(len(shape) - 1, 0)),
                                    max_size=len(shape))))
    axes = [a - len(shape) if data.draw(st.booleans()) else a for a in axes]  # negative axes
    keepdims = data.draw(st.booleans())
    x = distinct(np.random.default_rng(len(shape)), shape)
    g, inputs = one_op_graph(op, [("x", x)], {"axes": axes, "keepdims": keepdims})
    check_grads(g, "loss", ["x"], inputs)


def test_reduce_max_ties_share_the_gradient_equally():
    x = np.array([[3.0, 1.0, 3.0, 3.0], [0.0, 2.0, -1.0, 2.0]])
    g, _ = one_op_graph("reduce_max", [("x", x)], {"axes": (1,)})
    out = run(autodiff(g, "loss", ["x"]), {"x": x, "ct": np.array([6.0, 1.0])}, "f64")
    np.testing.assert_allclose(out["grad_x"], [[2.0, 0.0, 2.0, 2.0], [0.0, 0.5, 0.0, 0.5]])


# -- matmul ------------------------------------------------------------------------------------
@SOME
@given(data=st.data())
def test_matmul_rule_all_transpose_flags_and_batches(data):
    ta, tb = data.draw(st.booleans()), data.draw(st.booleans())
    batch = data.draw(st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple))
    m, k, n = (data.draw(st.integers(1, 4)) for _ in range(3))
    a_shape = batch + ((k, m) if ta else (m, k))
    b_shape = batch + ((n, k) if tb else (k, n))
    wrt = data.draw(st.sampled_from(["a", "b", "ab"]))
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    g, inputs = one_op_graph("matmul", [("a", rng.standard_normal(a_shape)),
                                        ("b", rng.standard_normal(b_shape))],
                             {"transpose_a": ta, "transpose_b": tb})
    check_grads(g, "loss", list(wrt), inputs)
    grad_graph = autodiff(g, "loss", list(wrt))
    assert "transpose" not in [nd.op for nd in grad_graph.nodes]


# -- convolution -------------------------------------------------------------------------------
@st.composite
def conv_configs(draw):
    groups = draw(st.integers(1, 2))
    c, o = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(4))
    eff_h, eff_w = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    h = max(1, eff_h - padding[0] - padding[2]) + draw(st.integers(0, 3))
    w = max(1, eff_w - padding[1] - padding[3]) + draw(st.integers(0, 3))
    n = draw(st.integers(1, 2))
    attrs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    return (n, c, h, w), (o, c // groups, kh, kw), attrs


@SOME
@given(cfg=conv_configs(), seed=st.integers(0, 2**16))
def test_conv2d_rule(cfg, seed):
    x_shape, w_shape, attrs = cfg
    rng = np.random.default_rng(seed)
    g, inputs = one_op_graph("conv2d", [("x", rng.standard_normal(x_shape)),
                                        ("w", rng.standard_normal(w_shape))], attrs, seed)
    check_grads(g, "loss", ["x", "w"], inputs, directions=2, full_limit=12)


@FEW
@given(cfg=conv_configs(), seed=st.integers(0, 2**16))
def test_conv2d_gradient_forms_rules(cfg, seed):
    """conv2d_grad_input and conv2d_grad_filter are themselves differentiable (double
    backward needs them): check both against finite differences in both operands."""
    x_shape, w_shape, attrs = cfg
    rng = np.random.default_rng(seed)
    probe = Graph("probe")
    xv = probe.add_input("x", TensorType(x_shape, "f64"))
    wv = probe.add_input("w", TensorType(w_shape, "f64"))
    y_shape = tuple(emit(probe, "conv2d", [xv, wv], attrs).shape)
    g, inputs = one_op_graph("conv2d_grad_input", [("dy", rng.standard_normal(y_shape)),
                                                   ("w", rng.standard_normal(w_shape))],
                             dict(attrs, input_hw=x_shape[2:]), seed)
    check_grads(g, "loss", ["dy", "w"], inputs, directions=2, full_limit=12)
    g, inputs = one_op_graph("conv2d_grad_filter", [("x", rng.standard_normal(x_shape)),
                                                    ("dy", rng.standard_normal(y_shape))],
                             dict(attrs, kernel_hw=w_shape[2:]), seed)
    check_grads(g, "loss", ["x", "dy"], inputs, directions=2, full_limit=12)


# -- pooling -----------------------------------------------------------------------------------
@st.composite
def pool_configs(draw):
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2)),
               draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2)))
    h = max(1, kh - padding[0] - padding[2]) + draw(st.integers(0, 3))
    w = max(1, kw - padding[1] - padding[3]) + draw(st.integers(0, 3))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), h, w)
    attrs = {"kernel": (kh, kw), "stride": stride, "padding": padding,
             "ceil_mode": draw(st.booleans())}
    return shape, attrs


@SOME
@given(cfg=pool_configs(), count_include_pad=st.booleans(), seed=st.integers(0, 2**16))
def test_pool_rules(cfg, count_include_pad, seed):
    shape, attrs = cfg
    rng = np.random.default_rng(seed)
    x = distinct(rng, shape)                     # no ties inside a window
    g, inputs = one_op_graph("max_pool2d", [("x", x)], attrs, seed)
    check_grads(g, "loss", ["x"], inputs, directions=2, full_limit=16)
    avg = dict(attrs, count_include_pad=count_include_pad)
    g, inputs = one_op_graph("avg_pool2d", [("x", x)], avg, seed)
    check_grads(g, "loss", ["x"], inputs, directions=2, full_limit=16)


@SOME
@given(cfg=pool_configs(), count_include_pad=st.booleans(), seed=st.integers(0, 2**16))
def test_pool_gradient_rules(cfg, count_include_pad, seed):
    shape, attrs = cfg
    rng = np.random.default_rng(seed)
    x = distinct(rng, shape)
    probe = Graph("probe")
    y_shape = tuple(emit(probe, "max_pool2d", [probe.add_input("x", TensorType(shape, "f64"))],
                         attrs).shape)
    dy = rng.standard_normal(y_shape)
    g, inputs = one_op_graph("max_pool2d_grad", [("x", x), ("dy", dy)], attrs, seed)
    check_grads(g, "loss", ["dy"], inputs, directions=2, full_limit=16)
    avg = dict(attrs, count_include_pad=count_include_pad, input_hw=shape[2:])
    g, inputs = one_op_graph("avg_pool2d_grad", [("dy", dy)], avg, seed)
    check_grads(g, "loss", ["dy"], inputs, directions=2, full_limit=16)


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_max_pool2d_grad_adjoint_with_ties_and_nan(ceil_mode):
    """The VJP of max_pool2d_grad in dy must be its exact adjoint, ties, NaN and -inf included
    (so it follows the reference's tie rule): <max_pool2d_grad(x, dy), g> == <dy, vjp(g)>."""
    rng = np.random.default_rng(11)
    x = rng.integers(0, 3, (2, 2, 5, 5)).astype(np.float64)   # many ties
    x[0, 0, 1, 1] = np.nan
    x[1, 1, 4, 4] = np.nan
    x[0, 1, :2, :] = -np.inf          # windows whose real elements tie with the -inf padding
    attrs = {"kernel": (3, 2), "stride": (2, 2), "padding": (1, 0, 1, 1), "ceil_mode": ceil_mode}
    probe = Graph("probe")
    y_shape = tuple(emit(probe, "max_pool2d", [probe.add_input("x", TensorType(x.shape, "f64"))],
                         attrs).shape)
    dy = rng.standard_normal(y_shape)
    g, inputs = one_op_graph("max_pool2d_grad", [("x", x), ("dy", dy)], attrs)
    out = run(autodiff(g, "loss", ["dy"]), inputs, "f64")
    assert np.isclose(float(out["loss"]), float(np.sum(dy * out["grad_dy"])))
    assert np.all(np.isfinite(out["grad_dy"]))


# -- second derivatives of simple rules --------------------------------------------------------
@pytest.mark.parametrize("op", ["tanh", "sigmoid", "exp", "log", "sqrt", "rsqrt", "reciprocal",
                                "erf", "log1p"])
def test_unary_rules_differentiate_twice(op):
    """The backward IR of each rule is itself differentiable: d/dx of sum(f'(x) * ct)."""
    g = Graph(op)
    x = g.add_input("x", TensorType((5,), "f64"))
    ct = g.add_input("ct", TensorType((5,), "f64"))
    y = emit(g, op, [x])
    (dx,) = append_gradients(g, y, [x], seed=ct)
    g.add_output(emit(g, "reduce_sum", [emit(g, "mul", [dx, dx])], {"axes": (0,)}), "loss")
    rng = np.random.default_rng(2)
    check_grads(g, "loss", ["x", "ct"], {"x": rng.uniform(0.3, 2.0, 5),
                                          "ct": rng.standard_normal(5)})
