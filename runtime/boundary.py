"""The native call boundary: `Executable`'s common call done by a small C extension.

runtime/_boundary.c (built at install time by setup.py, optional) does what
`Executable._fast_call` does (same checks against the shape sets a full check accepted,
fresh outputs or `out=`, a call context of its own, the GIL released around native code):
`exe(x)` on a 4-element add costs ~0.4 us instead of ~3.5 us. Whatever it does not accept
goes back to the Python path, which stays the reference and gives the full checks and clear
errors; without the extension (no C compiler at install time) or with
GRAPHC_NATIVE_BOUNDARY=0 every call takes that path.

    native_state(...)    -> a `_boundary.State` for one executable, or None (Python path)
    dispatcher(name)     -> `Executable.__call__` in C (runs `exe._native`, else calls the
                            Python method `name`), or None without the extension
    unavailable_reason() -> why the extension is not used, or None
"""
from __future__ import annotations

import ctypes
import importlib.util
import os
from typing import Callable, Optional, Sequence

import numpy as np

ENV_VAR = "GRAPHC_NATIVE_BOUNDARY"     # "0": every call takes the Python path
INTERFACE_VERSION = 1                  # of runtime/_boundary.c (State/Dispatch arguments)


def interface_problem(module) -> Optional[str]:
    """Why a built extension must not be used (a .so left from an older checkout whose
    State/Dispatch take other arguments), or None."""
    built = getattr(module, "INTERFACE_VERSION", None)
    if built != INTERFACE_VERSION:
        return (f"the built runtime._boundary has interface version {built}, this code "
                f"needs {INTERFACE_VERSION}: rebuild it (pip install -e .)")
    return None


try:
    from . import _boundary
    _IMPORT_ERROR: Optional[str] = interface_problem(_boundary)
    if _IMPORT_ERROR is not None:
        _boundary = None
except ImportError as e:
    _boundary = None
    if importlib.util.find_spec(f"{__package__}._boundary") is None:   # no C compiler at install
        _IMPORT_ERROR = ("the C extension runtime._boundary is not built; reinstall graphc "
                         "with a C compiler (pip install -e .) for the native call path")
    else:
        _IMPORT_ERROR = f"the C extension runtime._boundary does not load: {e}"

# Executables made while this is False take the Python path (tests flip it)
ENABLED = _boundary is not None and os.environ.get(ENV_VAR, "1").strip() != "0"


def unavailable_reason() -> Optional[str]:
    """Why new executables take the Python path, or None when they use the extension."""
    if _boundary is None:
        return _IMPORT_ERROR
    if not ENABLED:
        return f"the native call path is switched off ({ENV_VAR}=0 or boundary.ENABLED)"
    return None


def dispatcher(fallback: str):
    """A method descriptor for `Executable.__call__`: `exe(*arrays, out=None)` runs the C
    state `exe._native` without a Python frame (~0.1 us less per call); named inputs, no
    state (None) or a call the state refuses go to the method `fallback` with the same
    arguments. None without the extension."""
    return None if _boundary is None else _boundary.Dispatch(fallback)


def buffer_format(dtype) -> str:
    """The buffer-protocol format numpy exports for arrays of `dtype` ('f', 'd', 'i', 'l',
    '?'): what the C side compares instead of the dtype object."""
    return memoryview(np.empty(0, dtype)).format


def _specs(dtypes: Sequence, ranks: Sequence[int]) -> tuple:
    return tuple((int(rank), dt.itemsize, dt.alignment, buffer_format(dt))
                 for dt, rank in zip(dtypes, ranks))


def native_state(compiled, input_dtypes: Sequence, input_ranks: Sequence[int],
                 output_dtypes: Sequence, output_ranks: Sequence[int],
                 output_names: Sequence[str], n_symbols: int, params,
                 status_error: Callable):
    """The C state for one executable, or None when calls take the Python path.

    `compiled` (a CompiledGraph) is kept alive by the state; `params` is the ParamStore
    (its block's address range and its set of unset params are read); `status_error(status,
    kind, value, bound, axis)` returns the exception for a non-zero status of the entry."""
    if not ENABLED:
        return None
    input_dtypes = [np.dtype(d) for d in input_dtypes]
    output_dtypes = [np.dtype(d) for d in output_dtypes]
    entry_address = ctypes.cast(compiled.entry, ctypes.c_void_p).value
    try:
        return _boundary.State(
            entry_address=entry_address, keepalive=compiled, ndarray=np.ndarray,
            empty=np.empty, inputs=_specs(input_dtypes, input_ranks),
            outputs=_specs(output_dtypes, output_ranks), out_dtypes=tuple(output_dtypes),
            out_names=tuple(output_names), n_symbols=n_symbols,
            errinfo_index=compiled.table.errinfo, param_span=tuple(params.span),
            unset=params.unset, status_error=status_error)
    except ValueError:                  # more tensors than the C side handles
        return None
