"""graphc.optim: every optimizer's compiled update (the Model's apply entry point) against an
independent float64 numpy implementation over several steps, with and without weight decay;
schedulers against tinynn's incremental rules; changing the learning rate never recompiles."""
import math

import numpy as np
import pytest

import graphc as gc
from graphc import optim
from graphc.losses import MSE
from graphc.nn import Dense, Net
from ir.errors import AttrError
from runtime import COMPILE_CACHE


# -- independent numpy references (float64) ---------------------------------------------------
class Reference:
    """One optimizer's rule written from its paper / tinynn's formulas."""

    def __init__(self, kind, lr, wd=0.0, decoupled=False, **hp):
        self.kind, self.lr, self.wd, self.decoupled, self.hp = kind, lr, wd, decoupled, hp
        self.state = {}
        self.t = 0

    def step(self, params, grads):
        self.t += 1
        return {k: self._one(k, params[k].astype(np.float64), grads[k].astype(np.float64))
                for k in params}

    def _one(self, key, w, g):
        hp, lr, t = self.hp, self.lr, self.t
        s = self.state.setdefault(key, {})
        if self.wd and not self.decoupled:
            g = g + self.wd * w
        z = np.zeros_like(w)
        if self.kind == "sgd":
            new = w - lr * g
        elif self.kind == "momentum":
            s["acc"] = hp["momentum"] * s.get("acc", z) + g
            new = w - lr * s["acc"]
        elif self.kind == "rmsprop":
            ms = hp["decay"] * s.get("ms", z) + (1 - hp["decay"]) * g * g
            s["ms"] = ms
            s["mom"] = hp["momentum"] * s.get("mom", z) + lr * g / np.sqrt(ms + hp["epsilon"])
            new = w - s["mom"]
        elif self.kind == "adagrad":
            s["G"] = s.get("G", z) + g * g
            new = w - lr * g / np.sqrt(s["G"] + hp["epsilon"])
        elif self.kind == "adadelta":
            rho, eps = hp["decay"], hp["epsilon"]
            s["Eg"] = rho * s.get("Eg", z) + (1 - rho) * g * g
            dx = np.sqrt(s.get("Ed", z) + eps) / np.sqrt(s["Eg"] + eps) * g
            s["Ed"] = rho * s.get("Ed", z) + (1 - rho) * dx * dx
            new = w - lr * dx
        elif self.kind in ("adam", "radam"):
            b1, b2, eps = hp["beta1"], hp["beta2"], hp["epsilon"]
            s["m"] = b1 * s.get("m", z) + (1 - b1) * g
            s["v"] = b2 * s.get("v", z) + (1 - b2) * g * g
            m_hat = s["m"] / (1 - b1 ** t)
            v_hat = s["v"] / (1 - b2 ** t)
            if self.kind == "adam":
                new = w - lr * m_hat / (np.sqrt(v_hat) + eps)
            else:
                rho_inf = 2 / (1 - b2) - 1
                rho_t = rho_inf - 2 * t * b2 ** t / (1 - b2 ** t)
                if rho_t > 4:
                    r = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf
                                  / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
                    new = w - lr * r * m_hat / (np.sqrt(v_hat) + eps)
                else:
                    new = w - lr * m_hat
        else:
            raise AssertionError(self.kind)
        if self.wd and self.decoupled:
            new = new - lr * self.wd * w
        return new


