"""The op/shape/attribute cases of the differential suite, grouped by family.

Shapes mix the symbolic batch N (run at 1, 3 and 17), size-1 dims, odd sizes that do not
divide the vector width (5, 7, 19) and sizes that cross it (33). Every registered op appears;
test_differential.py asserts that.
"""
from __future__ import annotations

import numpy as np

import ir
from ir import TensorType, emit
from rt_harness import Case, bools, choice, default_gen, inp, ints, normal, uniform

N = "N"
FLOAT_SHAPES = [(N, 33), (N,), (1, N, 5), (), (7, 1)]
INT_SHAPES = [(N, 19), (3, N, 1)]
FLOATS = ("f32", "f64")
INTS = ("i32", "i64")

# input domains per unary op (values where the function is defined, plus its edges)
UNARY_FLOAT = {
    "exp": uniform(-20, 20), "log": uniform(1e-3, 50), "log1p": uniform(-0.9, 30),
    "sqrt": uniform(0, 100), "rsqrt": uniform(1e-3, 100), "reciprocal": normal(3),
    "tanh": normal(3), "sigmoid": normal(6), "erf": normal(1.5),
}
ULP_OPS = {"exp", "log", "log1p", "tanh", "sigmoid", "erf", "pow"}
SPECIAL_FLOATS = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 2.5, -3.5, 1e30, -1e30]


def _id(op, dtype, shape):
    return f"{op}.{dtype}.{'x'.join(map(str, shape)) or 'scalar'}"


def elementwise_cases() -> list:
    cases = []
    for op, gen in UNARY_FLOAT.items():
        for dt in FLOATS:
            for shape in FLOAT_SHAPES:
                cases.append(Case(_id(op, dt, shape), op, [inp(shape, dt, gen)],
                                  tol="ulp" if op in ULP_OPS else "exact"))
    for op in ("neg", "abs", "sign", "relu"):
        for dt in FLOATS + INTS:
            for shape in (FLOAT_SHAPES[:3] if dt in FLOATS else INT_SHAPES):
                cases.append(Case(_id(op, dt, shape), op, [inp(shape, dt)]))
        cases.append(Case(f"{op}.special", op, [inp((N, 11), "f32", choice(SPECIAL_FLOATS))]))
    for op in ("add", "sub", "mul", "div", "maximum", "minimum"):
        for dt in FLOATS + INTS:
            for shape in (FLOAT_SHAPES[:4] if dt in FLOATS else INT_SHAPES):
                cases.append(Case(_id(op, dt, shape), op, [inp(shape, dt), inp(shape, dt)]))
        cases.append(Case(f"{op}.special", op, [inp((N, 11), "f32", choice(SPECIAL_FLOATS)),
                                                inp((N, 11), "f32", choice(SPECIAL_FLOATS))]))
    # integer division: zero divisors, negative operands, INT_MIN / -1
    for dt, lo in (("i32", -2 ** 31), ("i64", -2 ** 63)):
        cases.append(Case(f"div.{dt}.edges", "div",
                          [inp((N, 9), dt, choice([lo, -7, -1, 0, 1, 7, 100])),
                           inp((N, 9), dt, choice([-3, -1, 0, 1, 2, 5]))]))
        cases.append(Case(f"add.{dt}.wrap", "add", [inp((N, 4), dt, choice([lo, -lo - 1])),
                                                    inp((N, 4), dt, choice([-1, 1]))]))
    for dt in FLOATS:
        for shape in FLOAT_SHAPES[:3]:
            cases.append(Case(_id("pow", dt, shape), "pow",
                              [inp(shape, dt, uniform(0, 4)), inp(shape, dt, normal(2))],
                              tol="ulp"))
    for op in ("less", "less_equal", "greater", "greater_equal", "equal", "not_equal"):
        for dt in FLOATS + INTS:
            gen = choice([-2, -1, 0, 1, 2]) if dt in INTS else choice([-1.5, 0.0, 1.5, np.nan])
            for shape in ((N, 33), (2, N)):
                cases.append(Case(_id(op, dt, shape), op, [inp(shape, dt, gen),
                                                           inp(shape, dt, gen)]))
    for op in ("equal", "not_equal"):
        cases.append(Case(f"{op}.bool", op, [inp((N, 7), "bool"), inp((N, 7), "bool")]))
    for op in ("logical_and", "logical_or"):
        for shape in ((N, 33), (N,), ()):
            cases.append(Case(_id(op, "bool", shape), op, [inp(shape, "bool"),
                                                           inp(shape, "bool")]))
    for shape in ((N, 33), ()):
        cases.append(Case(_id("logical_not", "bool", shape), "logical_not",
                          [inp(shape, "bool")]))
    for dt in ("f32", "f64", "i32", "i64", "bool"):
        for shape in ((N, 19), (N,)):
            cases.append(Case(_id("select", dt, shape), "select",
                              [inp(shape, "bool"), inp(shape, dt), inp(shape, dt)]))
    return cases


