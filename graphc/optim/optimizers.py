"""Optimizers as IR update rules (tinynn names, arguments and formulas).

An optimizer does not run anything: while a training-step graph is traced, `build_update`
appends the update of every parameter (and of the optimizer's slots, e.g. Adam's m and v) as
ordinary graph ops, so later passes optimise them and the whole step is one native call. The
learning rate and the step number are runtime scalars (graph inputs): `optimizer.lr` is read
on every call, so a scheduler can change it without recompiling.

State: slot values live in `optimizer.state` (numpy arrays named "opt.<slot>.<param>") and
become graph inputs of role "state"; the Model points them at runtime buffers, so
`optimizer.state` always shows the live values and is saved with the model.

Step numbers start at 1 (the first update is step 1), as in Adam's bias correction
1 - beta^t. Per-step scalars (bias corrections, RAdam's rectification) are computed once per
step in float64 inside the graph and applied to every parameter as float32 factors.

Weight decay (every optimizer): by default L2 regularisation added to the gradient,
g <- g + weight_decay * w, before the rule. With decoupled_weight_decay=True it is applied to
the parameter instead, w <- w - lr * weight_decay * w (AdamW-style; tinynn's behaviour).

Rules (g the gradient, lr the learning rate, t the step; eps inside the square root where
tinynn has it there):
    SGD       w -= lr g
    Momentum  acc = momentum acc + g;  w -= lr acc
    RMSProp   ms += (1 - decay)(g^2 - ms);  mom = momentum mom + lr g / sqrt(ms + eps);  w -= mom
    Adagrad   G += g^2;  w -= lr g / sqrt(G + eps)
    Adadelta  eg += (1-decay)(g^2 - eg);  d = g sqrt(ed + eps) / sqrt(eg + eps);  w -= lr d;
              ed += (1-decay)(d^2 - ed)
    Adam      m += (1-b1)(g - m);  v += (1-b2)(g^2 - v);
              w -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    RAdam     Adam's moments; rho_inf = 2/(1-b2) - 1, rho_t = rho_inf - 2 t b2^t / (1 - b2^t);
              if rho_t > 4: w -= lr r_t m_hat / (sqrt(v_hat) + eps) with
              r_t = sqrt((rho_t-4)(rho_t-2) rho_inf / ((rho_inf-4)(rho_inf-2) rho_t));
              else w -= lr m_hat   (Liu et al. 2019; tinynn leaves out the factor t in rho_t)
"""
from __future__ import annotations

import math
import numbers
from typing import Mapping

import numpy as np

from ir.errors import AttrError
from ir.location import user_frame_loc

from .. import functional as F
from ..tensor import Tensor, constant
from ..tracing import param as _trace_param


