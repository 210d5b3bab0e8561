"""Dense, activations, Flatten, Reshape and Dropout layers (tinynn names and arguments).

Dense stores its weight as (in_features, out_features) and computes x @ w + b; in_features is
inferred from the first input it sees. Activations are parameter-free wrappers of the
functional ops. Dropout is the counter-based `graphc.dropout`: its mask is a pure function of
(seed, step counter, element index), so each training step gets a fresh mask from the step
number the Model feeds in, and eval mode makes it the identity.
"""
from __future__ import annotations

import numbers
from typing import Optional

from ir.errors import AttrError, DTypeError, ShapeError
from ir.location import user_frame_loc

from .. import functional as F
from .. import init as _init
from ..tensor import Tensor, as_tensor
from .module import Module, current_step


def _float_input(layer: Module, x) -> Tensor:
    x = as_tensor(x, op=type(layer).__name__)
    if not x.dtype.is_float:
        raise DTypeError(f"{layer.path}: expected a float input, found {x.type}; cast it with "
                         ".astype('f32')", user_frame_loc())
    return x


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise AttrError(f"{what} must be a positive int, found {value!r}", user_frame_loc())
    return int(value)


class Dense(Module):
    """Fully connected: x @ w + b, w (in_features, num_out), b (num_out,). The input's last
    dim is in_features (leading dims, e.g. the batch, are kept)."""

    def __init__(self, num_out: int, w_init=_init.XavierUniform(), b_init=_init.Zeros(),
                 use_bias: bool = True, name: Optional[str] = None):
        super().__init__(name)
        self.num_out = _positive_int(num_out, "Dense: num_out")
        self.w_init = _init.get(w_init)
        self.b_init = _init.get(b_init)
        self.use_bias = bool(use_bias)

    def forward(self, x):
        x = _float_input(self, x)
        if x.ndim < 1 or not isinstance(x.shape[-1], int):
            raise ShapeError(f"{self.path}: Dense needs an input whose last dim (the features) "
                             f"is static, found {x.type}", user_frame_loc())
        w = self.param("w", (x.shape[-1], self.num_out), self.w_init, dtype=x.dtype)
        y = F.matmul(x, w)
        if self.use_bias:
            y = y + self.param("b", (self.num_out,), self.b_init, dtype=x.dtype)
        return y

    def extra_repr(self) -> str:
        w = self._values.get("w")
        fan_in = "?" if w is None else w.shape[0]
        return f"{fan_in} -> {self.num_out}" + ("" if self.use_bias else ", no bias")


# -- activations -------------------------------------------------------------------------------
class Activation(Module):
    """A parameter-free elementwise function."""

    def forward(self, x):
        return self.func(_float_input(self, x))

    def func(self, x: Tensor) -> Tensor:
        raise NotImplementedError


class ReLU(Activation):
    def func(self, x):
        return F.relu(x)


class LeakyReLU(Activation):
    """x if x > 0 else slope * x (tinynn's argument name and default)."""

    def __init__(self, slope: float = 0.2, name: Optional[str] = None):
        super().__init__(name)
        self.slope = float(slope)

    def func(self, x):
        return F.leaky_relu(x, self.slope)

    def extra_repr(self):
        return f"slope={self.slope}"


class Sigmoid(Activation):
    def func(self, x):
        return F.sigmoid(x)


class Tanh(Activation):
    def func(self, x):
        return F.tanh(x)


class Softplus(Activation):
    def func(self, x):
        return F.softplus(x)


class GELU(Activation):
    """approximate=False: exact (erf); True or "tanh": the tanh approximation."""

    def __init__(self, approximate=False, name: Optional[str] = None):
        super().__init__(name)
        self.approximate = approximate

    def func(self, x):
        return F.gelu(x, self.approximate)


class ELU(Activation):
    def __init__(self, alpha: float = 1.0, name: Optional[str] = None):
        super().__init__(name)
        self.alpha = float(alpha)

    def func(self, x):
        return F.elu(x, self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}"


# -- shapes ------------------------------------------------------------------------------------
class Flatten(Module):
    """Merge every axis after the batch axis: (N, C, H, W) -> (N, C*H*W)."""

    def forward(self, x):
        x = as_tensor(x, op="flatten")
        if x.ndim <= 2:
            return x
        return F.flatten(x, 1)


class Reshape(Module):
    """Reshape every example: Reshape(1, 28, 28) turns (N, 784) into (N, 1, 28, 28). The
    batch axis is kept; one target dim may be -1."""

    def __init__(self, *shape, name: Optional[str] = None):
        super().__init__(name)
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        for d in shape:
            if isinstance(d, bool) or not isinstance(d, numbers.Integral) or (d < 1 and d != -1):
                raise AttrError(f"Reshape: dims must be positive ints (one may be -1), found "
                                f"{shape}", user_frame_loc())
        self.shape = tuple(int(d) for d in shape)

    def forward(self, x):
        x = as_tensor(x, op="reshape")
        if x.ndim < 1:
            raise ShapeError(f"{self.path}: Reshape needs a batch axis, found {x.type}",
                             user_frame_loc())
        return F.reshape(x, (x.shape[0],) + self.shape)

    def extra_repr(self):
        return ", ".join(str(d) for d in self.shape)


# -- regularisation ----------------------------------------------------------------------------
class Dropout(Module):
    """Zero each element with probability `rate` while training (scaling the rest by
    1/(1-rate)); the identity in eval mode. seed=None takes the graph's next dropout seed
    (call order), so the train-step, grads and predict graphs of one net draw the same masks
    for the same step counter."""

    def __init__(self, rate: float = 0.5, seed: Optional[int] = None,
                 name: Optional[str] = None):
        super().__init__(name)
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
            raise AttrError(f"Dropout: rate must be a number in [0, 1), found {rate!r}",
                            user_frame_loc())
        self.rate = float(rate)
        self.seed = seed

    def forward(self, x):
        x = _float_input(self, x)
        if not self.training or self.rate == 0:
            return x
        return F.dropout(x, self.rate, training=True, seed=self.seed, counter=current_step())

    def extra_repr(self):
        return f"rate={self.rate}"