def cast_cases() -> list:
    cases = []
    big = [np.nan, np.inf, -np.inf, 3e9, -3e9, 1e19, -1e19, 2.5, -2.5, 0.0, -0.0, 0.7, 127.9]
    gens = {"f32": choice(big), "f64": choice(big),
            "i32": choice([-2 ** 31, -5, -1, 0, 1, 2, 2 ** 31 - 1, 16777217]),
            "i64": choice([-2 ** 63, -2 ** 40 - 3, -1, 0, 1, 2 ** 53 + 1, 2 ** 63 - 1]),
            "bool": bools()}
    for src in gens:
        for dst in gens:
            for shape in ((N, 13), ()):
                cases.append(Case(f"cast.{src}.{dst}.{len(shape)}", "cast",
                                  [inp(shape, src, gens[src])], {"dtype": dst}))
    return cases


def generator_cases() -> list:
    """Ops that make values from attributes: constant, iota, dim_value, random_uniform."""
    cases = []
    rng = np.random.default_rng(7)
    consts = {"scalar": np.float32(2.5), "small": np.arange(6, dtype=np.int32).reshape(2, 3),
              "large": rng.standard_normal((40, 9)).astype(np.float32),
              "bool": np.array([True, False, True]), "f64": np.linspace(-1, 1, 33),
              "i64": np.array([-(2 ** 62), 5], np.int64)}
    for name, value in consts.items():
        cases.append(Case(f"constant.{name}", "constant", [], {"value": value}))
    for shape, axis, dt in (((N, 5), 0, "i64"), ((N, 5), 1, "f32"), ((3, N, 4), 1, "i32"),
                            ((4,), 0, "f64"), ((2, 5), 1, "bool")):
        cases.append(Case(f"iota.{dt}.{axis}.{len(shape)}", "iota", [],
                          {"shape": shape, "axis": axis, "dtype": dt}))
    for dim, dt in ((N, "i64"), ("2*N+1", "f32"), (7, "i32"), ("N*N", "f64")):
        cases.append(Case(f"dim_value.{dim}.{dt}", "dim_value", [], {"dim": dim, "dtype": dt}))
    for shape, seed, dt, counter in (((N, 33), 0, "f32", None), ((5,), 123, "f64", "i64"),
                                     ((N, 3, 7), 2 ** 31 + 5, "f32", "i32"),
                                     ((17,), 9, "f32", "i64")):
        ins = [] if counter is None else [inp((), counter, choice([-1, 0, 3, 2 ** 31 + 7]
                                                                 if counter == "i64"
                                                                 else [-1, 0, 3]))]
        cases.append(Case(f"random.{dt}.{seed}.{counter}", "random_uniform", ins,
                          {"shape": shape, "seed": seed, "dtype": dt}))
    return cases


