"""Regenerate the traced inputs of tests/passes/golden/fuse (softmax cross-entropy forward +
backward, an MLP layer with its backward, an Adam update) from the front end and autodiff:

    python tests/passes/make_fuse_goldens.py

The .gir files are checked in; this script documents where they came from. Locations are
dropped (they would name this script's lines)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import graphc  # noqa: E402
from graphc.autograd import grad  # noqa: E402
from graphc.losses import SoftmaxCrossEntropy  # noqa: E402
from ir.location import UNKNOWN  # noqa: E402
from ir.serialize import save_gir  # noqa: E402
from passes import run_pipeline  # noqa: E402

OUT = Path(__file__).resolve().parent / "golden" / "fuse"


def _clean(g):
    g = run_pipeline(g, "shape-infer,simplify,cse,dce")
    for n in g.nodes:
        n.loc = UNKNOWN
    return g


def softmax_ce():
    def step(logits, labels):
        loss = SoftmaxCrossEntropy()(logits, labels)
        (dlogits,) = grad(loss, [logits])
        return {"loss": loss, "dlogits": dlogits}
    return graphc.trace(step, logits=graphc.spec(("N", 10)),
                        labels=graphc.spec(("N",), "i64"), name="softmax_ce")


def mlp_layer():
    rng = np.random.default_rng(0)

    def step(x, dy):
        w = graphc.param("w", rng.standard_normal((6, 5)).astype(np.float32))
        b = graphc.param("b", np.zeros(5, np.float32))
        h = graphc.relu(x @ w + b)
        loss = graphc.sum(h * dy)
        gw, gb, gx = grad(loss, [w, b, x])
        return {"h": h, "gw": gw, "gb": gb, "gx": gx}
    return graphc.trace(step, x=graphc.spec(("N", 6)), dy=graphc.spec(("N", 5)),
                        name="mlp_layer")


def adam():
    from graphc.optim import Adam
    opt = Adam(lr=0.01)
    w0 = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    opt.init_state({"w": w0})

    def step(g, lr, t):
        w = graphc.param("w", w0)
        (name, new_w), *slots = opt.build_update({"w": w}, {"w": g}, lr, t)
        return {"new_w": new_w, **{f"new_{k}": v for k, v in slots}}
    return graphc.trace(step, g=graphc.spec((3, 4)), lr=graphc.spec(()),
                        t=graphc.spec((), "i64"), name="adam")


if __name__ == "__main__":
    for make in (softmax_ce, mlp_layer, adam):
        g = _clean(make())
        save_gir(g, OUT / f"{g.name}.gir")
        print(f"wrote {g.name}.gir: {len(g.nodes)} nodes")
