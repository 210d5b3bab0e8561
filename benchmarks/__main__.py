"""`python -m benchmarks [--quick] [--only W1,W2,...] [--no-write]`

Runs W1-W5 (see the issue-6 section of RESULTS.md) in this process against the installed
peers with 2 threads everywhere, prints one table per workload with medians and ratios, and
rewrites the issue-6 section of benchmarks/RESULTS.md (other sections are kept as they are).
Before measuring it checks that no other process is loading the machine and waits (up to two
minutes) for quiet; the busy fraction it saw is recorded with the results. Before and after
each workload block it probes where the host placed the two CPUs (placement.py), waits (up to
a minute) for the near placement, and records the round trips it saw.
"""
from __future__ import annotations

import argparse
import os
import sys

THREADS = 2
# thread counts must be fixed before the peers' libraries load
os.environ.setdefault("GRAPHC_NUM_THREADS", str(THREADS))
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
os.environ.setdefault("MKL_NUM_THREADS", str(THREADS))
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(THREADS))
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=true "
                      f"intra_op_parallelism_threads={THREADS}")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

from . import placement, report, workloads  # noqa: E402
from .compile_time import w5_compile_time  # noqa: E402
from .peak import measure_peak  # noqa: E402
from .timing import wait_until_quiet  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--only", default="W1,W2,W3,W4,W5", help="comma-separated workloads")
    ap.add_argument("--no-write", action="store_true", help="do not rewrite RESULTS.md")
    args = ap.parse_args(argv)
    only = {w.strip().upper() for w in args.only.split(",")}
    scale = 0.2 if args.quick else 1.0

    if "torch" in sys.modules or workloads.available("torch"):
        import torch
        torch.set_num_threads(THREADS)
    busy = wait_until_quiet()
    env = report.environment(busy)
    print(report.environment_text(env))
    peak = measure_peak()
    print(f"FP32 FMA peak measured here: {peak[1]:.0f} GFLOP/s on 1 thread, "
          f"{peak[2]:.0f} on 2\n")
    results = {"peak": peak, "placement": {}}
    blocks = [
        ("W1", lambda: workloads.w1_mlp_train(int(300 * scale)), report.table_w1),
        ("W2", lambda: workloads.w2_mlp_infer(int(1000 * scale)), report.table_w2),
        ("W3", lambda: workloads.w3_lenet_train(int(100 * scale)), report.table_w3),
        ("W4", workloads.w4_sgemm, lambda r: report.table_w4(r, peak)),
        ("W5", lambda: w5_compile_time(workloads.available("jax")), report.table_w5),
    ]
    for name, run, table in blocks:
        if name not in only:
            continue
        before = placement.wait_for_near()
        results[name] = run()
        results["placement"][name] = dict(before, after=placement.probe())
        print(table(results[name]))
        print(report.placement_line(name, results["placement"][name]))
    targets = report.targets(results)
    print(targets)
    if not args.no_write:
        path = report.write_results(env, results, targets, " ".join(["python -m benchmarks"]
                                                                     + (argv or sys.argv[1:])))
        print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
