"""Slow, obviously-correct implementations of graphc's primitives, for the op reference tests.

Written from the semantics in the ir/ops docstrings, not from their code: explicit Python loops
over indices, Python floats (IEEE double) and Python ints (wrapped to the dtype's width where
the op is defined to wrap), and different numpy formulas (einsum) where a loop would be too
slow. Float results come back as float64 arrays computed from the exact input values, so the
tests can compare both the f32 and the f64 interpreter runs against them.
"""
from __future__ import annotations

import math
from itertools import product as cartesian

import numpy as np

INF = math.inf
NAN = math.nan


# -- element helpers ---------------------------------------------------------------------------
def wrap_int(v: int, np_dtype) -> int:
    """Two's-complement wrap of a Python int to the width of an integer dtype."""
    bits = np.dtype(np_dtype).itemsize * 8
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >= 1 << (bits - 1) else v


def _out_dtype(np_dtype):
    """Expected arrays hold floats as float64 (exact inputs, double arithmetic)."""
    return np.float64 if np.dtype(np_dtype).kind == "f" else np_dtype


def map_elements(fn, *arrays, out_dtype):
    """Apply a scalar Python function element by element (operands share one shape)."""
    shape = arrays[0].shape
    out = np.empty(shape, out_dtype)
    for idx in np.ndindex(shape):
        out[idx] = fn(*(a[idx].item() for a in arrays))
    return out


# -- unary math --------------------------------------------------------------------------------
def _exp(v):
    try:
        return math.exp(v)
    except OverflowError:
        return INF


def _log(v):
    if math.isnan(v) or v < 0:
        return NAN
    return -INF if v == 0 else math.log(v)


def _log1p(v):
    if math.isnan(v) or v < -1:
        return NAN
    return -INF if v == -1 else math.log1p(v)


def _sqrt(v):
    if math.isnan(v) or v < 0:
        return NAN
    return math.sqrt(v)


def _rsqrt(v):
    if math.isnan(v) or v < 0:
        return NAN
    if v == 0:
        return math.copysign(INF, v)     # sqrt(-0) = -0, and 1/-0 = -inf
    return 1.0 / math.sqrt(v)


def _reciprocal(v):
    if v == 0:
        return math.copysign(INF, v)
    return 1.0 / v


def _sigmoid(v):
    if math.isnan(v):
        return NAN
    return 1.0 / (1.0 + _exp(-v))


def _sign(v):
    if isinstance(v, float) and math.isnan(v):
        return NAN
    return (v > 0) - (v < 0)


def _relu(v):
    if isinstance(v, float) and math.isnan(v):
        return NAN
    return v if v > 0 else 0


UNARY_FLOAT = {
    "exp": _exp, "log": _log, "log1p": _log1p, "sqrt": _sqrt, "rsqrt": _rsqrt,
    "reciprocal": _reciprocal, "tanh": math.tanh, "sigmoid": _sigmoid, "erf": math.erf,
}
UNARY_NUMERIC = {"neg": lambda v: -v, "abs": abs, "sign": _sign, "relu": _relu}


def unary(name: str, x: np.ndarray) -> np.ndarray:
    fn = UNARY_FLOAT.get(name) or UNARY_NUMERIC[name]
    if x.dtype.kind in "iu":
        return map_elements(lambda v: wrap_int(fn(v), x.dtype), x, out_dtype=x.dtype)
    return map_elements(lambda v: float(fn(v)), x, out_dtype=np.float64)


# -- binary math -------------------------------------------------------------------------------
def _fdiv(a, b):
    if b == 0:
        if a == 0 or math.isnan(a):
            return NAN
        return math.copysign(1.0, a) * math.copysign(1.0, b) * INF
    return a / b


def _idiv(a, b):
    """Truncating integer division; a zero divisor gives 0."""
    if b == 0:
        return 0
    q = abs(a) // abs(b)
    return -q if (a < 0) != (b < 0) else q


def _pow(a, b):
    try:
        return math.pow(a, b)
    except OverflowError:
        odd = b == int(b) and int(b) % 2 == 1
        return -INF if (a < 0 and odd) else INF
    except ValueError:
        if a == 0 and b < 0:
            odd = b == int(b) and int(b) % 2 == 1
            return math.copysign(INF, a) if odd else INF
        return NAN


def _fmax(a, b):
    return NAN if math.isnan(a) or math.isnan(b) else max(a, b)


def _fmin(a, b):
    return NAN if math.isnan(a) or math.isnan(b) else min(a, b)


