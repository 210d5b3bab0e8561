"""Recurrent ONNX ops (LSTM, GRU, RNN), unrolled over a static sequence length.

The input projection of every time step is one matmul (X reshaped to [seq*batch, input]
times W^T); each step then adds H_{t-1} R^T and applies the gate equations of the ONNX spec
with graphc primitives, so the compiled graph is a straight line of seq_length steps per
direction. The batch may be symbolic. sequence_lens (forward direction) masks each batch
entry past its length: its hidden state stops changing and its Y rows are zero, as in ONNX.
"""
from __future__ import annotations

from ir import dtypes as dt

from ... import functional as F
from ...tensor import emit
from ..context import onnx_op
from ..values import Const
from .common import static_dims

# activation name -> (function(x, alpha, beta), default alpha, default beta)
_ACTIVATIONS = {
    "Sigmoid": (lambda x, a, b: F.sigmoid(x), None, None),
    "Tanh": (lambda x, a, b: F.tanh(x), None, None),
    "Relu": (lambda x, a, b: F.relu(x), None, None),
    "Softsign": (lambda x, a, b: F.softsign(x), None, None),
    "Softplus": (lambda x, a, b: F.softplus(x), None, None),
    "LeakyRelu": (lambda x, a, b: F.leaky_relu(x, a), 0.01, None),
    "Elu": (lambda x, a, b: F.elu(x, a), 1.0, None),
    "ThresholdedRelu": (lambda x, a, b: F.where(F.greater(x, a), x, 0.0), 1.0, None),
    "HardSigmoid": (lambda x, a, b: F.clip(F.add(F.multiply(x, a), b), 0.0, 1.0), 0.2, 0.5),
    "ScaledTanh": (lambda x, a, b: F.multiply(F.tanh(F.multiply(x, b)), a), 1.0, 1.0),
    "Affine": (lambda x, a, b: F.add(F.multiply(x, a), b), 1.0, 0.0),
}

_SPECS = {   # op -> (gates, default activations per direction)
    "LSTM": (4, ["Sigmoid", "Tanh", "Tanh"]),
    "GRU": (3, ["Sigmoid", "Tanh"]),
    "RNN": (1, ["Tanh"]),
}


def _activations(ctx, per_dir: list, n_dirs: int) -> list:
    """[[fn per activation slot] per direction] with alpha/beta consumed in order."""
    names = ctx.attr("activations", None) or per_dir * n_dirs
    if len(names) != len(per_dir) * n_dirs:
        ctx.unsupported(f"{len(names)} activations for {n_dirs} direction(s) (expected "
                        f"{len(per_dir) * n_dirs})")
    alphas = list(ctx.attr("activation_alpha", []))
    betas = list(ctx.attr("activation_beta", []))
    fns = []
    for name in names:
        key = next((k for k in _ACTIVATIONS if k.lower() == name.lower()), None)
        if key is None:
            ctx.unsupported(f"activation {name!r} (supported: {', '.join(_ACTIVATIONS)})")
        fn, da, db = _ACTIVATIONS[key]
        a = (alphas.pop(0) if alphas else da) if da is not None else None
        b = (betas.pop(0) if betas else db) if db is not None else None
        fns.append(lambda x, fn=fn, a=a, b=b: fn(x, a, b))
    k = len(per_dir)
    return [fns[d * k:(d + 1) * k] for d in range(n_dirs)]


def _cols(x, k: int, h: int):
    """Columns [k*h, (k+1)*h) of a (batch, gates*h) tensor."""
    return F.getitem(x, (slice(None), slice(k * h, (k + 1) * h)))


def _state(ctx, i: int, d: int, batch, h: int, x_dtype):
    if ctx.has(i):
        return F.getitem(ctx.tensor(i), d)
    return F.zeros((batch, h), x_dtype)