def _number(value, name: str, who: str, low: float = 0.0, high: float = math.inf,
            open_high: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(float(value)):
        raise AttrError(f"{who}: {name} must be a finite number, found {value!r}",
                        user_frame_loc())
    value = float(value)
    if value < low or value > high or (open_high and value == high):
        bound = f"[{low}, {high}{')' if open_high else ']'}"
        raise AttrError(f"{who}: {name} must be in {bound}, found {value}", user_frame_loc())
    return value


def slot_name(slot: str, param: str) -> str:
    return f"opt.{slot}.{param}"


class Optimizer:
    """Base class. Subclasses set `slots` (names of per-parameter state, zero-initialised) and
    define `update(w, g, slots, k)` -> (new w, {slot: new value}); `prepare(lr, step)` makes
    the per-step scalars `k` (a dict of Tensors) once for all parameters."""

    slots: tuple = ()

    def __init__(self, lr: float, weight_decay: float = 0.0,
                 decoupled_weight_decay: bool = False):
        self.lr = lr
        self.weight_decay = _number(weight_decay, "weight_decay", type(self).__name__)
        self.decoupled_weight_decay = bool(decoupled_weight_decay)
        self.state: dict = {}

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value) -> None:
        self._lr = _number(value, "lr", type(self).__name__)

    # -- state -----------------------------------------------------------------------------------
    def init_state(self, params: Mapping[str, np.ndarray]) -> dict:
        """Create (zeroed) slots for the given trainable parameters; returns `self.state`."""
        self.state = {slot_name(s, name): np.zeros_like(value)
                      for name, value in params.items() for s in self.slots}
        return self.state

    def bind_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Make the slots BE the given arrays (runtime buffers), by name."""
        for name in self.state:
            if name in arrays:
                self.state[name] = arrays[name]

    # -- the update as graph ops -----------------------------------------------------------------
    def build_update(self, params: Mapping[str, Tensor], grads: Mapping[str, Tensor],
                     lr: Tensor, step: Tensor) -> list:
        """Append the update of every parameter to the graph being traced; returns
        [(input name, new value Tensor)] for the parameters and their slots."""
        k = self.prepare(lr, step)
        k.setdefault("lr", lr)
        wd = self.weight_decay
        out = []
        for name, w in params.items():
            g = grads[name]
            if wd and not self.decoupled_weight_decay:
                g = g + w * wd
            slots = {}
            for s in self.slots:
                key = slot_name(s, name)
                if key not in self.state:
                    raise AttrError(f"{type(self).__name__}: no state {key!r}; call "
                                    "init_state(params) first (graphc.Model does)")
                slots[s] = _trace_param(key, self.state[key], role="state")
            new_w, new_slots = self.update(w, g, slots, k)
            if wd and self.decoupled_weight_decay:
                new_w = new_w - w * (lr * wd)
            out.append((name, new_w))
            out.extend((slot_name(s, name), new_slots[s]) for s in self.slots)
        return out

    def prepare(self, lr: Tensor, step: Tensor) -> dict:
        return {"lr": lr}

    def update(self, w: Tensor, g: Tensor, slots: dict, k: dict):
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k.lstrip('_')}={v!r}" for k, v in vars(self).items()
                           if k != "state")
        return f"{type(self).__name__}({fields})"


def _f64_step(step: Tensor) -> Tensor:
    return F.cast(step, "f64")


def _to_f32(x: Tensor) -> Tensor:
    return F.cast(x, "f32")


class SGD(Optimizer):
    def __init__(self, lr: float = 0.01, weight_decay: float = 0.0, **kw):
        super().__init__(lr, weight_decay, **kw)

    def update(self, w, g, slots, k):
        return w - g * k["lr"], {}


class Momentum(Optimizer):
    slots = ("acc",)

    def __init__(self, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0, **kw):
        super().__init__(lr, weight_decay, **kw)
        self.momentum = _number(momentum, "momentum", "Momentum")

    def update(self, w, g, slots, k):
        acc = slots["acc"] * self.momentum + g
        return w - acc * k["lr"], {"acc": acc}


class RMSProp(Optimizer):
    def __init__(self, lr: float = 0.01, decay: float = 0.99, momentum: float = 0.0,
                 epsilon: float = 1e-8, weight_decay: float = 0.0, **kw):
        super().__init__(lr, weight_decay, **kw)
        self.decay = _number(decay, "decay", "RMSProp", 0.0, 1.0)
        self.momentum = _number(momentum, "momentum", "RMSProp")
        self.epsilon = _number(epsilon, "epsilon", "RMSProp")
        self.slots = ("ms", "mom") if self.momentum else ("ms",)

    def update(self, w, g, slots, k):
        ms = slots["ms"] + (g * g - slots["ms"]) * (1.0 - self.decay)
        step = g * k["lr"] / F.sqrt(ms + self.epsilon)
        if not self.momentum:
            return w - step, {"ms": ms}
        mom = slots["mom"] * self.momentum + step
        return w - mom, {"ms": ms, "mom": mom}


class Adagrad(Optimizer):
    slots = ("g2",)

    def __init__(self, lr: float = 0.01, weight_decay: float = 0.0, epsilon: float = 1e-8, **kw):
        super().__init__(lr, weight_decay, **kw)
        self.epsilon = _number(epsilon, "epsilon", "Adagrad")

    def update(self, w, g, slots, k):
        g2 = slots["g2"] + g * g
        return w - g * k["lr"] / F.sqrt(g2 + self.epsilon), {"g2": g2}


class Adadelta(Optimizer):
    slots = ("eg", "ed")

    def __init__(self, lr: float = 1.0, weight_decay: float = 0.0, decay: float = 0.9,
                 epsilon: float = 1e-8, **kw):
        super().__init__(lr, weight_decay, **kw)
        self.decay = _number(decay, "decay", "Adadelta", 0.0, 1.0)
        self.epsilon = _number(epsilon, "epsilon", "Adadelta")

    def update(self, w, g, slots, k):
        rate = 1.0 - self.decay
        eg = slots["eg"] + (g * g - slots["eg"]) * rate
        delta = g * F.sqrt(slots["ed"] + self.epsilon) / F.sqrt(eg + self.epsilon)
        ed = slots["ed"] + (delta * delta - slots["ed"]) * rate
        return w - delta * k["lr"], {"eg": eg, "ed": ed}


class Adam(Optimizer):
    slots = ("m", "v")

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 epsilon: float = 1e-8, weight_decay: float = 0.0, **kw):
        super().__init__(lr, weight_decay, **kw)
        who = type(self).__name__
        self.beta1 = _number(beta1, "beta1", who, 0.0, 1.0, open_high=True)
        self.beta2 = _number(beta2, "beta2", who, 0.0, 1.0, open_high=True)
        self.epsilon = _number(epsilon, "epsilon", who)

    def _moments(self, g, slots):
        m = slots["m"] + (g - slots["m"]) * (1.0 - self.beta1)
        v = slots["v"] + (g * g - slots["v"]) * (1.0 - self.beta2)
        return m, v

    def _corrections(self, step: Tensor):
        """(1 - b1^t, 1 - b2^t, b2^t) as f64 scalars."""
        t = _f64_step(step)
        b1t = F.power(constant(self.beta1, "f64"), t)
        b2t = F.power(constant(self.beta2, "f64"), t)
        return 1.0 - b1t, 1.0 - b2t, b2t

    def prepare(self, lr, step):
        bc1, bc2, _ = self._corrections(step)
        return {"lr_m": _to_f32(F.cast(lr, "f64") / bc1), "inv_bc2": _to_f32(1.0 / bc2)}

    def update(self, w, g, slots, k):
        m, v = self._moments(g, slots)
        denom = F.sqrt(v * k["inv_bc2"]) + self.epsilon
        return w - m * k["lr_m"] / denom, {"m": m, "v": v}


class RAdam(Adam):
    """Rectified Adam (Liu et al. 2019); see the module docstring."""

    def prepare(self, lr, step):
        bc1, bc2, b2t = self._corrections(step)
        t = _f64_step(step)
        rho_inf = 2.0 / (1.0 - self.beta2) - 1.0
        rho_t = rho_inf - t * b2t * 2.0 / bc2
        ratio = (F.maximum(rho_t - 4.0, 0.0) * (rho_t - 2.0) * rho_inf
                 / (rho_t * ((rho_inf - 4.0) * (rho_inf - 2.0))))
        rectified = rho_t > 4.0
        lr_m = F.cast(lr, "f64") / bc1
        return {"adaptive": _to_f32(F.where(rectified, lr_m * F.sqrt(ratio), 0.0)),
                "plain": _to_f32(F.where(rectified, 0.0, lr_m)),
                "inv_bc2": _to_f32(1.0 / bc2)}

    def update(self, w, g, slots, k):
        m, v = self._moments(g, slots)
        denom = F.sqrt(v * k["inv_bc2"]) + self.epsilon
        return w - m * (k["adaptive"] / denom + k["plain"]), {"m": m, "v": v}


BY_NAME = {"sgd": SGD, "momentum": Momentum, "rmsprop": RMSProp, "adagrad": Adagrad,
           "adadelta": Adadelta, "adam": Adam, "radam": RAdam}


def get(spec) -> Optimizer:
    """An Optimizer from an instance, a subclass (default arguments) or a name ("adam")."""
    if isinstance(spec, Optimizer):
        return spec
    if isinstance(spec, type) and issubclass(spec, Optimizer):
        return spec()
    if isinstance(spec, str) and spec.lower() in BY_NAME:
        return BY_NAME[spec.lower()]()
    raise AttrError(f"unknown optimizer {spec!r}; expected a graphc.optim.Optimizer or one of "
                    f"{', '.join(BY_NAME)}")