CASES = [
    ("sgd", optim.SGD(lr=0.1), {}),
    ("sgd", optim.SGD(lr=0.1, weight_decay=0.05), {"wd": 0.05}),
    ("sgd", optim.SGD(lr=0.1, weight_decay=0.05, decoupled_weight_decay=True),
     {"wd": 0.05, "decoupled": True}),
    ("momentum", optim.Momentum(lr=0.05, momentum=0.8), {"momentum": 0.8}),
    ("momentum", optim.Momentum(lr=0.05, momentum=0.8, weight_decay=0.01),
     {"momentum": 0.8, "wd": 0.01}),
    ("rmsprop", optim.RMSProp(lr=0.01, decay=0.9), {"decay": 0.9, "momentum": 0.0,
                                                     "epsilon": 1e-8}),
    ("rmsprop", optim.RMSProp(lr=0.01, decay=0.9, momentum=0.5, weight_decay=0.1),
     {"decay": 0.9, "momentum": 0.5, "epsilon": 1e-8, "wd": 0.1}),
    ("adagrad", optim.Adagrad(lr=0.1), {"epsilon": 1e-8}),
    ("adadelta", optim.Adadelta(lr=1.0, decay=0.9, epsilon=1e-6), {"decay": 0.9,
                                                                   "epsilon": 1e-6}),
    ("adam", optim.Adam(lr=0.01), {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}),
    ("adam", optim.Adam(lr=0.01, beta1=0.5, beta2=0.9, weight_decay=0.1),
     {"beta1": 0.5, "beta2": 0.9, "epsilon": 1e-8, "wd": 0.1}),
    ("adam", optim.Adam(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
     {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "wd": 0.1, "decoupled": True}),
    ("radam", optim.RAdam(lr=0.01), {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}),
]


def _case_id(case):
    kind, opt, hp = case
    extra = ("_wd" if hp.get("wd") else "") + ("_decoupled" if hp.get("decoupled") else "")
    return kind + extra + ("_mom" if hp.get("momentum") else "")


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_compiled_update_matches_numpy_for_several_steps(case, rng):
    kind, opt, hp = case
    model = gc.Model(Net([Dense(3)], seed=1), MSE(), opt).build((4,))
    hp = dict(hp)
    ref = Reference(kind, opt.lr, hp.pop("wd", 0.0), hp.pop("decoupled", False), **hp)
    params = {k: v.copy() for k, v in model.params.items()}
    steps = 8 if kind == "radam" else 5          # RAdam rectifies from step 5 (beta2=0.999)
    for step in range(1, steps + 1):
        grads = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in params.items()}
        model.apply_grads(grads)
        want = ref.step(params, grads)
        for k in params:     # compare the updates themselves, not just the new values
            np.testing.assert_allclose(model.params[k] - params[k], want[k] - params[k],
                                       rtol=1e-4, atol=1e-7, err_msg=f"{kind} step {step} {k}")
        params = {k: model.params[k].copy() for k in params}
    assert model.step_count == steps
    slots = set(opt.state)
    assert all(name.startswith("opt.") for name in slots)
    assert len(slots) == len(params) * len(opt.slots)


def test_radam_switches_from_sgd_like_to_rectified_steps():
    """rho_t grows with t: with beta2=0.999 steps 1-4 are plain momentum steps and later ones
    rectified, so the 8-step comparison above covers both branches."""
    b2 = 0.999
    rho_inf = 2 / (1 - b2) - 1
    rho = [rho_inf - 2 * t * b2 ** t / (1 - b2 ** t) for t in range(1, 9)]
    assert [r > 4 for r in rho] == [False] * 4 + [True] * 4


def test_optimizer_argument_errors():
    with pytest.raises(AttrError, match=r"beta1 must be in \[0.0, 1.0\)"):
        optim.Adam(beta1=1.0)
    with pytest.raises(AttrError, match="lr must be a finite number"):
        optim.SGD(lr=float("nan"))
    with pytest.raises(AttrError, match=r"weight_decay must be in"):
        optim.SGD(weight_decay=-1)
    assert isinstance(optim.get("adam"), optim.Adam)
    with pytest.raises(AttrError, match="unknown optimizer"):
        optim.get("lbfgs")


