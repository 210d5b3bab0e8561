"""The rule table: every registered op is either differentiable (a VJP rule) or not.

A test asserts that each op in `ir.all_ops()` is in exactly one of `VJP_RULES` and
`NON_DIFFERENTIABLE`, so a new primitive cannot be added without deciding its gradient.

NON_DIFFERENTIABLE ops stop the gradient: their results are piecewise constant in their inputs
(comparisons, logic, argmax), integer- or bool-valued, or do not depend on any differentiable
input at all (constant, iota, dim_value, random_uniform). A cast to int/bool is handled by the
cast rule (it contributes nothing), since `cast` between floats is differentiable.
"""
from __future__ import annotations

from .rules_conv_pool import RULES as _CONV_POOL
from .rules_elementwise import RULES as _ELEMENTWISE
from .rules_movement import RULES as _MOVEMENT
from .rules_reductions import RULES as _REDUCTIONS


def _merge(*tables) -> dict:
    out: dict = {}
    for table in tables:
        clash = set(out) & set(table)
        if clash:
            raise AssertionError(f"VJP rules defined twice: {sorted(clash)}")
        out.update(table)
    return out


VJP_RULES: dict = _merge(_ELEMENTWISE, _MOVEMENT, _REDUCTIONS, _CONV_POOL)

# `fused` (a group made by the fusion pass) is never differentiated: pipelines run autodiff
# BEFORE fusion, so a graph being differentiated has no fused nodes yet.
NON_DIFFERENTIABLE: set = {
    "fused",
    "less", "less_equal", "greater", "greater_equal", "equal", "not_equal",
    "logical_and", "logical_or", "logical_not",
    "argmax", "iota", "dim_value", "random_uniform", "constant",
}
