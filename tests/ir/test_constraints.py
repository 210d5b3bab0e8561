"""Symbol values a graph cannot run with (ir/constraints.py): a slice from N-3 needs N >= 3.
The interpreter and the native call boundary refuse such a binding with the user's line, and
never read outside a buffer."""
from __future__ import annotations

import numpy as np
import pytest

import graphc
import ir
from ir import ArgumentError, Graph, Loc, TensorType, emit, sym
from ir.constraints import dim_constraints

N = sym("N")
LOC = Loc("model.py", 12, "net/tail")


def _graph(starts, stops, name="tail"):
    g = Graph(name)
    x = g.add_input("x", TensorType(("N", 4), "f32"))
    s = emit(g, "slice", [x], {"starts": starts, "stops": stops, "steps": (1, 1)}, loc=LOC)
    g.add_output(emit(g, "exp", [s]), "y")
    g.add_output(emit(g, "reduce_sum", [x], {"axes": (0,)}), "total")
    return g


LAST_THREE = ((N - 3, 0), (N, 4))       # result f32[3,4]: needs N-3 >= 0 as a start
ALL_BUT_THREE = ((0, 0), (N - 3, 4))    # result f32[N-3,4]: needs N-3 >= 0 as a size


def test_constraints_are_listed_once_with_their_node():
    found = dim_constraints(_graph(*LAST_THREE))
    assert [(str(c.dim), c.op) for c in found] == [("N-3", "slice")]
    assert "start of slice axis 0" in found[0].what and found[0].loc == LOC
    (size,) = dim_constraints(_graph(*ALL_BUT_THREE))
    assert "size of axis 0" in size.what
    assert dim_constraints(_graph((0, 0), (N, 4))) == []    # nothing to check


@pytest.mark.parametrize("bounds", [LAST_THREE, ALL_BUT_THREE], ids=["start", "stop"])
@pytest.mark.parametrize("opt_level", [0, 2])
def test_too_small_inputs_are_refused_by_both_boundaries(bounds, opt_level):
    g = _graph(*bounds, name=f"tail_{opt_level}")
    exe = graphc.compile(g, opt_level=opt_level, cache=False)
    ok = np.arange(20, dtype=np.float32).reshape(5, 4) / 10
    for n in (3, 5):                                       # N = 3 is the smallest valid
        got, ref = exe(ok[:n]), ir.run(g, {"x": ok[:n]})
        np.testing.assert_allclose(got[0], ref["y"], rtol=1e-6)
    small = ok[:2]
    for call in (lambda: ir.run(g, {"x": small}), lambda: exe(small)):
        with pytest.raises(ArgumentError) as e:
            call()
        text = str(e.value)
        assert text.startswith("model.py:12 (net/tail)")
        assert "N-3 >= 0, found -1 with N=2" in text and "slice" in text
    np.testing.assert_allclose(exe(ok)[0], ir.run(g, {"x": ok})["y"], rtol=1e-6)  # still fine
