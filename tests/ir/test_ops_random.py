"""random_uniform: a counter-based generator re-implemented from its docstring in naive.py.

Checks bit-identity with the independent hash, determinism, that seed and counter each change
the stream, that element i depends only on (seed, counter, i), and the distribution."""
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ir import TensorType, sym  # noqa: E402
from tests.ir import naive  # noqa: E402
from tests.ir.op_harness import check_op, run_op  # noqa: E402

N = sym("N")


def draw(shape, seed=0, counter=None, precision="f32", dtype="f32", counter_dtype=np.int64,
         env=None):
    attrs = {"shape": shape, "seed": seed, "dtype": dtype}
    arrays = [] if counter is None else [np.array(counter, counter_dtype)]
    (y,), _ = run_op("random_uniform", arrays, attrs, precision=precision, env=env)
    return y


def test_hash_known_answers():
    """Fixed points of the docstring's mixer, so the naive hash itself cannot drift."""
    assert naive.hash32(0) == 0
    x = 1
    x ^= x >> 16
    x = (x * 0x7FEB352D) % 2 ** 32
    x ^= x >> 15
    x = (x * 0x846CA68B) % 2 ** 32
    x ^= x >> 16
    assert naive.hash32(1) == x
    assert naive.hash32(2 ** 32 + 1) == naive.hash32(1)     # arithmetic is mod 2**32


@settings(max_examples=25)
@given(shape=st.lists(st.integers(0, 6), min_size=0, max_size=3).map(tuple),
       seed=st.integers(-2 ** 40, 2 ** 40), counter=st.one_of(st.none(), st.integers(-2 ** 40,
                                                                                    2 ** 40)))
def test_bits_match_the_independent_hash(shape, seed, counter):
    want = naive.random_uniform(shape, seed=seed, counter=counter or 0)
    for precision in ("f32", "f64"):
        got = draw(shape, seed, counter, precision)
        assert np.array_equal(got, want), precision     # exact: 24-bit values fit in f32
    got64 = draw(shape, seed, counter, dtype="f64")
    assert got64.dtype == np.float64 and np.array_equal(got64, want)


def test_deterministic_and_every_input_changes_the_stream():
    a = draw((64,), seed=3, counter=10)
    assert np.array_equal(a, draw((64,), seed=3, counter=10))
    assert not np.array_equal(a, draw((64,), seed=3, counter=11))
    assert not np.array_equal(a, draw((64,), seed=4, counter=10))
    assert np.array_equal(draw((64,), seed=3), draw((64,), seed=3, counter=0))
    # counters and seeds are taken mod 2**32, whatever the integer type
    assert np.array_equal(draw((8,), counter=-1), draw((8,), counter=2 ** 32 - 1))
    assert np.array_equal(draw((8,), counter=-1, counter_dtype=np.int32),
                          draw((8,), counter=2 ** 32 - 1))
    assert np.array_equal(draw((8,), seed=2 ** 32 + 5), draw((8,), seed=5))


def test_element_i_depends_only_on_its_row_major_index():
    big = draw((7, 5), seed=9, counter=2).reshape(-1)
    for n in (1, 3, 7):
        small = draw((N, 5), seed=9, counter=2, env={"N": n})
        assert small.shape == (n, 5) and np.array_equal(small.reshape(-1), big[:5 * n])
    assert np.array_equal(draw((35,), seed=9, counter=2), big)


def test_values_are_uniform_on_the_half_open_unit_interval():
    x = draw((200_000,), seed=123, counter=7, precision="f64")
    assert x.min() >= 0.0 and x.max() < 1.0
    assert abs(x.mean() - 0.5) < 0.005 and abs(x.var() - 1 / 12) < 0.002
    counts, _ = np.histogram(x, bins=20, range=(0, 1))
    assert np.all(np.abs(counts / (len(x) / 20) - 1) < 0.05)
    # neighbouring elements are uncorrelated
    assert abs(np.corrcoef(x[:-1], x[1:])[0, 1]) < 0.01


@pytest.mark.parametrize("n", [1, 3, 7])
def test_symbolic_shape_through_the_harness(n):
    check_op("random_uniform", [np.array(5, np.int32)], naive.random_uniform((n, 3), 11, 5),
             {"shape": (N, 3), "seed": 11}, in_types=[TensorType((), "i32")], env={"N": n},
             rtol32=0, atol32=0, rtol64=0, atol64=0)
