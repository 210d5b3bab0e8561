"""The default pass pipeline of each optimisation level (`graphc.compile(..., opt_level=)`,
`graphc opt -O2`, and so every Model).

    -O0  nothing: the graph as traced (one kernel per node)
    -O1  cleanup: shape-infer, simplify, cse, dce
    -O2  everything: shape-infer, constant-fold, simplify, cse, dce, fuse, plan-memory
    -O3  as -O2 (the level also asks LLVM for O3)

Order: constant folding first so simplify sees folded constants (and its scalar-broadcast
canonical form is not undone); simplify before cse so rewritten expressions can merge; dce
after both removes what they left unused; fusion last among the rewrites, on the final set
of nodes; plan-memory last, over the final order. Autodiff is not in these pipelines: the
front end (or an explicit `autodiff` pass) differentiates before they run, so fusion never
meets a graph it would have to differentiate. Fast-math (`fast_math=True`) only switches on
simplify's fast-math rules.
"""
from __future__ import annotations

from ir import PassError

LEVELS = {
    0: "",
    1: "shape-infer,simplify,cse,dce",
    2: "shape-infer,constant-fold,simplify,cse,dce,fuse,plan-memory",
    3: "shape-infer,constant-fold,simplify,cse,dce,fuse,plan-memory",
}


def pipeline_for(opt_level: int, fast_math: bool = False) -> str:
    """The pipeline text of an optimisation level."""
    if opt_level not in LEVELS:
        raise PassError(f"opt_level must be one of {sorted(LEVELS)}, found {opt_level!r}")
    text = LEVELS[opt_level]
    if fast_math and "simplify" in text:
        text = text.replace("simplify", "simplify{fast-math=true}")
    return text