BINARY_FLOAT = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": _fdiv, "pow": _pow, "maximum": _fmax, "minimum": _fmin,
}
BINARY_INT = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": _idiv, "maximum": max, "minimum": min,
}
COMPARE = {
    "less": lambda a, b: a < b, "less_equal": lambda a, b: a <= b,
    "greater": lambda a, b: a > b, "greater_equal": lambda a, b: a >= b,
    "equal": lambda a, b: a == b, "not_equal": lambda a, b: a != b,
}
LOGICAL = {"logical_and": lambda a, b: a and b, "logical_or": lambda a, b: a or b}


def binary(name: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if name in COMPARE:
        return map_elements(COMPARE[name], a, b, out_dtype=np.bool_)
    if name in LOGICAL:
        return map_elements(lambda p, q: bool(LOGICAL[name](p, q)), a, b, out_dtype=np.bool_)
    if a.dtype.kind in "iu":
        fn = BINARY_INT[name]
        return map_elements(lambda p, q: wrap_int(fn(p, q), a.dtype), a, b, out_dtype=a.dtype)
    fn = BINARY_FLOAT[name]
    return map_elements(lambda p, q: float(fn(p, q)), a, b, out_dtype=np.float64)


def logical_not(x):
    return map_elements(lambda v: not v, x, out_dtype=np.bool_)


def select(cond, a, b):
    return map_elements(lambda c, p, q: p if c else q, cond, a, b, out_dtype=_out_dtype(a.dtype))


def cast(x: np.ndarray, to_np_dtype) -> np.ndarray:
    """graphc cast: to bool is x != 0; float -> int truncates, saturates, NaN -> 0;
    int -> narrower int wraps; anything -> float is the nearest value."""
    to = np.dtype(to_np_dtype)

    def one(v):
        if to.kind == "b":
            return v != 0
        if to.kind == "f":
            return float(v)
        info = np.iinfo(to)
        if isinstance(v, float):
            if math.isnan(v):
                return 0
            if math.isinf(v):
                return info.max if v > 0 else info.min
            return min(max(math.trunc(v), info.min), info.max)
        return wrap_int(int(v), to)
    return map_elements(one, x, out_dtype=_out_dtype(to))


# -- data movement -----------------------------------------------------------------------------
def iota(shape, axis, np_dtype):
    out = np.empty(shape, _out_dtype(np_dtype))
    for idx in np.ndindex(*shape):
        out[idx] = idx[axis]
    return out


def broadcast(x, shape, dims):
    out = np.empty(shape, _out_dtype(x.dtype))
    for idx in np.ndindex(*shape):
        src = tuple(0 if x.shape[i] == 1 else idx[d] for i, d in enumerate(dims))
        out[idx] = x[src]
    return out


def reshape(x, shape):
    flat = [x[idx] for idx in np.ndindex(x.shape)]
    out = np.empty(shape, _out_dtype(x.dtype))
    for k, idx in enumerate(np.ndindex(*shape)):
        out[idx] = flat[k]
    return out


def transpose(x, perm):
    shape = tuple(x.shape[p] for p in perm)
    out = np.empty(shape, _out_dtype(x.dtype))
    for idx in np.ndindex(*shape):
        src = [0] * x.ndim
        for i, p in enumerate(perm):
            src[p] = idx[i]
        out[idx] = x[tuple(src)]
    return out


def slice_(x, starts, stops, steps):
    shape = tuple(max(0, -(-(hi - lo) // st)) for lo, hi, st in zip(starts, stops, steps))
    out = np.empty(shape, _out_dtype(x.dtype))
    for idx in np.ndindex(*shape):
        out[idx] = x[tuple(lo + i * st for i, lo, st in zip(idx, starts, steps))]
    return out


def pad(x, low, high, value):
    shape = tuple(d + a + b for d, a, b in zip(x.shape, low, high))
    fill = cast(np.array(value), x.dtype).item() if x.dtype.kind != "f" else value
    out = np.empty(shape, _out_dtype(x.dtype))
    for idx in np.ndindex(*shape):
        src = tuple(i - a for i, a in zip(idx, low))
        inside = all(0 <= s < d for s, d in zip(src, x.shape))
        out[idx] = x[src] if inside else fill
    return out


def concat(xs, axis):
    axis %= xs[0].ndim
    shape = list(xs[0].shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    out = np.empty(shape, _out_dtype(xs[0].dtype))
    offset = 0
    for x in xs:
        for idx in np.ndindex(x.shape):
            dst = list(idx)
            dst[axis] += offset
            out[tuple(dst)] = x[idx]
        offset += x.shape[axis]
    return out


def gather(data, indices, axis):
    """out[pre, idx..., post] = data[pre, indices[idx...], post]; IndexError when out of range."""
    axis %= data.ndim
    shape = data.shape[:axis] + indices.shape + data.shape[axis + 1:]
    out = np.empty(shape, _out_dtype(data.dtype))
    k = indices.ndim
    for idx in np.ndindex(*shape):
        pre, mid, post = idx[:axis], idx[axis:axis + k], idx[axis + k:]
        i = int(indices[mid])
        if not 0 <= i < data.shape[axis]:
            raise IndexError(f"index {i} out of range for axis {axis}")
        out[idx] = data[pre + (i,) + post]
    return out


# -- reductions --------------------------------------------------------------------------------
def _reduce(x, axes, keepdims, combine_floats, combine_ints):
    axes = sorted(a % max(x.ndim, 1) for a in axes)
    kept = [i for i in range(x.ndim) if i not in axes]
    out_shape = tuple(1 if (i in axes and keepdims) else x.shape[i]
                      for i in range(x.ndim) if keepdims or i not in axes)
    out = np.empty(out_shape, _out_dtype(x.dtype))
    is_float = x.dtype.kind == "f"
    for kidx in np.ndindex(*(x.shape[i] for i in kept)):
        vals = []
        for ridx in np.ndindex(*(x.shape[i] for i in axes)):
            full = [0] * x.ndim
            for i, v in zip(kept, kidx):
                full[i] = v
            for i, v in zip(axes, ridx):
                full[i] = v
            vals.append(x[tuple(full)].item())
        dst = []
        kit = iter(kidx)
        for i in range(x.ndim):
            if i in axes:
                if keepdims:
                    dst.append(0)
            else:
                dst.append(next(kit))
        if is_float:
            out[tuple(dst)] = combine_floats(vals)
        else:
            out[tuple(dst)] = wrap_int(combine_ints(vals, x.dtype), x.dtype)
    return out


def _float_sum(vals):
    """Exactly rounded sum; NaN if any term is NaN or infinities of both signs meet."""
    if any(map(math.isnan, vals)) or (INF in vals and -INF in vals):
        return NAN
    return math.fsum(vals)


def reduce_sum(x, axes, keepdims):
    return _reduce(x, axes, keepdims, _float_sum, lambda v, d: sum(v))


def reduce_max(x, axes, keepdims):
    return _reduce(x, axes, keepdims,
                   lambda v: NAN if any(map(math.isnan, v)) else max(v, default=-INF),
                   lambda v, d: max(v, default=int(np.iinfo(d).min)))


def reduce_min(x, axes, keepdims):
    return _reduce(x, axes, keepdims,
                   lambda v: NAN if any(map(math.isnan, v)) else min(v, default=INF),
                   lambda v, d: min(v, default=int(np.iinfo(d).max)))


def argmax(x, axis, keepdims):
    """First index of the maximum along `axis`; the first NaN wins if there is one."""
    axis %= x.ndim
    out_shape = tuple(1 if i == axis else d for i, d in enumerate(x.shape)) if keepdims else \
        tuple(d for i, d in enumerate(x.shape) if i != axis)
    out = np.empty(out_shape, np.int64)
    rest = [d for i, d in enumerate(x.shape) if i != axis]
    for ridx in np.ndindex(*rest):
        best, best_i = None, 0
        for k in range(x.shape[axis]):
            v = x[ridx[:axis] + (k,) + ridx[axis:]].item()
            if isinstance(v, float) and math.isnan(v):
                best_i = k
                break
            if best is None or v > best:
                best, best_i = v, k
        dst = ridx[:axis] + (0,) + ridx[axis:] if keepdims else ridx
        out[dst] = best_i
    return out


# -- matmul ------------------------------------------------------------------------------------
def matmul(a, b, transpose_a=False, transpose_b=False):
    """einsum with the transposes written into the subscripts (no swapaxes)."""
    sa = "...ki" if transpose_a else "...ik"
    sb = "...jk" if transpose_b else "...kj"
    if a.dtype.kind == "f":
        return np.einsum(f"{sa},{sb}->...ij", a.astype(np.float64), b.astype(np.float64))
    # integers: exact Python arithmetic, then wrap to the dtype
    prod = np.einsum(f"{sa},{sb}->...ij", a.astype(object), b.astype(object))
    return np.vectorize(lambda v: wrap_int(int(v), a.dtype), otypes=[a.dtype])(prod) \
        if prod.size else prod.astype(a.dtype)


# -- convolution -------------------------------------------------------------------------------
def conv_out(size, k, stride, lo, hi, dilation):
    return (size + lo + hi - dilation * (k - 1) - 1) // stride + 1


def _conv_positions(x_shape, w_shape, stride, padding, dilation, groups):
    """Every (n, o, oh, ow, c_in, c_w, kh, kw, ih, iw) term of the convolution sum whose input
    position lies inside the unpadded input (padding contributes zeros)."""
    n_, c_, h_, w_ = x_shape
    o_, cg, kh_, kw_ = w_shape
    oh_ = conv_out(h_, kh_, stride[0], padding[0], padding[2], dilation[0])
    ow_ = conv_out(w_, kw_, stride[1], padding[1], padding[3], dilation[1])
    per_group = o_ // groups
    for n, o, oh, ow in cartesian(range(n_), range(o_), range(oh_), range(ow_)):
        g = o // per_group
        for c, kh, kw in cartesian(range(cg), range(kh_), range(kw_)):
            ih = oh * stride[0] - padding[0] + kh * dilation[0]
            iw = ow * stride[1] - padding[1] + kw * dilation[1]
            if 0 <= ih < h_ and 0 <= iw < w_:
                yield n, o, oh, ow, g * cg + c, c, kh, kw, ih, iw


def conv2d(x, w, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    n_, _, h_, w_ = x.shape
    o_, _, kh_, kw_ = w.shape
    oh_ = conv_out(h_, kh_, stride[0], padding[0], padding[2], dilation[0])
    ow_ = conv_out(w_, kw_, stride[1], padding[1], padding[3], dilation[1])
    xl, wl = x.astype(np.float64).tolist(), w.astype(np.float64).tolist()
    out = np.zeros((n_, o_, oh_, ow_))
    for n, o, oh, ow, ci, c, kh, kw, ih, iw in _conv_positions(x.shape, w.shape, stride, padding,
                                                               dilation, groups):
        out[n, o, oh, ow] += xl[n][ci][ih][iw] * wl[o][c][kh][kw]
    return out


def conv2d_grad_input(dy, w, input_hw, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1),
                      groups=1):
    """Scatter each output gradient back through the same terms as the forward sum."""
    n_ = dy.shape[0]
    _, cg, _, _ = w.shape
    x_shape = (n_, cg * groups) + tuple(input_hw)
    dyl, wl = dy.astype(np.float64).tolist(), w.astype(np.float64).tolist()
    dx = np.zeros(x_shape)
    for n, o, oh, ow, ci, c, kh, kw, ih, iw in _conv_positions(x_shape, w.shape, stride, padding,
                                                               dilation, groups):
        dx[n, ci, ih, iw] += dyl[n][o][oh][ow] * wl[o][c][kh][kw]
    return dx


def conv2d_grad_filter(x, dy, kernel_hw, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1),
                       groups=1):
    o_ = dy.shape[1]
    w_shape = (o_, x.shape[1] // groups) + tuple(kernel_hw)
    xl, dyl = x.astype(np.float64).tolist(), dy.astype(np.float64).tolist()
    dw = np.zeros(w_shape)
    for n, o, oh, ow, ci, c, kh, kw, ih, iw in _conv_positions(x.shape, w_shape, stride, padding,
                                                               dilation, groups):
        dw[o, c, kh, kw] += dyl[n][o][oh][ow] * xl[n][ci][ih][iw]
    return dw


# -- pooling (PyTorch's window and divisor rules, written as loops) ----------------------------
def pool_out(size, k, stride, lo, hi, ceil_mode):
    span = size + lo + hi - k
    out = (math.ceil(span / stride) if ceil_mode else math.floor(span / stride)) + 1
    if ceil_mode and (out - 1) * stride >= size + lo:
        out -= 1       # a last window starting in the bottom/right padding is dropped
    return out


def _pool_windows(x_shape, kernel, stride, padding, ceil_mode):
    """(oh, ow, h0, h1, w0, w1, hend_pad, wend_pad): each window's start, its end clipped to
    the real input (h1, w1), and its end clipped to the padded input (for the divisor)."""
    _, _, h_, w_ = x_shape
    oh_ = pool_out(h_, kernel[0], stride[0], padding[0], padding[2], ceil_mode)
    ow_ = pool_out(w_, kernel[1], stride[1], padding[1], padding[3], ceil_mode)
    for oh, ow in cartesian(range(oh_), range(ow_)):
        hs, ws = oh * stride[0] - padding[0], ow * stride[1] - padding[1]
        he_pad = min(hs + kernel[0], h_ + padding[2])
        we_pad = min(ws + kernel[1], w_ + padding[3])
        yield (oh, ow, max(hs, 0), min(hs + kernel[0], h_), max(ws, 0),
               min(ws + kernel[1], w_), (he_pad - hs) * (we_pad - ws))


def pool_out_hw(x_shape, kernel, stride, padding, ceil_mode):
    return (pool_out(x_shape[2], kernel[0], stride[0], padding[0], padding[2], ceil_mode),
            pool_out(x_shape[3], kernel[1], stride[1], padding[1], padding[3], ceil_mode))


def _first_max(plane, h0, h1, w0, w1):
    """(value, (h, w)) of the first maximum in scan order; a NaN counts as the maximum.
    A window of only -inf picks its first real element."""
    best, where = None, None
    for h, w in cartesian(range(h0, h1), range(w0, w1)):
        v = plane[h][w]
        if math.isnan(v):
            return v, (h, w)
        if best is None or v > best:
            best, where = v, (h, w)
    return (-INF if best is None else best), where


def max_pool2d(x, kernel, stride=(1, 1), padding=(0, 0, 0, 0), ceil_mode=False):
    n_, c_ = x.shape[:2]
    xl = x.astype(np.float64).tolist()
    out = np.empty((n_, c_) + pool_out_hw(x.shape, kernel, stride, padding, ceil_mode))
    for n, c in cartesian(range(n_), range(c_)):
        for oh, ow, h0, h1, w0, w1, _ in _pool_windows(x.shape, kernel, stride, padding,
                                                       ceil_mode):
            out[n, c, oh, ow] = _first_max(xl[n][c], h0, h1, w0, w1)[0]
    return out


def max_pool2d_grad(x, dy, kernel, stride=(1, 1), padding=(0, 0, 0, 0), ceil_mode=False):
    n_, c_ = x.shape[:2]
    xl, dyl = x.astype(np.float64).tolist(), dy.astype(np.float64).tolist()
    dx = np.zeros(x.shape)
    for n, c in cartesian(range(n_), range(c_)):
        for oh, ow, h0, h1, w0, w1, _ in _pool_windows(x.shape, kernel, stride, padding,
                                                       ceil_mode):
            where = _first_max(xl[n][c], h0, h1, w0, w1)[1]
            if where is not None:
                dx[n, c, where[0], where[1]] += dyl[n][c][oh][ow]
    return dx


def avg_pool2d(x, kernel, stride=(1, 1), padding=(0, 0, 0, 0), ceil_mode=False,
               count_include_pad=True):
    n_, c_ = x.shape[:2]
    xl = x.astype(np.float64).tolist()
    out = np.empty((n_, c_) + pool_out_hw(x.shape, kernel, stride, padding, ceil_mode))
    for n, c in cartesian(range(n_), range(c_)):
        for oh, ow, h0, h1, w0, w1, padded_area in _pool_windows(x.shape, kernel, stride,
                                                                 padding, ceil_mode):
            vals = [xl[n][c][h][w] for h, w in cartesian(range(h0, h1), range(w0, w1))]
            divisor = padded_area if count_include_pad else len(vals)
            out[n, c, oh, ow] = _float_sum(vals) / divisor
    return out


def avg_pool2d_grad(dy, input_hw, kernel, stride=(1, 1), padding=(0, 0, 0, 0), ceil_mode=False,
                    count_include_pad=True):
    x_shape = tuple(dy.shape[:2]) + tuple(input_hw)
    dyl = dy.astype(np.float64).tolist()
    dx = np.zeros(x_shape)
    for n, c in cartesian(range(x_shape[0]), range(x_shape[1])):
        for oh, ow, h0, h1, w0, w1, padded_area in _pool_windows(x_shape, kernel, stride,
                                                                 padding, ceil_mode):
            divisor = padded_area if count_include_pad else (h1 - h0) * (w1 - w0)
            for h, w in cartesian(range(h0, h1), range(w0, w1)):
                dx[n, c, h, w] += dyl[n][c][oh][ow] / divisor
    return dx


# -- counter-based random numbers --------------------------------------------------------------
MASK32 = 0xFFFFFFFF


def hash32(v: int) -> int:
    """The 32-bit integer mixer of ir/ops/random.py's docstring, in Python ints."""
    v &= MASK32
    v ^= v >> 16
    v = (v * 0x7FEB352D) & MASK32
    v ^= v >> 15
    v = (v * 0x846CA68B) & MASK32
    v ^= v >> 16
    return v


def random_bits(seed: int, counter: int, n: int) -> list:
    key = hash32((seed & MASK32) ^ hash32(counter & MASK32))
    return [hash32((key + i) & MASK32) for i in range(n)]


def random_uniform(shape, seed=0, counter=0):
    n = math.prod(shape)
    vals = [(b >> 8) / float(1 << 24) for b in random_bits(seed, counter, n)]
    return np.array(vals, np.float64).reshape(shape)
