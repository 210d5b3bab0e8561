"""Parameter initializers (tinynn-compatible names), seeded and float32.

Each initializer is called as `init(shape, rng=None)` and returns a float32 array:
- rng is a seed (int), a `np.random.Generator` (advanced in place, so consecutive calls differ
  but a whole run is reproducible), or None: a seed drawn from numpy's global legacy RNG, so
  `np.random.seed(s)` makes code that never passes rng reproducible too (tinynn's habit).

Weight layouts and fans (used by the Xavier/Glorot and He initializers):
- Dense weights are stored (in_features, out_features), so a layer computes x @ W:
  fan_in = shape[0], fan_out = shape[1].
- Conv weights are stored (out_channels, in_channels, KH, KW) (any number of spatial dims):
  with receptive = KH * KW, fan_in = in_channels * receptive and
  fan_out = out_channels * receptive (as in Glorot & Bengio, Keras and PyTorch; tinynn omits
  the receptive field from fan_out).
- A 1-D shape (n,) has fan_in = fan_out = n; a scalar () has fans of 1.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np

from ir.errors import ArgumentError, ShapeError

# Resampling a truncated normal is only sensible when most draws land inside the bounds.
_MIN_TRUNCATED_ACCEPTANCE = 0.01


def make_rng(rng_or_seed=None) -> np.random.Generator:
    """A Generator from a seed, a Generator (returned as is) or None (seeded from np.random)."""
    if isinstance(rng_or_seed, np.random.Generator):
        return rng_or_seed
    if rng_or_seed is None:
        return np.random.default_rng(np.random.randint(0, 2 ** 63 - 1, dtype=np.int64))
    if isinstance(rng_or_seed, np.random.RandomState):
        return np.random.default_rng(rng_or_seed.randint(0, 2 ** 63 - 1, dtype=np.int64))
    if isinstance(rng_or_seed, (int, np.integer, np.random.SeedSequence)) \
            and not isinstance(rng_or_seed, bool):
        if isinstance(rng_or_seed, (int, np.integer)) and rng_or_seed < 0:
            raise ArgumentError(f"a seed must be a non-negative integer, found {rng_or_seed}")
        return np.random.default_rng(rng_or_seed)
    raise ArgumentError("rng must be an int seed, a numpy Generator or None, found "
                        f"{type(rng_or_seed).__name__} {rng_or_seed!r}")


def concrete_shape(shape) -> tuple[int, ...]:
    """Validate and normalise a shape (an int or a sequence of non-negative ints)."""
    dims = (shape,) if isinstance(shape, (int, np.integer)) else shape
    try:
        dims = tuple(dims)
    except TypeError:
        raise ShapeError(f"an initializer needs a shape (a tuple of ints), found {shape!r}") \
            from None
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
            raise ShapeError(f"an initializer needs a concrete shape of non-negative ints, found "
                             f"{d!r} ({type(d).__name__}) in {shape!r}")
        if d < 0:
            raise ShapeError(f"an initializer needs non-negative dims, found {d} in {shape!r}")
    return tuple(int(d) for d in dims)


def get_fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight shape under the layouts in the module docstring."""
    shape = concrete_shape(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _nonzero_fans(shape, who: str) -> tuple[int, int]:
    fan_in, fan_out = get_fans(shape)
    if fan_in == 0 or fan_out == 0:
        raise ShapeError(f"{who} needs non-zero fans, found fan_in={fan_in}, fan_out={fan_out} "
                         f"for shape {tuple(shape)}")
    return fan_in, fan_out


def _check_scale(value, name: str, who: str) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ArgumentError(f"{who}: {name} must be finite and >= 0, found {value}")
    return value


class Initializer(ABC):
    """Base class: `__call__` validates the shape, makes the Generator and casts to float32."""

    def __call__(self, shape, rng=None) -> np.ndarray:
        shape = concrete_shape(shape)
        values = self.init(shape, make_rng(rng))
        return np.asarray(values, dtype=np.float32).reshape(shape)

    @abstractmethod
    def init(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Draw an array of `shape` (any float dtype; the caller casts to float32)."""

    def __repr__(self) -> str:
        fields = ", ".join(f"{k.lstrip('_')}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class Normal(Initializer):
    """N(mean, std^2)."""

    def __init__(self, mean: float = 0.0, std: float = 1.0):
        self.mean = float(mean)
        self.std = _check_scale(std, "std", "Normal")

    def init(self, shape, rng):
        return rng.normal(self.mean, self.std, size=shape)


class TruncatedNormal(Initializer):
    """N(mean, std^2) restricted to [low, high] (default mean -/+ 2 std) by redrawing the
    samples that fall outside. low/high are absolute values, not multiples of std."""

    def __init__(self, mean: float = 0.0, std: float = 1.0, low: float | None = None,
                 high: float | None = None):
        self.mean = float(mean)
        self.std = _check_scale(std, "std", "TruncatedNormal")
        self.low = self.mean - 2.0 * self.std if low is None else float(low)
        self.high = self.mean + 2.0 * self.std if high is None else float(high)
        if not self.low <= self.high:
            raise ArgumentError(f"TruncatedNormal: expected low <= high, found low={self.low}, "
                                f"high={self.high}")
        if self.std == 0:
            if not self.low <= self.mean <= self.high:
                raise ArgumentError(f"TruncatedNormal: std=0 puts every sample at mean="
                                    f"{self.mean}, outside [{self.low}, {self.high}]")
            return
        acceptance = _normal_cdf((self.high - self.mean) / self.std) \
            - _normal_cdf((self.low - self.mean) / self.std)
        if acceptance < _MIN_TRUNCATED_ACCEPTANCE:
            raise ArgumentError(f"TruncatedNormal: only {acceptance:.2e} of N({self.mean}, "
                                f"{self.std}^2) lies in [{self.low}, {self.high}]; expected at "
                                f"least {_MIN_TRUNCATED_ACCEPTANCE} so resampling terminates")

    def init(self, shape, rng):
        if self.std == 0:
            return np.full(shape, self.mean)
        values = rng.normal(self.mean, self.std, size=shape)
        outside = np.flatnonzero((values < self.low) | (values > self.high))
        flat = values.reshape(-1)
        while outside.size:   # each round keeps >= 1% of the remaining draws, usually ~95%
            flat[outside] = rng.normal(self.mean, self.std, size=outside.size)
            outside = outside[(flat[outside] < self.low) | (flat[outside] > self.high)]
        return values


def _normal_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


class Uniform(Initializer):
    """U(a, b)."""

    def __init__(self, a: float = 0.0, b: float = 1.0):
        self.a, self.b = float(a), float(b)
        if not (math.isfinite(self.a) and math.isfinite(self.b) and self.a <= self.b):
            raise ArgumentError(f"Uniform: expected finite a <= b, found a={self.a}, b={self.b}")

    def init(self, shape, rng):
        return rng.uniform(self.a, self.b, size=shape)


class Constant(Initializer):
    """Every element equal to `val` (rng is accepted and ignored)."""

    def __init__(self, val: float):
        self.val = float(val)

    def init(self, shape, rng):
        return np.full(shape, self.val)


class Zeros(Constant):
    def __init__(self):
        super().__init__(0.0)


class Ones(Constant):
    def __init__(self):
        super().__init__(1.0)


class XavierUniform(Initializer):
    """Glorot & Bengio (2010): U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""

    def __init__(self, gain: float = 1.0):
        self.gain = _check_scale(gain, "gain", type(self).__name__)

    def init(self, shape, rng):
        fan_in, fan_out = _nonzero_fans(shape, type(self).__name__)
        a = self.gain * math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-a, a, size=shape)


class XavierNormal(XavierUniform):
    """Glorot & Bengio (2010): N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""

    def init(self, shape, rng):
        fan_in, fan_out = _nonzero_fans(shape, type(self).__name__)
        return rng.normal(0.0, self.gain * math.sqrt(2.0 / (fan_in + fan_out)), size=shape)


class HeUniform(XavierUniform):
    """He et al. (2015): U(-a, a) with a = gain * sqrt(6 / fan_in)."""

    def init(self, shape, rng):
        fan_in, _ = _nonzero_fans(shape, type(self).__name__)
        a = self.gain * math.sqrt(6.0 / fan_in)
        return rng.uniform(-a, a, size=shape)


class HeNormal(XavierUniform):
    """He et al. (2015): N(0, std^2) with std = gain * sqrt(2 / fan_in)."""

    def init(self, shape, rng):
        fan_in, _ = _nonzero_fans(shape, type(self).__name__)
        return rng.normal(0.0, self.gain * math.sqrt(2.0 / fan_in), size=shape)


BY_NAME = {
    "normal": Normal, "truncated_normal": TruncatedNormal, "uniform": Uniform,
    "zeros": Zeros, "ones": Ones,
    "xavier_uniform": XavierUniform, "glorot_uniform": XavierUniform,
    "xavier_normal": XavierNormal, "glorot_normal": XavierNormal,
    "he_uniform": HeUniform, "he_normal": HeNormal,
}


def get(spec) -> Initializer:
    """An Initializer from an instance, a subclass (default arguments) or a name such as
    "xavier_uniform" / "he_normal" / "zeros" (layer constructors accept any of these)."""
    if isinstance(spec, Initializer):
        return spec
    if isinstance(spec, type) and issubclass(spec, Initializer):
        return spec()
    if isinstance(spec, str) and spec.lower() in BY_NAME:
        return BY_NAME[spec.lower()]()
    raise ArgumentError(f"unknown initializer {spec!r}; expected an Initializer or one of "
                        f"{', '.join(BY_NAME)}")
