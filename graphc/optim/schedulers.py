"""Learning-rate schedulers (tinynn names and arguments).

A scheduler changes `optimizer.lr`, a Python float that the Model feeds to the compiled step
as a runtime scalar on every call, so changing it never recompiles anything.

    scheduler = StepLR(optimizer, step_size=10, gamma=0.5)
    for epoch in range(epochs):
        ...train one epoch...
        scheduler.step()             # t += 1; optimizer.lr = lr_at(t)

Each scheduler is a closed-form `lr_at(t)` of its step count t (t = 0 gives the optimizer's
learning rate when the scheduler was made), so its state is just t:
    StepLR         lr0 * gamma ** (t // step_size)
    MultiStepLR    lr0 * gamma ** (number of milestones <= t)
    ExponentialLR  lr0 * decay_rate ** (min(t, decay_steps) / decay_steps)
    LinearLR       lr0 + (final_lr - lr0) * clip((t - start_step) / decay_steps, 0, 1)
    CyclicalLR     triangular cycles between min_lr and max_lr (Smith 2017): min_lr at the
                   start of each cycle of `cyclical_steps` steps, max_lr half way through
These equal tinynn's incremental updates for StepLR, MultiStepLR, ExponentialLR and
LinearLR. CyclicalLR is the symmetric triangle of the paper (tinynn's increments drift one
step below min_lr at the end of each cycle).
"""
from __future__ import annotations

import math
import numbers

from ir.errors import AttrError
from ir.location import user_frame_loc

from .optimizers import Optimizer


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise AttrError(message, user_frame_loc())


def _is_number(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(float(x))


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


class BaseScheduler:
    def __init__(self, optimizer: Optimizer):
        _check(isinstance(optimizer, Optimizer), f"{type(self).__name__}: expected a graphc "
               f"optimizer, found {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.initial_lr = optimizer.lr
        self.t = 0

    def step(self) -> float:
        """Advance one step (an epoch or a batch: the caller decides) and set the optimizer's
        learning rate; returns it."""
        self.t += 1
        self.optimizer.lr = self.lr_at(self.t)
        return self.optimizer.lr

    @property
    def curr_lr(self) -> float:
        return self.optimizer.lr

    def lr_at(self, t: int) -> float:
        raise NotImplementedError


class StepLR(BaseScheduler):
    """Multiply the learning rate by gamma every step_size steps."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        super().__init__(optimizer)
        _check(_is_int(step_size) and step_size >= 1,
               f"StepLR: step_size must be an int >= 1, found {step_size!r}")
        _check(_is_number(gamma) and gamma >= 0, f"StepLR: gamma must be >= 0, found {gamma!r}")
        self.step_size, self.gamma = int(step_size), float(gamma)

    def lr_at(self, t):
        return self.initial_lr * self.gamma ** (t // self.step_size)


class MultiStepLR(BaseScheduler):
    """Multiply the learning rate by gamma when t reaches each milestone."""

    def __init__(self, optimizer, milestones, gamma: float = 0.1):
        super().__init__(optimizer)
        milestones = list(milestones)
        _check(all(_is_int(m) and m >= 1 for m in milestones)
               and all(a < b for a, b in zip(milestones, milestones[1:])),
               f"MultiStepLR: milestones must be increasing ints >= 1, found {milestones!r}")
        _check(_is_number(gamma) and gamma >= 0,
               f"MultiStepLR: gamma must be >= 0, found {gamma!r}")
        self.milestones, self.gamma = [int(m) for m in milestones], float(gamma)

    def lr_at(self, t):
        return self.initial_lr * self.gamma ** sum(1 for m in self.milestones if m <= t)


class ExponentialLR(BaseScheduler):
    """lr0 * decay_rate ** (t / decay_steps), held after decay_steps."""

    def __init__(self, optimizer, decay_steps: int, decay_rate: float = 1 / math.e):
        super().__init__(optimizer)
        _check(_is_int(decay_steps) and decay_steps >= 1,
               f"ExponentialLR: decay_steps must be an int >= 1, found {decay_steps!r}")
        _check(_is_number(decay_rate) and decay_rate > 0,
               f"ExponentialLR: decay_rate must be > 0, found {decay_rate!r}")
        self.decay_steps, self.decay_rate = int(decay_steps), float(decay_rate)

    def lr_at(self, t):
        return self.initial_lr * self.decay_rate ** (min(t, self.decay_steps) / self.decay_steps)


class LinearLR(BaseScheduler):
    """Linear from lr0 to final_lr over decay_steps steps starting after start_step."""

    def __init__(self, optimizer, decay_steps: int, final_lr: float = 1e-6,
                 start_step: int = 0):
        super().__init__(optimizer)
        _check(_is_int(decay_steps) and decay_steps >= 1,
               f"LinearLR: decay_steps must be an int >= 1, found {decay_steps!r}")
        _check(_is_number(final_lr) and final_lr >= 0,
               f"LinearLR: final_lr must be >= 0, found {final_lr!r}")
        _check(_is_int(start_step) and start_step >= 0,
               f"LinearLR: start_step must be an int >= 0, found {start_step!r}")
        self.decay_steps, self.final_lr = int(decay_steps), float(final_lr)
        self.start_step = int(start_step)

    def lr_at(self, t):
        frac = min(max(t - self.start_step, 0), self.decay_steps) / self.decay_steps
        return self.initial_lr + (self.final_lr - self.initial_lr) * frac


class CyclicalLR(BaseScheduler):
    """Triangular cycles between min_lr and max_lr, cyclical_steps steps per cycle."""

    def __init__(self, optimizer, cyclical_steps: int, max_lr: float = 1e-2,
                 min_lr: float = 1e-3):
        super().__init__(optimizer)
        _check(_is_int(cyclical_steps) and cyclical_steps > 2,
               f"CyclicalLR: cyclical_steps must be an int > 2, found {cyclical_steps!r}")
        _check(_is_number(max_lr) and _is_number(min_lr) and 0 <= min_lr <= max_lr,
               f"CyclicalLR: expected 0 <= min_lr <= max_lr, found min_lr={min_lr!r}, "
               f"max_lr={max_lr!r}")
        self.cyclical_steps = int(cyclical_steps)
        self.max_lr, self.min_lr = float(max_lr), float(min_lr)
        optimizer.lr = self.lr_at(0)

    def lr_at(self, t):
        half = self.cyclical_steps / 2.0
        phase = (t % self.cyclical_steps) / half         # 0 .. 2
        return self.min_lr + (self.max_lr - self.min_lr) * (1.0 - abs(phase - 1.0))