@onnx_op("LSTM", versions=(7, 14, 22))
@onnx_op("GRU", versions=(7, 14, 22))
@onnx_op("RNN", versions=(7, 14, 22))
def recurrent(ctx):
    op = ctx.op_type
    gates, per_dir = _SPECS[op]
    hidden = ctx.attr("hidden_size")
    direction = ctx.attr("direction", "forward")
    layout = ctx.attr("layout", 0) if ctx.version >= 14 else 0
    clip = ctx.attr("clip", None)
    input_forget = ctx.attr("input_forget", 0) if op == "LSTM" else 0
    lbr = ctx.attr("linear_before_reset", 0) if op == "GRU" else 0
    dirs = {"forward": ["forward"], "reverse": ["reverse"],
            "bidirectional": ["forward", "reverse"]}.get(direction)
    if dirs is None:
        ctx.unsupported(f"direction={direction!r}")
    acts = _activations(ctx, per_dir, len(dirs))
    x = ctx.tensor(0)
    if layout:
        x = F.transpose(x, (1, 0, 2))
    seq = static_dims(ctx, x.shape[:1], "the sequence length (recurrences are unrolled)")[0]
    batch, n_in = x.shape[1], x.shape[2]
    w, r = ctx.tensor(1), ctx.tensor(2)
    lens = _sequence_lens(ctx, seq, dirs)
    flat_x = F.reshape(x, (seq * batch, n_in))
    ys, finals_h, finals_c = [], [], []
    for d, kind in enumerate(dirs):
        wd, rd = F.getitem(w, d), F.getitem(r, d)
        xw = emit("matmul", [flat_x, wd], {"transpose_b": True})     # (seq*batch, G*H)
        rb_h = None
        if ctx.has(3):
            bd = F.getitem(ctx.tensor(3), d)
            wb = F.getitem(bd, slice(0, gates * hidden))
            rb = F.getitem(bd, slice(gates * hidden, 2 * gates * hidden))
            if lbr:   # Rbh stays inside the reset product
                rb_h = F.getitem(rb, slice(2 * hidden, 3 * hidden))
                rb = F.concat([F.getitem(rb, slice(0, 2 * hidden)),
                               F.zeros((hidden,), rb.dtype)])
            xw = F.add(xw, F.add(wb, rb))
        xw = F.reshape(xw, (seq, batch, gates * hidden))
        h = _state(ctx, 5, d, batch, hidden, x.dtype)
        c = _state(ctx, 6, d, batch, hidden, x.dtype) if op == "LSTM" else None
        peep = F.getitem(ctx.tensor(7), d) if (op == "LSTM" and ctx.has(7)) else None
        if op == "GRU":    # the candidate gate multiplies R_h by r * H (or r by H R_h^T)
            r_zr = F.getitem(rd, slice(0, 2 * hidden))
            r_h = F.getitem(rd, slice(2 * hidden, 3 * hidden))
        steps = range(seq) if kind == "forward" else range(seq - 1, -1, -1)
        outs = [None] * seq
        for t in steps:
            gx = F.getitem(xw, t)
            if op == "LSTM":
                gh = emit("matmul", [h, rd], {"transpose_b": True})
                h_new, c_new = _lstm_step(gx, gh, c, peep, hidden, acts[d], clip, input_forget)
            elif op == "GRU":
                h_new, c_new = _gru_step(gx, h, r_zr, r_h, rb_h, hidden, acts[d], clip,
                                         lbr), None
            else:
                gh = emit("matmul", [h, rd], {"transpose_b": True})
                h_new, c_new = acts[d][0](_clip(F.add(gx, gh), clip)), None
            if lens is not None:
                keep = F.reshape(F.less(F.full((), t, dt.i64), lens), (batch, 1))
                outs[t] = F.where(keep, h_new, 0.0)
                h = F.where(keep, h_new, h)
                c = F.where(keep, c_new, c) if c is not None else None
            else:
                outs[t], h, c = h_new, h_new, c_new
        ys.append(F.stack(outs, 0))                                  # (seq, batch, H)
        finals_h.append(h)
        finals_c.append(c)
    y = F.stack(ys, 1)                                               # (seq, dirs, batch, H)
    y_h = F.stack(finals_h, 0)                                       # (dirs, batch, H)
    y_c = F.stack(finals_c, 0) if op == "LSTM" else None
    if layout:
        y = F.transpose(y, (2, 0, 1, 3))
        y_h = F.transpose(y_h, (1, 0, 2))
        y_c = F.transpose(y_c, (1, 0, 2)) if y_c is not None else None
    return [y, y_h, y_c]


def _sequence_lens(ctx, seq: int, dirs: list):
    """An i64 tensor of lengths when some batch entry is shorter than seq, else None."""
    if not ctx.has(4):
        return None
    v = ctx.value(4)
    if isinstance(v, Const):
        if (v.array == seq).all():
            return None
    if "reverse" in dirs:
        ctx.unsupported("sequence_lens shorter than the sequence with a reverse direction")
    return F.cast(ctx.tensor(4), dt.i64)


def _clip(x, clip):
    return x if clip is None else F.clip(x, -clip, clip)


def _lstm_step(gx, gh, c, peep, hidden, acts, clip, input_forget):
    f, g, h_act = acts
    pre = F.add(gx, gh)
    i_pre, o_pre, f_pre, c_pre = (_cols(pre, k, hidden) for k in range(4))
    if peep is not None:
        p_i, p_o, p_f = (F.getitem(peep, slice(k * hidden, (k + 1) * hidden)) for k in range(3))
        i_pre = F.add(i_pre, F.multiply(p_i, c))
        f_pre = F.add(f_pre, F.multiply(p_f, c))
    i = f(_clip(i_pre, clip))
    forget = F.subtract(1.0, i) if input_forget else f(_clip(f_pre, clip))
    cand = g(_clip(c_pre, clip))
    c_new = F.add(F.multiply(forget, c), F.multiply(i, cand))
    if peep is not None:
        o_pre = F.add(o_pre, F.multiply(p_o, c_new))
    o = f(_clip(o_pre, clip))
    return F.multiply(o, h_act(c_new)), c_new


def _gru_step(gx, h, r_zr, r_h, rb_h, hidden, acts, clip, lbr):
    f, g = acts
    gh = emit("matmul", [h, r_zr], {"transpose_b": True})
    z = f(_clip(F.add(_cols(gx, 0, hidden), _cols(gh, 0, hidden)), clip))
    r = f(_clip(F.add(_cols(gx, 1, hidden), _cols(gh, 1, hidden)), clip))
    if lbr:
        hr = emit("matmul", [h, r_h], {"transpose_b": True})
        if rb_h is not None:
            hr = F.add(hr, rb_h)
        inner = F.multiply(r, hr)
    else:
        inner = emit("matmul", [F.multiply(r, h), r_h], {"transpose_b": True})
    cand = g(_clip(F.add(_cols(gx, 2, hidden), inner), clip))
    return F.add(F.multiply(F.subtract(1.0, z), cand), F.multiply(z, h))
