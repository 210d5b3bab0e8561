"""ONNX's backend node tests (onnx.backend.test) driven through graphc.onnx.backend.

Every in-scope case (see onnx_backend_cases: the issue's ops, float32 forms) is imported,
compiled to native code (graphc.compile at opt_level 1: the -O1 pass pipeline and LLVM -O1,
to keep CI time down; the kernels are the same code generators) and compared with ONNX's
expected outputs by ONNX's own runner. Documented failures run as expected failures: if one starts
passing, or any other case fails, the suite fails.

GRAPHC_ONNX_OPT_LEVEL=0|2|3 runs the same cases at another level (e.g. to check the -O2
pipeline's fusion against ONNX's expected outputs).
"""
import os
import re
import warnings

import pytest

pytest.importorskip("onnx")

import onnx.backend.test  # noqa: E402

import onnx_backend_cases as cases  # noqa: E402
from graphc.onnx.backend import GraphcBackend  # noqa: E402

OPT_LEVEL = int(os.environ.get("GRAPHC_ONNX_OPT_LEVEL", "1"))
Backend = GraphcBackend.configured(engine="native", opt_level=OPT_LEVEL)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    IN_SCOPE = sorted(c.name for c in cases.in_scope_cases())
    _runner = onnx.backend.test.BackendTest(Backend, __name__)

_wanted = re.compile("^(" + "|".join(re.escape(n) for n in IN_SCOPE) + ")_cpu$")
_runner.include(_wanted.pattern)
for _name in cases.KNOWN_FAILURES:
    _runner.xfail(f"^{re.escape(_name)}_cpu$")

for _cls_name, _cls in _runner.test_cases.items():
    # keep only the in-scope cases (the others would show as thousands of skips)
    for _attr in [a for a in vars(_cls) if a.startswith("test_")]:
        if not _wanted.match(_attr):
            delattr(_cls, _attr)
    if any(a.startswith("test_") for a in vars(_cls)):
        globals()[_cls_name] = _cls


def test_in_scope_pass_rate_is_at_least_95_percent():
    failing = set(cases.KNOWN_FAILURES)
    assert failing <= set(IN_SCOPE), sorted(failing - set(IN_SCOPE))
    assert all(reason.strip() for reason in cases.KNOWN_FAILURES.values())
    passing = len(IN_SCOPE) - len(failing)
    assert len(IN_SCOPE) >= 400          # the scope rule selects ~458 cases of onnx 1.23
    assert passing / len(IN_SCOPE) >= 0.95, (passing, len(IN_SCOPE))


def test_every_in_scope_case_runs_as_a_test():
    found = {name[:-len("_cpu")] for cls in _runner.test_cases.values()
             for name in vars(cls) if name.startswith("test_") and _wanted.match(name)}
    assert found == set(IN_SCOPE)


def test_results_file_lists_exactly_the_documented_failures():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "BACKEND_RESULTS.md")
    text = open(path).read()
    assert f"**In scope: {len(IN_SCOPE)}. " in text, "regenerate with make_backend_results.py"
    failed = set(re.findall(r"^\| FAIL `(\w+)` \| (.+) \|$", text, re.M))
    assert failed == set(cases.KNOWN_FAILURES.items())
    assert "UNEXPECTED" not in text
