"""tests/runtime helpers (rt_harness, rt_cases) import as plain modules."""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.append(_HERE)


def pytest_terminal_summary(terminalreporter):
    """Print how many op/shape cases the differential suite ran (when it ran)."""
    counts = None
    for name, mod in list(sys.modules.items()):
        if name.endswith("test_differential") and getattr(mod, "CASE_COUNTS", None):
            counts = mod.CASE_COUNTS
            break
    if counts:
        cases = sum(c for c, _ in counts.values())
        runs = sum(r for _, r in counts.values())
        per_family = ", ".join(f"{k} {c}" for k, (c, _) in sorted(counts.items()))
        terminalreporter.write_line(f"runtime differential suite: {cases} op/shape cases, "
                                    f"{runs} compiled-vs-interpreter runs ({per_family})")
