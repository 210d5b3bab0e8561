"""graphc's performance suite: `python -m benchmarks` (see __main__.py).

Every workload runs in this one process against whichever peers are installed (numpy
always; PyTorch, JAX and onnxruntime when importable), all with the same thread count (2 by
default), warm-up, many repetitions and medians. Peers are optional: a missing one is
reported as "not installed" and skipped; none is a graphc dependency.
"""
