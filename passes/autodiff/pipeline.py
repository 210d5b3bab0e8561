"""`autodiff` as a registered pass, so pipelines and `graphc opt` can run it:

    autodiff                               d(only output)/d(every param input)
    autodiff{loss=loss, wrt="w1,b1,x"}     named output, named inputs (any role)

It adds outputs `grad_<input>` (see core.autodiff) and reports how many gradients it added and
how many backward nodes it appended.
"""
from __future__ import annotations

from ir.errors import GradientError

from ..registry import PassOption, function_pass
from .core import autodiff


@function_pass("autodiff", "append reverse-mode gradients as grad_<input> outputs",
               options=[PassOption("loss", str, "", "the loss output (default: the only output)"),
                        PassOption("wrt", str, "", "comma-separated input names (default: "
                                                   "every param input)")])
def differentiate(graph, ctx, loss="", wrt=""):
    if not loss:
        if len(graph.output_names) != 1:
            raise GradientError(f"autodiff: graph {graph.name!r} has outputs "
                                f"{graph.output_names}; name the loss with "
                                "autodiff{loss=<output>}")
        loss = graph.output_names[0]
    names = [n.strip() for n in wrt.split(",") if n.strip()] if wrt else \
        [v.name for v in graph.inputs_with_role("param")]
    if not names:
        raise GradientError(f"autodiff: graph {graph.name!r} has no param inputs; name the "
                            'inputs to differentiate with autodiff{wrt="x,w"}')
    out = autodiff(graph, loss, names)
    return out, {"gradients": len(names), "backward_nodes": len(out.nodes) - len(graph.nodes)}
