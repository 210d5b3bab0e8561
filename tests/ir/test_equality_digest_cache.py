"""structural_hash remembers the digests of large arrays per array object (ir/equality.py):
the remembered digest is used only while the array is unchanged; edits in place, a new
array with other bytes, or the same bytes in a new array all give the right hash."""
from __future__ import annotations

import numpy as np

from ir import Graph, TensorType, emit, structural_hash


def _graph(w: np.ndarray) -> Graph:
    g = Graph("g")
    x = g.add_input("x", TensorType(("N", w.shape[0]), "f32"))
    p = g.add_input("w", TensorType(w.shape, "f32"), "param", w)
    g.add_output(emit(g, "matmul", [x, p], {"transpose_a": False, "transpose_b": False}))
    return g


def test_hash_follows_array_contents():
    w = np.random.default_rng(0).standard_normal((300, 200)).astype(np.float32)   # 240 KB
    g = _graph(w)
    first = structural_hash(g)
    assert structural_hash(g) == first                     # remembered, unchanged
    assert structural_hash(_graph(w.copy())) == first      # same bytes, another object
    w *= 0.5                                               # an optimizer-like edit in place
    assert structural_hash(g) != first
    halved = structural_hash(g)
    old = w[0, 0]
    w[0, 0] = old + 1.0                                    # a single element (sampled end)
    assert structural_hash(g) != halved
    w[0, 0] = old
    assert structural_hash(g) == halved
    w[-1, -1] = 7.0                                        # the last bytes are always sampled
    assert structural_hash(g) != halved


def test_small_arrays_are_always_hashed_in_full():
    w = np.ones((4, 3), np.float32)
    g = _graph(w)
    first = structural_hash(g)
    w[1, 1] = 2.0
    assert structural_hash(g) != first


def test_edit_of_an_unsampled_byte_of_a_writeable_array_is_seen():
    w = np.zeros((512, 512), np.float32)                   # 1 MiB: the sample skips most bytes
    g = _graph(w)
    first = structural_hash(g)
    w.reshape(-1)[12345] = 1.0                             # not at a sampled offset
    assert structural_hash(g) != first


def test_read_only_arrays_are_remembered_and_views_of_writeable_ones_are_not():
    from ir import equality
    frozen = np.random.default_rng(1).standard_normal((300, 200)).astype(np.float32)
    frozen.setflags(write=False)
    first = structural_hash(_graph(frozen))
    assert id(frozen) in equality._DIGESTS
    assert structural_hash(_graph(frozen)) == first
    base = np.zeros((300, 200), np.float32)
    view = base[:]
    view.setflags(write=False)                              # read-only, but base is not
    before = structural_hash(_graph(view))
    assert id(view) not in equality._DIGESTS
    base.reshape(-1)[777] = 3.0
    assert structural_hash(_graph(view)) != before