# -- schedulers ---------------------------------------------------------------------------------
def tinynn_incremental(kind, lr0, steps, **kw):
    """tinynn's schedulers: each step changes the CURRENT lr."""
    lr, out = lr0, []
    for t in range(1, steps + 1):
        if kind == "step":
            lr = lr * (kw["gamma"] if t % kw["step_size"] == 0 else 1.0)
        elif kind == "multistep":
            lr = lr * (kw["gamma"] if t in kw["milestones"] else 1.0)
        elif kind == "exponential":
            if t <= kw["decay_steps"]:
                lr = lr0 * kw["decay_rate"] ** (t / kw["decay_steps"])
        elif kind == "linear":
            delta = (kw["final_lr"] - lr0) / kw["decay_steps"]
            if kw["start_step"] < t <= kw["start_step"] + kw["decay_steps"]:
                lr = lr + delta
        out.append(lr)
    return out


@pytest.mark.parametrize("kind, make, kw", [
    ("step", optim.StepLR, {"step_size": 3, "gamma": 0.5}),
    ("multistep", optim.MultiStepLR, {"milestones": [2, 5, 6], "gamma": 0.1}),
    ("exponential", optim.ExponentialLR, {"decay_steps": 7, "decay_rate": 0.3}),
    ("linear", optim.LinearLR, {"decay_steps": 6, "final_lr": 0.01, "start_step": 3}),
])
def test_schedulers_match_tinynn(kind, make, kw):
    opt = optim.SGD(lr=0.2)
    sched = make(opt, **kw)
    got = [sched.step() for _ in range(15)]
    np.testing.assert_allclose(got, tinynn_incremental(kind, 0.2, 15, **kw), rtol=1e-12)
    assert opt.lr == got[-1] == sched.curr_lr


def test_cyclical_lr_is_a_triangle_between_min_and_max():
    opt = optim.SGD(lr=0.5)
    sched = optim.CyclicalLR(opt, cyclical_steps=8, max_lr=0.9, min_lr=0.1)
    assert opt.lr == pytest.approx(0.1)
    lrs = [sched.step() for _ in range(16)]
    np.testing.assert_allclose(lrs[:8], [0.3, 0.5, 0.7, 0.9, 0.7, 0.5, 0.3, 0.1], rtol=1e-12)
    np.testing.assert_allclose(lrs[8:], lrs[:8], rtol=1e-12)


def test_scheduler_argument_errors():
    opt = optim.SGD()
    with pytest.raises(AttrError, match="step_size must be an int >= 1"):
        optim.StepLR(opt, 0)
    with pytest.raises(AttrError, match="milestones must be increasing"):
        optim.MultiStepLR(opt, [3, 2])
    with pytest.raises(AttrError, match="min_lr <= max_lr"):
        optim.CyclicalLR(opt, 4, max_lr=0.1, min_lr=0.2)
    with pytest.raises(AttrError, match="expected a graphc optimizer"):
        optim.StepLR("sgd", 2)


def test_changing_the_learning_rate_never_recompiles(rng):
    """The fused step reads lr at run time: each scheduler step takes effect at once and
    the train step is compiled exactly once."""
    opt = optim.SGD(lr=0.5)
    model = gc.Model(Net([Dense(2)], seed=3), MSE(), opt)
    x = rng.normal(size=(8, 3)).astype(np.float32)
    y = rng.normal(size=(8, 2)).astype(np.float32)
    model.train_step(x, y)
    model.backward(model.forward(x), y)            # compile the grads graph used below
    compiled, misses = model.compilations, COMPILE_CACHE.misses
    sched = optim.StepLR(opt, step_size=1, gamma=0.5)
    train_steps = [k for k in model._entries if k[0] == "train_step"]
    for _ in range(3):
        lr = sched.step()
        before = {k: v.copy() for k, v in model.params.items()}
        _, grads = model.backward(model.forward(x), y)
        expected = {k: before[k] - lr * grads[k] for k in before}
        model.train_step(x, y)
        for k in before:
            np.testing.assert_allclose(model.params[k], expected[k], rtol=1e-5, atol=1e-7)
    assert model.compilations == compiled
    assert COMPILE_CACHE.misses == misses
    assert [k for k in model._entries if k[0] == "train_step"] == train_steps == \
        [("train_step", True, ("f", (2,)))]
