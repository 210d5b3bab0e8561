"""graphc.init: distributions (moments within statistical bounds), bounds, fans, seeding."""
import math

import numpy as np
import pytest

from graphc import init
from graphc.init import (Constant, HeNormal, HeUniform, Normal, Ones, TruncatedNormal, Uniform,
                         XavierNormal, XavierUniform, Zeros, get_fans)
from ir.errors import ArgumentError, ShapeError
from ir.symbolic import sym

N = 200_000          # draws for moment checks
Z = 6.0              # standard errors allowed: a deterministic seed, and still never flaky


def phi(z):
    return math.exp(-z * z / 2) / math.sqrt(2 * math.pi)


def cdf(z):
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def assert_moments(x, mean, std):
    """Sample mean within Z standard errors; sample std within Z of its (normal-ish) s.e."""
    x = x.astype(np.float64).ravel()
    n = x.size
    assert abs(x.mean() - mean) <= Z * std / math.sqrt(n) + 1e-12, (x.mean(), mean)
    assert abs(x.std() - std) <= Z * std / math.sqrt(2 * n) * 1.5, (x.std(), std)


ALL = [Normal(), TruncatedNormal(), Uniform(), Constant(0.5), Zeros(), Ones(), XavierUniform(),
       XavierNormal(), HeUniform(), HeNormal()]


@pytest.mark.parametrize("initializer", ALL, ids=lambda i: type(i).__name__)
def test_float32_shape_and_reproducibility(initializer):
    a = initializer((6, 4), 123)
    assert a.dtype == np.float32 and a.shape == (6, 4)
    np.testing.assert_array_equal(a, initializer((6, 4), 123))
    gen = np.random.default_rng(5)
    first, second = initializer((6, 4), gen), initializer((6, 4), gen)
    gen = np.random.default_rng(5)
    np.testing.assert_array_equal(first, initializer((6, 4), gen))
    np.testing.assert_array_equal(second, initializer((6, 4), gen))
    if not isinstance(initializer, Constant):
        assert not np.array_equal(first, second)              # the Generator advanced
        assert not np.array_equal(a, initializer((6, 4), 124))


def test_no_rng_follows_numpy_global_seed():
    np.random.seed(42)
    a = HeNormal()((5, 5))
    np.random.seed(42)
    np.testing.assert_array_equal(a, HeNormal()((5, 5)))
    assert not np.array_equal(a, HeNormal()((5, 5)))


def test_normal_and_uniform_moments():
    assert_moments(Normal(2.0, 3.0)((N,), 0), 2.0, 3.0)
    u = Uniform(-1.0, 3.0)((N,), 1)
    assert u.min() >= -1.0 and u.max() <= 3.0
    assert_moments(u, 1.0, 4.0 / math.sqrt(12))


def test_constants():
    np.testing.assert_array_equal(Constant(0.25)((2, 3)), np.full((2, 3), 0.25, np.float32))
    assert Zeros()((3,)).tolist() == [0.0, 0.0, 0.0]
    assert Ones()(2).tolist() == [1.0, 1.0]


def truncated_moments(mean, std, low, high):
    a, b = (low - mean) / std, (high - mean) / std
    mass = cdf(b) - cdf(a)
    m = mean + std * (phi(a) - phi(b)) / mass
    var = std ** 2 * (1 + (a * phi(a) - b * phi(b)) / mass - ((phi(a) - phi(b)) / mass) ** 2)
    return m, math.sqrt(var)


def test_truncated_normal_default_bounds_and_moments():
    x = TruncatedNormal(mean=1.0, std=0.5)((N,), 2)
    assert x.min() >= 0.0 and x.max() <= 2.0           # mean -/+ 2 std
    assert x.min() < 0.01 and x.max() > 1.99           # ... and the tails reach them
    m, s = truncated_moments(1.0, 0.5, 0.0, 2.0)
    assert s == pytest.approx(0.5 * 0.8796, rel=1e-3)  # the known +-2 sigma shrink
    assert_moments(x, m, s)


def test_truncated_normal_asymmetric_bounds():
    x = TruncatedNormal(mean=1.0, std=2.0, low=0.0, high=6.0)((N,), 3)
    assert x.min() >= 0.0 and x.max() <= 6.0
    assert_moments(x, *truncated_moments(1.0, 2.0, 0.0, 6.0))
    degenerate = TruncatedNormal(mean=0.3, std=0.0)((4,), 0)
    np.testing.assert_array_equal(degenerate, np.full(4, 0.3, np.float32))