def movement_cases() -> list:
    cases = []
    bc = [((N,), (N, 5), (0,)), ((5,), (N, 5), (1,)), ((1, 5), (N, 5), (0, 1)),
          ((), (N, 3), ()), ((N, 1), (N, 7), (0, 1)), ((3, 1, 5), (3, N, 5), (0, 1, 2)),
          ((N, 4), (2, N, 3, 4), (1, 3)), ((1,), (33,), (0,))]
    for k, (src, shape, dims) in enumerate(bc):
        for dt in ("f32", "i64", "bool"):
            cases.append(Case(f"broadcast.{k}.{dt}", "broadcast", [inp(src, dt)],
                              {"shape": shape, "dims": dims}))
    for k, (src, shape) in enumerate([((N, 6), ("6*N",)), ((N, 2, 3), (N, 6)),
                                      ((4, 6), (2, 12)), ((N, 6), (N, 3, 2)), ((), (1, 1))]):
        for dt in ("f32", "i32"):
            cases.append(Case(f"reshape.{k}.{dt}", "reshape", [inp(src, dt)], {"shape": shape}))
    for k, (src, perm) in enumerate([((N, 5), (1, 0)), ((N, 3, 4), (2, 0, 1)),
                                     ((2, N, 3, 5), (3, 1, 0, 2)), ((N, 1, 7), (0, 2, 1)),
                                     ((33, N), (1, 0))]):
        for dt in ("f32", "i64"):
            cases.append(Case(f"transpose.{k}.{dt}", "transpose", [inp(src, dt)], {"perm": perm}))
    sl = [((N, 10), (0, 2), (N, 9), (1, 3)), ((N, 7), (0, 0), (N, 7), (1, 2)),
          ((N, 8, 9), (0, 1, 0), (N, 7, 9), (1, 2, 4)), ((N, 5), (1, 0), (N, 5), (1, 1)),
          ((N, 5), (0, 1), ("N-1", 4), (1, 1)), ((12,), (3,), (12,), (4,)),
          ((N, 6), (0, 6), (N, 6), (1, 1))]
    for k, (src, starts, stops, steps) in enumerate(sl):
        cases.append(Case(f"slice.{k}", "slice", [inp(src)],
                          {"starts": starts, "stops": stops, "steps": steps}))
    for k, (src, low, high, value, dt) in enumerate([
            ((N, 5), (0, 2), (1, 0), 0.0, "f32"), ((N, 3, 4), (1, 0, 2), (0, 3, 1), -1.5, "f32"),
            ((N, 4), (2, 2), (2, 2), 7.0, "i32"), ((3,), (0,), (0,), 0.0, "f64"),
            ((N, 2), (0, 1), (0, 1), 1.0, "bool")]):
        cases.append(Case(f"pad.{k}.{dt}", "pad", [inp(src, dt)],
                          {"low": low, "high": high, "value": value}))
    for k, (shapes, axis) in enumerate([([(N, 3)], 1), ([(N, 3), (N, 5)], 1),
                                        ([(N, 2), (4, 2), (N, 2)], 0),
                                        ([(2, N, 1), (2, N, 3), (2, N, 2), (2, N, 1)], -1),
                                        ([(N,), (7,)], 0)]):
        for dt in ("f32", "i64"):
            cases.append(Case(f"concat.{k}.{dt}", "concat", [inp(s, dt) for s in shapes],
                              {"axis": axis}))
    for k, (data, idx, axis, bound) in enumerate([((10, 4), (N,), 0, 10), ((N, 6), (3,), 1, 6),
                                                  ((N, 5, 7), (2, N), -1, 7),
                                                  ((9,), (N, 3), 0, 9), ((N, 4, 3), (), 1, 4)]):
        for idt in ("i32", "i64"):
            cases.append(Case(f"gather.{k}.{idt}", "gather",
                              [inp(data), inp(idx, idt, ints(0, bound))], {"axis": axis}))
    return cases


