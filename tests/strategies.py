"""Hypothesis strategies for random valid graphs over every registered op.

    from strategies import graphs, graph_and_inputs

    @given(graphs(max_nodes=6))                      # any op
    @given(graphs(ops=["matmul", "relu"]))            # only these ops (plus helper leaves)
    @given(graph_and_inputs(special_values=True))    # (graph, {input name: array})

Graphs are built through ir.builder, so they are always well-typed. They use symbolic dims
(batch `N` and sometimes `M`, which are bound by data inputs; compound dims such as `3*N`,
`N+2` or `N-1` arise from reshape, concat and slice), random attributes within valid ranges,
random locations (plain, path-only, fused, unknown), small inline constants and large ones
that print into the sidecar weights table, param/state inputs with initializers, outputs that
update params in place (aliases), and occasionally value names that need quoting.

Every op generator can make its own operands when the pool of existing values has none that
fit (a new input, a constant, or a broadcast of a constant to a symbolic shape), so every op
is always reachable. Runtime symbol values are at least 2 (`SYMBOL_RANGES`), which keeps every
dim, e.g. `N-1`, positive.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from ir import Graph, Loc, TensorType, all_ops, dtypes as dt, emit, make_node, sym
from ir.location import UNKNOWN, FusedLoc
from ir.ops.conv import conv_output_hw
from ir.ops.elementwise import BINARY, COMPARE, UNARY
from ir.ops.pooling import pool_output_hw
from ir.symbolic import SymDim, evaluate

SYMBOL_RANGES = {"N": (2, 4), "M": (2, 3)}
FLOATS = (dt.f32, dt.f64)
INTS = (dt.i32, dt.i64)
NUMERIC = FLOATS + INTS
MAX_INPUTS = 7
_NAMES = ["x", "y", "w", "w1", "b", "gamma", "h", "state_0", "q.k"]
_ODD_NAMES = ["x y", "ü", 'q"t', "a-b"]          # need quoting in the text format
_FILES = ["model.py", "net.py", "dir/layers.py", "odd name.py"]
_PATHS = ["net/dense1/matmul", "net/act", "enc/conv0", "loss", 'odd "path"']


def _is_bare_symbol(d) -> bool:
    return isinstance(d, SymDim) and len(d.terms) == 1 and d.terms[0][1] == 1 \
        and len(d.terms[0][0]) == 1


def min_value(d) -> int:
    """The smallest runtime value of a dim (symbols take their smallest value)."""
    return evaluate(d, {s: lo for s, (lo, _) in SYMBOL_RANGES.items()})


class _GraphGen:
    def __init__(self, draw, ops, max_nodes, symbolic, large_constants, special_values,
                 odd_names):
        self.draw = draw
        self.ops = ops
        self.max_nodes = max_nodes
        self.symbolic = symbolic
        self.large_constants = large_constants
        self.special_values = special_values
        self.odd_names = odd_names
        self.g = Graph(self.choice(["main", "g", "mlp", "fused_0"]))
        self.pool: list = []          # values available as operands
        self.bound: list = []         # symbols that appear bare in some data input

    # -- primitive draws ----------------------------------------------------------------------
    def int(self, lo, hi):
        return self.draw(st.integers(lo, hi))

    def choice(self, seq):
        return self.draw(st.sampled_from(list(seq)))

    def coin(self, percent: int) -> bool:
        return self.int(0, 99) < percent

    def loc(self):
        kind = self.int(0, 9)
        file, line, path = self.choice(_FILES), self.int(1, 400), self.choice(_PATHS)
        if kind <= 2:
            return UNKNOWN
        if kind <= 5:
            return Loc(file, line, path)
        if kind == 6:
            return Loc(None, None, path)
        if kind == 7:
            return Loc(file, line) if self.coin(70) else Loc(file, None, path)
        parts = [Loc(self.choice(_FILES), self.int(1, 400), self.choice(_PATHS))
                 for _ in range(self.int(2, 3))]
        return FusedLoc(tuple(parts))

    def array(self, dtype, shape) -> np.ndarray:
        rng = np.random.default_rng(self.int(0, 2**32 - 1))
        shape = tuple(shape)
        if dtype is dt.bool_:
            arr = rng.random(shape) < 0.5
        elif dtype.is_int:
            arr = rng.integers(-5, 6, shape).astype(dtype.np_dtype)
        else:
            arr = (rng.standard_normal(shape) * 2).astype(dtype.np_dtype)
            if self.special_values and arr.size and self.coin(25):
                flat = arr.reshape(-1)
                for _ in range(self.int(1, 3)):
                    flat[self.int(0, flat.size - 1)] = self.choice(
                        [np.nan, -np.nan, np.inf, -np.inf, -0.0])
        return np.asarray(arr, dtype.np_dtype)

    # -- dims, shapes and types ---------------------------------------------------------------
    def static_dim(self, lo=1, hi=4) -> int:
        return self.int(lo, hi)

    def any_dim(self):
        """A static dim or a symbol that is (or becomes) bound by a data input."""
        if self.symbolic and self.bound and self.coin(30):
            return sym(self.choice(self.bound))
        return self.static_dim()

    def shape(self, rank: int, batch: bool = True) -> tuple:
        """Static dims, often with a bound symbol (usually N) as the batch dim."""
        dims = [self.static_dim() for _ in range(rank)]
        if self.symbolic and batch and rank and self.bound and self.coin(60):
            dims[0] = sym("N" if "N" in self.bound and self.coin(75) else self.choice(self.bound))
        return tuple(dims)

    def random_type(self, dtypes=dt.ALL_DTYPES, min_rank=0, max_rank=3) -> TensorType:
        d = dt.f32 if dt.f32 in dtypes and self.coin(50) else self.choice(dtypes)
        return TensorType(self.shape(self.int(min_rank, max_rank)), d)

    # -- making values ------------------------------------------------------------------------
    def emit(self, op, inputs, attrs=None) -> "Value":
        v = emit(self.g, op, inputs, attrs, self.loc())
        if self.odd_names and self.coin(10):
            v.name = self.g.fresh_name(self.choice(_NAMES + _ODD_NAMES))
        self.pool.append(v)
        return v

    def new_input(self, t: TensorType, role: str = "input"):
        names = _NAMES + (_ODD_NAMES if self.odd_names else [])
        name = self.g.fresh_name(self.choice(names))
        init = None
        if role != "input" and t.is_static and self.coin(85):   # some params come uninitialised
            init = self.array(t.dtype, t.shape)
        v = self.g.add_input(name, t, role, init)
        for d in t.shape:
            if _is_bare_symbol(d) and d.terms[0][0][0] not in self.bound:
                self.bound.append(d.terms[0][0][0])
        self.pool.append(v)
        return v

    def constant(self, t: TensorType):
        return self.emit("constant", [], {"value": self.array(t.dtype, t.shape)})

    def leaf(self, t: TensorType):
        """A new value of exactly type `t`: an input, a constant, or a broadcast constant."""
        room = len(self.g.inputs) < MAX_INPUTS
        bindable = all(isinstance(d, int) or _is_bare_symbol(d) for d in t.shape)
        if t.is_static:
            kind = self.int(0, 9)
            if room and kind <= 2:
                return self.new_input(t, self.choice(["param", "param", "state"]))
            if room and kind <= 4:
                return self.new_input(t)
            return self.constant(t)
        if room and bindable and self.coin(60):
            return self.new_input(t)
        # a symbolic shape from a small constant: a scalar, or a vector along a static axis
        static_axes = [i for i, d in enumerate(t.shape) if isinstance(d, int)]
        if static_axes and self.coin(50):
            axis = self.choice(static_axes)
            c = self.constant(TensorType((t.shape[axis],), t.dtype))
            return self.emit("broadcast", [c], {"shape": t.shape, "dims": (axis,)})
        c = self.constant(TensorType((), t.dtype))
        return self.emit("broadcast", [c], {"shape": t.shape, "dims": ()})

    def operand(self, pred, make_type):
        """An existing value satisfying `pred` (usually), else a new leaf of make_type()."""
        fits = [v for v in self.pool if pred(v.type)]
        if fits and self.coin(80):
            return self.choice(fits)
        return self.leaf(make_type())

    def of_type(self, t: TensorType):
        return self.operand(lambda u: u == t, lambda: t)

    # -- graph --------------------------------------------------------------------------------
    def build(self) -> Graph:
        if self.symbolic and self.coin(80):      # symbols come only from data inputs
            self.new_input(TensorType((sym("N"),) + self.shape(self.int(0, 2), False),
                                      self.choice([dt.f32, dt.f32, dt.f64, dt.i32])))
            if self.coin(25):
                self.new_input(TensorType(self.shape(self.int(0, 1), False) + (sym("M"),),
                                          self.choice([dt.f32, dt.i64])))
        for _ in range(self.int(0, 2)):
            role = self.choice(["input", "param", "state"])
            t = self.random_type(max_rank=2, dtypes=(dt.f32, dt.i64, dt.bool_))
            if role != "input":           # params and state are static, like real weights
                t = TensorType(self.shape(t.rank, batch=False), t.dtype)
            self.new_input(t, role)
        for _ in range(self.int(1, self.max_nodes)):
            op = self.choice(self.ops)
            gen = getattr(self, "gen_" + op, None)
            gen(op) if gen else self.gen_by_tag(op)
        self.add_aliases()
        self.add_outputs()
        self.g.reserve_names()
        return self.g

    def add_aliases(self):
        for p in [v for v in self.g.inputs if v.role in ("param", "state")]:
            if not self.coin(50):
                continue
            candidates = [v for v in self.pool if not v.is_graph_input and v.type == p.type
                          and v not in self.g.outputs]
            if candidates and self.coin(70):
                new = self.choice(candidates)
            else:
                new = self.emit("logical_not" if p.type.dtype is dt.bool_ else "neg", [p])
            self.g.add_output(new, self.g.fresh_name("new_" + p.name), updates=p.name)

    def add_outputs(self):
        used = {id(v) for n in self.g.nodes for v in n.inputs}
        sinks = [v for v in self.pool if not v.is_graph_input and id(v) not in used
                 and v not in self.g.outputs]
        extra = [v for v in self.pool if v not in sinks and self.coin(15)]
        chosen = sinks + extra
        if not chosen and not self.g.outputs:
            chosen = [self.pool[-1]]
        for v in chosen:
            name = f"out{len(self.g.outputs)}"
            if self.odd_names and self.coin(10):
                name = self.choice(_ODD_NAMES) + name
            self.g.add_output(v, name)

    # -- elementwise --------------------------------------------------------------------------
    def gen_by_tag(self, op):
        if op in UNARY:
            allowed = UNARY[op][1]
            x = self.operand(lambda t: t.dtype in allowed, lambda: self.random_type(allowed))
            return self.emit(op, [x])
        if op in BINARY or op in COMPARE or op in ("logical_and", "logical_or"):
            allowed = BINARY[op][1] if op in BINARY else COMPARE[op][1] if op in COMPARE \
                else (dt.bool_,)
            a = self.operand(lambda t: t.dtype in allowed, lambda: self.random_type(allowed))
            return self.emit(op, [a, self.of_type(a.type)])
        raise AssertionError(f"strategies.py has no generator for op {op!r}: add one")

    def gen_logical_not(self, op):
        x = self.operand(lambda t: t.dtype is dt.bool_, lambda: self.random_type((dt.bool_,)))
        return self.emit(op, [x])

    def gen_select(self, op):
        a = self.operand(lambda t: True, self.random_type)
        cond = self.of_type(TensorType(a.type.shape, dt.bool_))
        return self.emit(op, [cond, a, self.of_type(a.type)])

    def gen_cast(self, op):
        x = self.operand(lambda t: True, self.random_type)
        return self.emit(op, [x], {"dtype": self.choice(dt.ALL_DTYPES)})

    def gen_fused(self, op):
        """A small elementwise group as the fusion pass makes them (1 or 2 operands/results)."""
        x = self.operand(lambda t: t.dtype in FLOATS, lambda: self.random_type(FLOATS))
        operands = [x] + ([self.of_type(x.type)] if self.coin(50) else [])
        body = Graph(self.g.fresh_name("fused"))
        ins = [body.add_input(f"a{k}", v.type) for k, v in enumerate(operands)]
        y = emit(body, self.choice(["neg", "abs", "exp", "tanh"]), [ins[0]])
        if len(ins) > 1:
            y = emit(body, self.choice(["add", "mul", "maximum"]), [y, ins[1]])
        body.add_output(y, "r0")
        if self.coin(40):
            body.add_output(emit(body, "sqrt", [y]), "r1")
        node = make_node(self.g, op, operands, {"kind": "elementwise", "body": body},
                         self.loc())
        self.pool.extend(node.outputs)
        return node.outputs[0]

    # -- leaves -------------------------------------------------------------------------------
    def gen_constant(self, op):
        rank = self.int(0, 3)
        big = self.large_constants and self.coin(30)
        shape = tuple(self.int(3, 6) if big else self.int(1, 3) for _ in range(max(rank, big)))
        return self.constant(TensorType(shape, self.choice(dt.ALL_DTYPES)))

    def gen_iota(self, op):
        shape = tuple(self.any_dim() for _ in range(self.int(1, 3)))
        return self.emit(op, [], {"shape": shape, "axis": self.int(0, len(shape) - 1),
                                  "dtype": self.choice(NUMERIC)})

    def gen_dim_value(self, op):
        d = self.any_dim()
        if isinstance(d, SymDim) and self.coin(40):
            d = d * self.int(2, 4) + self.int(-1, 3)
        return self.emit(op, [], {"dim": d, "dtype": self.choice(NUMERIC)})

    def gen_random_uniform(self, op):
        shape = tuple(self.any_dim() for _ in range(self.int(0, 3)))
        counter = []
        if self.coin(50):
            counter = [self.operand(lambda t: t.rank == 0 and t.dtype in INTS,
                                    lambda: TensorType((), self.choice(INTS)))]
        return self.emit(op, counter, {"shape": shape, "seed": self.int(0, 2**31 - 1),
                                       "dtype": self.choice(FLOATS)})

    # -- movement -----------------------------------------------------------------------------
    def gen_broadcast(self, op):
        x = self.operand(lambda t: t.rank <= 3, lambda: self.random_type(max_rank=2))
        out_rank = x.type.rank + self.int(0, 2)
        dims = sorted(self.draw(st.permutations(range(out_rank)))[:x.type.rank])
        shape = [self.any_dim() for _ in range(out_rank)]
        for i, d in enumerate(dims):
            if x.type.shape[i] != 1 or self.coin(30):
                shape[d] = x.type.shape[i]
        return self.emit(op, [x], {"shape": tuple(shape), "dims": tuple(dims)})

    def gen_reshape(self, op):
        # prefer symbolic operands: merging a symbolic dim makes compound dims like 3*N
        symbolic = self.coin(70)
        x = self.operand(lambda t: bool(t.symbols()) or not symbolic, self.random_type)
        shape = list(x.type.shape)
        how = self.int(0, 3)
        sym_axes = [i for i, d in enumerate(shape) if isinstance(d, SymDim)]
        if how == 1 and sym_axes and len(shape) >= 2:       # merge a symbolic axis
            i = min(sym_axes[0], len(shape) - 2)
            shape[i:i + 2] = [shape[i] * shape[i + 1]]
        elif how == 0 or len(shape) == 0:
            shape = [self.product(shape)] if shape or self.coin(50) else [1]
        elif how == 1 and len(shape) >= 2:
            i = self.int(0, len(shape) - 2)
            shape[i:i + 2] = [shape[i] * shape[i + 1]]
        else:
            i = self.int(0, len(shape) - 1)
            d = shape[i]
            if isinstance(d, int):
                f = self.choice([k for k in range(1, d + 1) if d % k == 0])
                shape[i:i + 1] = [f, d // f]
            elif len(d.terms) == 1 and d.terms[0][1] > 1:      # 3*N -> 3, N
                (mono, coef), = d.terms
                shape[i:i + 1] = [coef, SymDim({mono: 1})]
            else:
                shape.insert(i, 1)
        return self.emit(op, [x], {"shape": tuple(shape)})

    @staticmethod
    def product(dims):
        out = 1
        for d in dims:
            out = out * d
        return out

    def gen_transpose(self, op):
        x = self.operand(lambda t: True, self.random_type)
        perm = tuple(self.draw(st.permutations(range(x.type.rank))))
        return self.emit(op, [x], {"perm": perm})

    def gen_slice(self, op):
        x = self.operand(lambda t: t.rank >= 1, lambda: self.random_type(min_rank=1))
        starts, stops, steps = [], [], []
        for d in x.type.shape:
            if isinstance(d, int):
                lo = self.int(0, d - 1)
                hi, step = self.int(lo + 1, d), self.int(1, 3)
            elif _is_bare_symbol(d):      # runtime value >= 2: drop at most one element
                lo, hi, step = self.choice([(0, d, 1), (1, d, 1), (0, d - 1, 1)])
            else:
                lo, hi, step = 0, d, 1
            starts.append(lo)
            stops.append(hi)
            steps.append(step)
        return self.emit(op, [x], {"starts": tuple(starts), "stops": tuple(stops),
                                   "steps": tuple(steps)})

    def gen_pad(self, op):
        x = self.operand(lambda t: True, self.random_type)
        low = tuple(self.int(0, 2) for _ in x.type.shape)
        high = tuple(self.int(0, 2) for _ in x.type.shape)
        value = self.choice([0.0, 1.5, -2.0, float("nan"), float("-inf"), -0.0])
        return self.emit(op, [x], {"low": low, "high": high, "value": value})

    def gen_concat(self, op):
        x = self.operand(lambda t: t.rank >= 1, lambda: self.random_type(min_rank=1))
        rank = x.type.rank
        axis = self.int(-rank, rank - 1)
        a = axis % rank

        def fits(t):
            return t.dtype == x.type.dtype and t.rank == rank and all(
                d == e for i, (d, e) in enumerate(zip(t.shape, x.type.shape)) if i != a)

        def make():
            shape = list(x.type.shape)
            shape[a] = self.any_dim()
            return TensorType(tuple(shape), x.type.dtype)
        parts = [x] + [self.operand(fits, make) for _ in range(self.int(0, 2))]
        return self.emit(op, parts, {"axis": axis})

    def gen_gather(self, op):
        data = self.operand(lambda t: t.rank >= 1, lambda: self.random_type(min_rank=1))
        axis = self.int(-data.type.rank, data.type.rank - 1)
        size = min_value(data.type.shape[axis])
        shape = tuple(self.int(1, 5 if self.large_constants and self.coin(20) else 3)
                      for _ in range(self.int(0, 2)))
        rng = np.random.default_rng(self.int(0, 2**32 - 1))
        idx = rng.integers(0, size, shape).astype(self.choice(INTS).np_dtype)
        indices = self.emit("constant", [], {"value": idx})
        return self.emit(op, [data, indices], {"axis": axis})

    # -- reductions and contractions ----------------------------------------------------------
    def reduce_input(self, min_rank=0):
        return self.operand(lambda t: t.dtype in NUMERIC and t.rank >= min_rank,
                            lambda: self.random_type(NUMERIC, min_rank=min_rank))

    def gen_reduce(self, op):
        x = self.reduce_input()
        axes = [i for i in range(x.type.rank) if self.coin(50)]
        axes = tuple(i - x.type.rank if self.coin(30) else i for i in axes)
        return self.emit(op, [x], {"axes": axes, "keepdims": self.coin(40)})

    gen_reduce_sum = gen_reduce_max = gen_reduce_min = gen_reduce

    def gen_argmax(self, op):
        x = self.reduce_input(min_rank=1)
        return self.emit(op, [x], {"axis": self.int(-x.type.rank, x.type.rank - 1),
                                   "keepdims": self.coin(40)})

    def gen_matmul(self, op):
        a = self.operand(lambda t: t.dtype in NUMERIC and 2 <= t.rank <= 3,
                         lambda: self.random_type(NUMERIC, 2, 3))
        ta, tb = self.coin(30), self.coin(30)
        k = a.type.shape[-2] if ta else a.type.shape[-1]
        n = self.any_dim()
        b_shape = a.type.shape[:-2] + ((n, k) if tb else (k, n))
        b = self.of_type(TensorType(b_shape, a.type.dtype))
        return self.emit(op, [a, b], {"transpose_a": ta, "transpose_b": tb})

    # -- convolution and pooling --------------------------------------------------------------
    def image(self, pred=lambda t: True, channels=None):
        """A rank-4 float value with static C, H, W (a new one if none fits)."""
        def fits(t):
            return t.rank == 4 and t.dtype in FLOATS and all(
                isinstance(d, int) for d in t.shape[1:]) and t.shape[2] >= 2 \
                and t.shape[3] >= 2 and pred(t)

        def make():
            c = channels or self.int(1, 4)
            batch = sym("N") if self.symbolic and "N" in self.bound and self.coin(60) \
                else self.int(1, 2)
            return TensorType((batch, c, self.int(3, 6), self.int(3, 6)),
                              dt.f32 if self.coin(75) else dt.f64)
        return self.operand(fits, make)

    def conv_config(self, hw):
        """Random stride/padding/dilation/kernel that give an output of at least 1x1."""
        while True:
            attrs = {"stride": (self.int(1, 2), self.int(1, 2)),
                     "padding": tuple(self.int(0, 1) for _ in range(4)),
                     "dilation": (self.int(1, 2), self.int(1, 2))}
            khw = (self.int(1, 3), self.int(1, 3))
            eff = [attrs["dilation"][i] * (khw[i] - 1) + 1 for i in range(2)]
            if all(eff[i] <= hw[i] + attrs["padding"][i] + attrs["padding"][i + 2]
                   for i in range(2)):
                return attrs, khw, conv_output_hw("conv", hw, khw, attrs)

    def groups_for(self, c):
        return self.choice([g for g in range(1, c + 1) if c % g == 0])

    def gen_conv2d(self, op):
        x = self.image()
        _, c, h, w = x.type.shape
        g = self.groups_for(c)
        o = g * self.int(1, 2)
        attrs, khw, _ = self.conv_config((h, w))
        wt = self.of_type(TensorType((o, c // g) + khw, x.type.dtype))
        return self.emit(op, [x, wt], dict(attrs, groups=g))

    def gen_conv2d_grad_input(self, op):
        x_type = self.image().type     # the forward input (only its type is needed)
        _, c, h, w = x_type.shape
        g = self.groups_for(c)
        o = g * self.int(1, 2)
        attrs, khw, (oh, ow) = self.conv_config((h, w))
        dy = self.of_type(TensorType((x_type.shape[0], o, oh, ow), x_type.dtype))
        wt = self.of_type(TensorType((o, c // g) + khw, x_type.dtype))
        return self.emit(op, [dy, wt], dict(attrs, groups=g, input_hw=(h, w)))

    def gen_conv2d_grad_filter(self, op):
        x = self.image()
        _, c, h, w = x.type.shape
        g = self.groups_for(c)
        o = g * self.int(1, 2)
        attrs, khw, (oh, ow) = self.conv_config((h, w))
        dy = self.of_type(TensorType((x.type.shape[0], o, oh, ow), x.type.dtype))
        return self.emit(op, [x, dy], dict(attrs, groups=g, kernel_hw=khw))

    def pool_config(self, hw, avg):
        k = (self.int(1, min(3, hw[0])), self.int(1, min(3, hw[1])))
        attrs = {"kernel": k, "stride": (self.int(1, 3), self.int(1, 3)),
                 "padding": (self.int(0, k[0] // 2), self.int(0, k[1] // 2),
                             self.int(0, k[0] // 2), self.int(0, k[1] // 2)),
                 "ceil_mode": self.coin(30)}
        if avg:
            attrs["count_include_pad"] = self.coin(50)
        return attrs, pool_output_hw("pool", hw, attrs)

    def gen_pool(self, op):
        x = self.image()
        attrs, _ = self.pool_config(x.type.shape[2:], op.startswith("avg"))
        return self.emit(op, [x], attrs)

    gen_max_pool2d = gen_avg_pool2d = gen_pool

    def gen_max_pool2d_grad(self, op):
        x = self.image()
        attrs, (oh, ow) = self.pool_config(x.type.shape[2:], False)
        dy = self.of_type(TensorType(x.type.shape[:2] + (oh, ow), x.type.dtype))
        return self.emit(op, [x, dy], attrs)

    def gen_avg_pool2d_grad(self, op):
        x_type = self.image().type
        attrs, (oh, ow) = self.pool_config(x_type.shape[2:], True)
        dy = self.of_type(TensorType(x_type.shape[:2] + (oh, ow), x_type.dtype))
        return self.emit(op, [dy], dict(attrs, input_hw=tuple(x_type.shape[2:])))


@st.composite
def graphs(draw, max_nodes: int = 8, ops=None, symbolic: bool = True,
           large_constants: bool = True, special_values: bool = True, odd_names: bool = True):
    """A random valid Graph whose nodes use `ops` (default: every registered op).

    Helper nodes (constant, broadcast; neg/logical_not for parameter updates) may appear
    besides `ops` so that every op can always be given operands of the right type."""
    ops = sorted(all_ops()) if ops is None else list(ops)
    return _GraphGen(draw, ops, max_nodes, symbolic, large_constants, special_values,
                     odd_names).build()


def random_inputs(graph: Graph, env: dict, seed: int = 0, special_values: bool = False) -> dict:
    """Arrays for every input of `graph` without an initializer, with symbols bound by `env`."""
    rng = np.random.default_rng(seed)
    out = {}
    for v in graph.inputs:
        if v.name in graph.initializers:
            continue
        shape = tuple(evaluate(d, env) for d in v.type.shape)
        t = v.type.dtype
        if t is dt.bool_:
            arr = rng.random(shape) < 0.5
        elif t.is_int:
            arr = rng.integers(-5, 6, shape)
        else:
            arr = np.asarray(rng.standard_normal(shape) * 2)
            if special_values and arr.size:
                picks = rng.random(shape) < 0.15
                arr[picks] = rng.choice([np.nan, np.inf, -np.inf, -0.0], int(picks.sum()))
        out[v.name] = np.asarray(arr, t.np_dtype)
    return out


@st.composite
def graph_and_inputs(draw, max_nodes: int = 8, ops=None, special_values: bool = False,
                     symbol_ranges=None, **graph_options):
    """(graph, {input name: array}) with the graph's symbols bound to small sizes
    (`symbol_ranges` {symbol: (lo, hi)} binds them wider, e.g. to reach vector loops; graphs
    are built valid for SYMBOL_RANGES' smallest values, so any larger value is valid too).

    Params and state with initializers take their initial values (the interpreter fills
    them in). With special_values, float inputs contain NaN, +-inf and -0.0 at random."""
    g = draw(graphs(max_nodes=max_nodes, ops=ops, special_values=special_values,
                    **graph_options))
    ranges = {**SYMBOL_RANGES, **(symbol_ranges or {})}
    env = {s: draw(st.integers(*ranges[s])) for s in sorted(g.symbols())}
    seed = draw(st.integers(0, 2**32 - 1))
    return g, random_inputs(g, env, seed, special_values)
