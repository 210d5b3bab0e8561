"""A guided tour of graphc's passes on a small training computation (forward and backward).

    python examples/passes_tour.py                 # per-pass summary, then -O0 vs -O2
    python examples/passes_tour.py --diff          # plus a unified diff of every change
    python examples/passes_tour.py --print-after fuse,plan-memory
    python examples/passes_tour.py --dump-dir /tmp/tour   # numbered .gir files, one per pass

The function below computes the softmax cross-entropy loss of a 2-layer MLP and its
gradients with respect to every parameter (graphc.grad runs reverse-mode autodiff while the
function is traced, so the backward pass is ordinary IR). The -O2 pipeline then runs pass by
pass under the PassManager with instruments: each pass is timed, reports its statistics,
is verified, and is checked numerically against the reference interpreter on real inputs,
so a pass that changed the results would be named here. Finally the graph is compiled at -O0
and -O2 and both native executables are compared with the interpreter.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

import graphc as gc
import ir
from passes import PassManager
from passes.instruments import Diff, DumpDir, PrintIR, ReferenceCheck, Statistics, Timing, Verify
from passes.pipelines import pipeline_for

FEATURES, HIDDEN, CLASSES = 8, 16, 4


@gc.function(x=gc.spec(("N", FEATURES), "f32"), labels=gc.spec(("N",), "i64"))
def loss_and_grads(x, labels):
    rng = np.random.default_rng(0)
    w1 = gc.param("w1", rng.normal(0, 0.5, (FEATURES, HIDDEN)).astype(np.float32))
    b1 = gc.param("b1", np.zeros(HIDDEN, np.float32))
    w2 = gc.param("w2", rng.normal(0, 0.5, (HIDDEN, CLASSES)).astype(np.float32))
    logits = gc.relu(x @ w1 + b1) @ w2
    log_p = gc.log_softmax(logits)
    loss = -(log_p * gc.one_hot(labels, CLASSES)).sum(axis=1).mean()
    d_w1, d_b1, d_w2 = gc.grad(loss, [w1, b1, w2])
    return {"loss": loss, "d_w1": d_w1, "d_b1": d_b1, "d_w2": d_w2}


def example_inputs(batch: int = 6) -> dict:
    rng = np.random.default_rng(1)
    return {"x": rng.standard_normal((batch, FEATURES)).astype(np.float32),
            "labels": rng.integers(0, CLASSES, batch).astype(np.int64)}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--diff", action="store_true", help="unified diff of every change")
    p.add_argument("--print-after", default=None, metavar="PASSES",
                   help="print the IR after these passes (comma-separated, or 'all')")
    p.add_argument("--dump-dir", default=None, help="write the IR after every pass here")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    """Run the tour; returns {"kernels": {level: kernels per call}, "records": pass records}."""
    args = parse_args(argv)
    graph = loss_and_grads.graph
    inputs = example_inputs()
    out = sys.stdout
    print(f"traced graph {graph.name!r}: {len(graph.nodes)} nodes (forward and backward)")
    instruments = [Verify(), Timing(stream=out), Statistics(stream=out),
                   ReferenceCheck(inputs=inputs)]
    if args.diff:
        instruments.append(Diff(stream=out))
    if args.print_after:
        instruments.append(PrintIR(after=args.print_after, only_on_change=True, stream=out))
    if args.dump_dir:
        instruments.append(DumpDir(args.dump_dir))
    result = PassManager(pipeline_for(2), instruments).run(graph)
    changed = [r.name for r in result.records if r.changed]
    print(f"\nafter -O2: {len(result.graph.nodes)} nodes; passes that changed the graph: "
          f"{', '.join(changed)}")

    reference = ir.run(graph, inputs)
    kernels = {}
    for level in (0, 2):
        exe = gc.compile(graph, opt_level=level)
        got = exe.run(inputs)
        worst = max(float(np.max(np.abs(got[k] - reference[k]))) for k in reference)
        kernels[level] = exe.kernel_count
        print(f"-O{level}: {exe.kernel_count:3d} native kernels per call, largest difference "
              f"from the interpreter {worst:.2e}")
    return {"kernels": kernels, "records": result.records}


if __name__ == "__main__":
    try:
        main()
    except gc.GraphcError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