def reduction_cases() -> list:
    cases = []
    axes_sets = [(0,), (1,), (2,), (0, 1), (1, 2), (0, 2), (0, 1, 2), (-1,)]
    for op in ("reduce_sum", "reduce_max", "reduce_min"):
        for axes in axes_sets:
            for keep in (False, True):
                for dt in ("f32", "i32"):
                    tol = "accum" if op == "reduce_sum" and dt == "f32" else "exact"
                    cases.append(Case(f"{op}.{dt}.{axes}.{keep}", op, [inp((N, 5, 19), dt)],
                                      {"axes": axes, "keepdims": keep}, tol=tol))
        cases.append(Case(f"{op}.f64.rank1", op, [inp((N,), "f64")], {"axes": (0,)},
                          tol="accum" if op == "reduce_sum" else "exact"))
        cases.append(Case(f"{op}.empty", op, [inp((N, 0, 3), "f32")], {"axes": (1,)},
                          tol="accum" if op == "reduce_sum" else "exact"))
        cases.append(Case(f"{op}.nan", op, [inp((N, 9), "f32", choice([1.0, -2.0, np.nan]))],
                          {"axes": (1,)}, tol="accum" if op == "reduce_sum" else "exact"))
        cases.append(Case(f"{op}.i64.none", op, [inp((N, 3), "i64")], {"axes": ()}))
        cases.append(Case(f"{op}.nan.long", op,
                          [inp((N, 100), "f32", choice([1.0, -2.0, np.inf, np.nan]))],
                          {"axes": (1,)}, tol="accum" if op == "reduce_sum" else "exact"))
        # rows and columns long enough for the unrolled vector loops (W = 8 or 16 lanes)
        for dt in ("f32", "f64", "i32"):
            for shape, axes in (((N, 3, 150), (2,)), ((N, 2, 133), (0, 2)), ((N, 70), (0,)),
                                ((3, N, 37), (0, 1)), ((N, 150), (0, 1))):
                tol = "accum" if op == "reduce_sum" and dt != "i32" else "exact"
                cases.append(Case(f"{op}.{dt}.long.{shape}.{axes}", op, [inp(shape, dt)],
                                  {"axes": axes, "keepdims": False}, tol=tol))
    for axis in (0, 1, 2, -1):
        for keep in (False, True):
            cases.append(Case(f"argmax.{axis}.{keep}", "argmax", [inp((N, 6, 19))],
                              {"axis": axis, "keepdims": keep}))
    cases.append(Case("argmax.ties", "argmax", [inp((N, 8), "i32", choice([0, 1, 2]))],
                      {"axis": 1}))
    cases.append(Case("argmax.nan", "argmax", [inp((N, 8), "f32",
                                                   choice([1.0, np.nan, -np.inf, 5.0]))],
                      {"axis": 1}))
    cases.append(Case("argmax.f64", "argmax", [inp((5, N), "f64")], {"axis": 0}))
    return cases


def matmul_cases() -> list:
    cases = []
    for ta in (False, True):
        for tb in (False, True):
            for k, (m, kk, n) in enumerate([(N, 7, 19), (5, N, 33), (1, 1, 1), (N, 16, 3)]):
                a = (kk, m) if ta else (m, kk)
                b = (n, kk) if tb else (kk, n)
                for dt in ("f32", "i32"):
                    tol = "accum" if dt == "f32" else "exact"
                    cases.append(Case(f"matmul.{ta:d}{tb:d}.{k}.{dt}", "matmul",
                                      [inp(a, dt, ints(-9, 9) if dt == "i32" else None),
                                       inp(b, dt, ints(-9, 9) if dt == "i32" else None)],
                                      {"transpose_a": ta, "transpose_b": tb}, tol=tol))
            a = (2, N, 5, 3) if ta else (2, N, 3, 5)
            b = (2, N, 4, 5) if tb else (2, N, 5, 4)
            cases.append(Case(f"matmul.{ta:d}{tb:d}.batched", "matmul", [inp(a), inp(b)],
                              {"transpose_a": ta, "transpose_b": tb}, tol="accum"))
    cases.append(Case("matmul.f64", "matmul", [inp((N, 9), "f64"), inp((9, 5), "f64")],
                      tol="accum"))
    cases.append(Case("matmul.i64", "matmul", [inp((N, 4), "i64"), inp((4, 6), "i64")]))
    return cases


