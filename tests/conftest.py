"""Shared pytest configuration."""
import os
import sys

# Shared test helpers (e.g. tests/strategies.py) import as plain modules: `import strategies`.
# The repository root goes first so that tests/ir, tests/passes... (folders without
# __init__.py) can never shadow the real packages as namespace packages.
_TESTS = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(_TESTS), _TESTS]

import numpy as np
import pytest

# Hypothesis profile: thorough enough to find bugs, bounded so CI stays within its budget.
try:
    from hypothesis import HealthCheck, settings
    settings.register_profile("ci", max_examples=60, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # hypothesis is in the `test` extra
    pass


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