# -- fans and the fan-scaled initializers ---------------------------------------------------------

@pytest.mark.parametrize("shape, fans", [
    ((784, 128), (784, 128)),              # dense, stored (in_features, out_features)
    ((64, 32, 3, 3), (32 * 9, 64 * 9)),    # conv (O, C, KH, KW)
    ((8, 4, 5), (4 * 5, 8 * 5)),           # conv1d (O, C, K)
    ((10,), (10, 10)),
    ((), (1, 1)),
])
def test_get_fans(shape, fans):
    assert get_fans(shape) == fans


@pytest.mark.parametrize("initializer, shape, bound_or_std", [
    (XavierUniform(), (300, 200), ("bound", math.sqrt(6 / 500))),
    (XavierUniform(gain=2.0), (16, 8, 5, 5), ("bound", 2 * math.sqrt(6 / (200 + 400)))),
    (HeUniform(), (64, 32, 3, 3), ("bound", math.sqrt(6 / 288))),
    (XavierNormal(), (16, 8, 5, 5), ("std", math.sqrt(2 / 600))),
    (HeNormal(), (500, 300), ("std", math.sqrt(2 / 500))),
    (HeNormal(gain=0.5), (64, 32, 3, 3), ("std", 0.5 * math.sqrt(2 / 288))),
], ids=lambda v: type(v).__name__ if isinstance(v, init.Initializer) else None)
def test_fan_scaled_distributions(initializer, shape, bound_or_std):
    x = initializer(shape, 11)
    kind, value = bound_or_std
    if kind == "bound":
        assert np.abs(x).max() <= np.float32(value)
        assert np.abs(x).max() > 0.99 * value           # the bound is actually used
        assert_moments(x, 0.0, value / math.sqrt(3))    # U(-a, a) has std a / sqrt(3)
    else:
        assert_moments(x, 0.0, value)


# -- errors and lookup ----------------------------------------------------------------------------

def test_shape_errors():
    with pytest.raises(ShapeError, match=r"concrete shape of non-negative ints, found N"):
        Normal()((sym("N"), 10), 0)
    with pytest.raises(ShapeError, match=r"non-negative dims, found -3"):
        Zeros()((2, -3))
    with pytest.raises(ShapeError, match=r"needs a shape"):
        Ones()(None)
    with pytest.raises(ShapeError, match=r"XavierUniform needs non-zero fans, found fan_in=0"):
        XavierUniform()((0, 5), 0)
    assert Normal()((0, 5), 0).shape == (0, 5)     # empty but well-defined


def test_argument_errors():
    with pytest.raises(ArgumentError, match=r"rng must be an int seed, a numpy Generator or None, "
                                            r"found str"):
        Normal()((2,), "seed")
    with pytest.raises(ArgumentError, match=r"non-negative integer, found -1"):
        Normal()((2,), -1)
    with pytest.raises(ArgumentError, match=r"Normal: std must be finite and >= 0, found -1.0"):
        Normal(std=-1)
    with pytest.raises(ArgumentError, match=r"Uniform: expected finite a <= b, found a=2.0, b=1.0"):
        Uniform(2, 1)
    with pytest.raises(ArgumentError, match=r"expected low <= high"):
        TruncatedNormal(low=1, high=0)
    with pytest.raises(ArgumentError, match=r"only .* lies in \[5.0, 6.0\]; expected at least"):
        TruncatedNormal(0, 1, low=5, high=6)
    with pytest.raises(ArgumentError, match=r"std=0 puts every sample at mean=3.0, outside"):
        TruncatedNormal(3, 0, low=0, high=1)


def test_get_by_name_class_or_instance():
    assert isinstance(init.get("he_normal"), HeNormal)
    assert isinstance(init.get("Glorot_Uniform"), XavierUniform)
    assert isinstance(init.get(Zeros), Zeros)
    custom = Normal(0, 0.01)
    assert init.get(custom) is custom
    assert repr(custom) == "Normal(mean=0.0, std=0.01)"
    with pytest.raises(ArgumentError, match=r"unknown initializer 'kaiming'; expected an "
                                            r"Initializer or one of normal, truncated_normal"):
        init.get("kaiming")