CONV_CONFIGS = [
    # (C, H, W, O, KH, KW, stride, padding, dilation, groups)
    (3, 8, 8, 4, 3, 3, (1, 1), (0, 0, 0, 0), (1, 1), 1),
    (3, 9, 7, 5, 3, 2, (2, 1), (1, 0, 2, 1), (1, 1), 1),
    (4, 10, 9, 6, 3, 3, (1, 2), (2, 2, 2, 2), (2, 1), 2),
    (4, 6, 6, 4, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 4),       # depthwise
    (2, 5, 5, 3, 1, 1, (2, 2), (0, 0, 0, 0), (1, 1), 1),       # 1x1, strided
    (6, 7, 8, 4, 2, 3, (3, 2), (0, 1, 1, 0), (2, 2), 2),
]


def _conv_out(size, k, s, lo, hi, d):
    return (size + lo + hi - d * (k - 1) - 1) // s + 1


def conv_cases() -> list:
    cases = []
    for k, (c, hh, ww, o, kh, kw, st, pad, dil, g) in enumerate(CONV_CONFIGS):
        attrs = {"stride": st, "padding": pad, "dilation": dil, "groups": g}
        oh = _conv_out(hh, kh, st[0], pad[0], pad[2], dil[0])
        ow = _conv_out(ww, kw, st[1], pad[1], pad[3], dil[1])
        for dt in ("f32", "f64"):
            cases.append(Case(f"conv2d.{k}.{dt}", "conv2d",
                              [inp((N, c, hh, ww), dt), inp((o, c // g, kh, kw), dt)], attrs,
                              tol="accum"))
        cases.append(Case(f"conv2d_grad_input.{k}", "conv2d_grad_input",
                          [inp((N, o, oh, ow)), inp((o, c // g, kh, kw))],
                          dict(attrs, input_hw=(hh, ww)), tol="accum"))
        cases.append(Case(f"conv2d_grad_filter.{k}", "conv2d_grad_filter",
                          [inp((N, c, hh, ww)), inp((N, o, oh, ow))],
                          dict(attrs, kernel_hw=(kh, kw)), tol="accum"))
    return cases


POOL_CONFIGS = [
    # (H, W, kernel, stride, padding, ceil_mode, count_include_pad)
    (8, 8, (2, 2), (2, 2), (0, 0, 0, 0), False, True),
    (7, 9, (3, 3), (2, 2), (1, 1, 1, 1), False, True),
    (7, 9, (3, 3), (2, 2), (1, 1, 1, 1), False, False),
    (7, 6, (3, 2), (2, 3), (1, 0, 0, 1), True, True),
    (7, 6, (3, 2), (2, 3), (1, 0, 0, 1), True, False),
    (5, 5, (5, 5), (1, 1), (2, 2, 2, 2), False, False),
    (6, 5, (2, 3), (1, 1), (0, 0, 0, 0), False, True),
    # non-overlapping windows (the span-store gradients), padding, ceil mode, wide rows
    (9, 11, (2, 2), (2, 2), (1, 0, 0, 1), True, True),
    (7, 20, (2, 3), (3, 3), (0, 1, 1, 0), False, False),
    (5, 40, (2, 2), (2, 2), (0, 0, 0, 0), False, True),
    (4, 37, (1, 3), (1, 3), (0, 2, 0, 2), True, False),
]


def _pool_out(size, k, s, lo, hi, ceil):
    span = size + lo + hi - k
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + lo:
        out -= 1
    return out


def pool_cases() -> list:
    cases = []
    for k, (hh, ww, ker, st, pad, ceil, incl) in enumerate(POOL_CONFIGS):
        base = {"kernel": ker, "stride": st, "padding": pad, "ceil_mode": ceil}
        oh = _pool_out(hh, ker[0], st[0], pad[0], pad[2], ceil)
        ow = _pool_out(ww, ker[1], st[1], pad[1], pad[3], ceil)
        x = (N, 3, hh, ww)
        cases.append(Case(f"max_pool2d.{k}", "max_pool2d", [inp(x)], base))
        cases.append(Case(f"max_pool2d.{k}.ties", "max_pool2d",
                          [inp(x, "f64", choice([0.0, 1.0, np.nan, -np.inf]))], base))
        cases.append(Case(f"avg_pool2d.{k}", "avg_pool2d", [inp(x)],
                          dict(base, count_include_pad=incl), tol="accum"))
        cases.append(Case(f"max_pool2d_grad.{k}", "max_pool2d_grad",
                          [inp(x, "f32", choice([0.0, 1.0, 2.0, -np.inf])), inp((N, 3, oh, ow))],
                          base, tol="accum", abs_inputs=(1,)))
        cases.append(Case(f"avg_pool2d_grad.{k}", "avg_pool2d_grad", [inp((N, 3, oh, ow))],
                          dict(base, count_include_pad=incl, input_hw=(hh, ww)), tol="accum"))
    return cases


def _body(name, types, build):
    """A fused body graph: inputs of `types`, one result `build(body, *inputs)`."""
    body = ir.Graph(name)
    ins = [body.add_input(f"a{k}", TensorType(shape, dt)) for k, (shape, dt) in
           enumerate(types)]
    body.add_output(build(body, *ins), "r0")
    return body


def fused_cases() -> list:
    """One case per kernel family of `fused` (runtime/codegen/fused.py); deeper tests are in
    test_fused_codegen.py."""
    ew = _body("ew", [((N, 33), "f32"), ((N, 33), "f32"), ((), "f32")],
               lambda g, a, b, s: emit(g, "relu", [emit(g, "sub", [emit(g, "mul", [a, b]), emit(
                   g, "broadcast", [s], {"shape": (N, 33), "dims": ()})])]))
    mm = _body("mm", [((N, 7), "f32"), ((7, 19), "f32"), ((19,), "f32")],
               lambda g, a, w, bias: emit(g, "relu", [emit(g, "add", [
                   emit(g, "matmul", [a, w]),
                   emit(g, "broadcast", [bias], {"shape": (N, 19), "dims": (1,)})])]))
    rows = _body("rows", [((N, 19), "f32")],
                 lambda g, x: emit(g, "sub", [x, emit(g, "broadcast", [
                     emit(g, "reduce_max", [x], {"axes": (1,), "keepdims": True})],
                     {"shape": (N, 19), "dims": (0, 1)})]))
    return [
        Case("fused.elementwise", "fused", [inp((N, 33)), inp((N, 33)), inp(())],
             {"kind": "elementwise", "body": ew}),
        Case("fused.contraction", "fused", [inp((N, 7)), inp((7, 19)), inp((19,))],
             {"kind": "contraction", "body": mm}, tol="accum"),
        Case("fused.reduction", "fused", [inp((N, 19))], {"kind": "reduction", "body": rows}),
    ]


FAMILIES = {
    "fused": fused_cases,
    "elementwise": elementwise_cases,
    "cast": cast_cases,
    "generators": generator_cases,
    "movement": movement_cases,
    "reductions": reduction_cases,
    "matmul": matmul_cases,
    "conv": conv_cases,
    "pool": pool_cases,
}

__all__ = ["FAMILIES", "default_gen"]
